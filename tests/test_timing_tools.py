"""The tools that say where time goes: a verify's time by stage, the benchmark's alternation,
XLA's profile of a step, and the PyTorch comparison's missing-extra error."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

from lib import bench, bench_ops, repro

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _results(path, **values):
    path.mkdir(parents=True)
    (path / "results.json").write_text(json.dumps(values))


def test_stage_times_sum_runs_by_setting_over_seeds(tmp_path):
    _results(tmp_path / "digits_L_s0" / "train", wall_seconds_this_start=10.0,
             **{"clock/train_seconds": 6.0})
    _results(tmp_path / "digits_L_s1" / "train", wall_seconds_this_start=12.5,
             **{"clock/train_seconds": 7.0})
    _results(tmp_path / "digits_L_s1" / "retrain", wall_seconds_this_start=1.5)
    _results(tmp_path / "fmnist_none", wall_seconds_this_start=4.0,
             **{"clock/train_seconds": 3.0})
    (tmp_path / "digits_L_s0" / "results.json").write_text('{"instability": 0.1}')  # a summary
    # fmnist_none/results.json is then a summary copying its run's clock (background_aug's does)
    _results(tmp_path / "fmnist_none" / "pretrain", wall_seconds_this_start=4.0,
             **{"clock/train_seconds": 3.0})
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "results.json").write_text("{not json")
    stages = {r["stage"]: r for r in repro.stage_times(tmp_path)}
    assert stages == {
        "digits_L": {"stage": "digits_L", "folders": 2, "runs": 3, "wall_s": 24.0,
                     "train_s": 13.0},
        "fmnist_none": {"stage": "fmnist_none", "folders": 1, "runs": 1, "wall_s": 4.0,
                        "train_s": 3.0},
    }
    total = repro.stage_table(list(stages.values())).splitlines()[-1]
    assert total == "| all | | 4 | 28.0 | 16.0 |"


def test_alternate_takes_the_median_of_rounds_after_an_untimed_step():
    calls = []
    times = iter([5.0, 1.0, 9.0, 3.0, 2.0, 4.0])  # a, b, a, b, a, b

    def runner(name):
        def run(steps):
            calls.append((name, steps))
            return 0.0 if steps == 1 else next(times)
        return run

    assert bench._alternate({"a": runner("a"), "b": runner("b")}, 7, 3) == [5.0, 3.0]
    assert calls[:4] == [("a", 1), ("a", 7), ("b", 1), ("b", 7)]


def test_profile_of_a_step_names_its_ops():
    def step(state, batch):
        y = jnp.tanh(batch @ state)
        return state - 0.1 * batch.T @ y, {"loss": jnp.sum(y)}

    state, batch = jnp.ones((64, 64)) / 64, jnp.ones((256, 64))
    compiled = jax.jit(step).lower(state, batch).compile()
    report = bench_ops.profile_step(compiled, state, batch, steps=2, top=5)
    assert report["step_ms"] > 0 and report["summed_op_ms"] > 0
    assert report["top_ops_ms"] and all(op["ms"] >= 0 for op in report["top_ops_ms"])
    # every op the profile names is an instruction of the compiled module
    assert all(op["hlo"] != "?" for op in report["top_ops_ms"])


def test_compare_torch_without_the_extra_is_a_clear_error(tmp_path):
    fake = tmp_path / "torch"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('no torch here')\n")
    result = subprocess.run(
        [sys.executable, "-m", "lib.bench", "--compare", "torch"], cwd=REPO,
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}", "JAX_PLATFORMS": "cpu"})
    assert result.returncode == 2, result.stderr
    assert "[bench]" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_conv_table_is_resnet20s_3x3_convolutions():
    """The per-op table times exactly the distinct 3×3 convolutions ResNet-20 runs."""
    from lib import train

    setup = train.build(bench._config(20, 8, 1), info=bench.SYNTHETIC_CIFAR)
    kernels = {tuple(v.shape[2:]) for k, v in setup.init_state["params"].items()
               if k.endswith("kernel") and v.shape[:2] == (3, 3)}
    assert kernels == {(cin, cout) for _, cin, cout, _ in bench_ops.RESNET20_CONVS}


@pytest.mark.parametrize("given, expected", [
    ("", "--xla_cpu_multi_thread_eigen=false"),
    ("--xla_force_host_platform_device_count=4",
     "--xla_force_host_platform_device_count=4 --xla_cpu_multi_thread_eigen=false"),
    ("--xla_cpu_multi_thread_eigen=true", "--xla_cpu_multi_thread_eigen=true"),  # the user's
])
def test_importing_lib_adds_the_cpu_flags_unless_set(given, expected):
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    if given:
        env["XLA_FLAGS"] = given
    out = subprocess.run([sys.executable, "-c", "import os, lib; print(os.environ['XLA_FLAGS'])"],
                         cwd=REPO, env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == expected


def test_conv_op_times_cover_every_shape():
    rows = bench_ops.conv_op_times(batch=2, repeats=1)
    assert [r["conv"] for r in rows] == [f"{h}x{h}x{i}->{o} stride {s}"
                                         for h, i, o, s in bench_ops.RESNET20_CONVS]
    assert all(r[k] > 0 for r in rows for k in ("forward_ms", "input_grad_ms", "weight_grad_ms"))


def test_losses_then_timed_keeps_the_first_losses_and_times_the_rest():
    calls = []

    def compiled(state, batch):
        calls.append(state)
        return state + 1, {"loss": jnp.float32(10 * state)}

    m = bench.losses_then_timed(compiled, 0, None, compared=3, steps=4)
    assert m["losses"] == [0.0, 10.0, 20.0] and calls == list(range(7))
    assert m["seconds"] >= 0 and m["peak_memory_gib"] >= 0
