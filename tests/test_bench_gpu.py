"""The accelerator suite (lib.bench_gpu) at tiny shapes on CPU: every section runs and reports
what it promises; the time budget skips sections; XLA's analyses are read either way they
come back."""

import os
import subprocess
import sys
import types

import jax
import pytest

from lib import bench_gpu

MODEL_KEYS = {"step_ms", "compile_s", "xla_flops_per_step", "matmul_flops_per_step",
              "bf16_matmul_share", "step_memory_gib", "process_peak_gib", "loss", "mfu",
              "matmul_mfu"}


@pytest.fixture(scope="module")
def report():
    cache = jax.config.jax_compilation_cache_dir
    out = bench_gpu.run(tiny=True, budget_s=1e9, steps=1)
    assert jax.config.jax_compilation_cache_dir == cache  # the suite's cache is put back
    return out


def test_every_section_reports_without_error(report):
    assert report["skipped"] == [] and bench_gpu.errors(report) == []
    assert report["peak"]["bf16_tflops"] > 0
    rows = [report["resnet50"], report["vit_b16"], *report["papers"].values()]
    assert len(report["papers"]) == 4
    for row in rows:
        assert MODEL_KEYS <= set(row), row["name"]
        assert row[f"{row['unit']}_per_s"] > 0 and row["xla_flops_per_step"] > 0
        assert row["bf16_matmul_share"] >= 0.98 and row["step_memory_gib"] > 0
        assert row["mfu"] > 0 and row["matmul_mfu"] > 0
    assert report["papers"]["reservoir iwslt transformer"]["tokens_per_s"] > 0


def test_compile_cache_section_reads_the_second_compile_from_disk(report):
    """Two fresh processes on one empty cache: the first compiles, the second reads."""
    assert report["compile_cache"]["cache_hits"] == [0, 1]


def test_targets_are_not_judged_on_tiny_shapes(report):
    assert report["targets"]["resnet50_images_per_s"]["met"] is None
    assert report["targets"]["vit_b16_mfu"]["measured"] == report["vit_b16"]["mfu"]


def test_a_spent_budget_skips_the_remaining_sections():
    out = bench_gpu.run(tiny=True, budget_s=0.0, steps=1)
    assert out["skipped"][:3] == ["peak", "resnet50", "vit_b16"] and len(out["skipped"]) == 8
    assert out["targets"]["resnet50_images_per_s"]["measured"] is None


@pytest.mark.parametrize("cost", [{"flops": 12.0}, [{"flops": 12.0}]])
def test_flops_from_either_form_of_the_cost_analysis(cost):
    assert bench_gpu._flops(types.SimpleNamespace(cost_analysis=lambda: cost)) == 12.0


def test_step_memory_is_arguments_outputs_and_temporaries_less_donations():
    analysis = types.SimpleNamespace(argument_size_in_bytes=2**30, output_size_in_bytes=2**30,
                                     temp_size_in_bytes=2**29, alias_size_in_bytes=2**30)
    compiled = types.SimpleNamespace(memory_analysis=lambda: analysis)
    assert bench_gpu._step_memory_gib(compiled) == 1.5
    assert bench_gpu._step_memory_gib(types.SimpleNamespace(memory_analysis=lambda: None)) == 0


@pytest.mark.parametrize("args, message", [
    (["--tiny"], "--tiny and --budget belong to --suite gpu"),
    (["--suite", "gpu", "--steps", "0"], "--steps=0 must be ≥ 1"),
])
def test_bad_arguments_exit_2_with_a_message(args, message):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-m", "lib.bench", *args], cwd=root,
                         capture_output=True, text=True)
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr
