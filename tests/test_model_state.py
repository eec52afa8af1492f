"""Model state beyond parameters and BatchNorm statistics: an EMA teacher, a FIFO queue and a
dropout stream go through the jitted step, checkpoints, resume and sharding (toy_tasks.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import toy_tasks
from flax import nnx
from helpers import Crash, crash_on_batch, digits_config, same_lines, saved
from jax.sharding import PartitionSpec as P

from lib import data, sharding, train
from lib.models import state as model_state

TOY = {"task": "toy_tasks:TeacherQueue", "data.batch_size": 32, "optim.weight_decay": 0.0,
       "log_every": 3, "checkpoint_every": 1, "keep_checkpoints": 100}
STEPS = 6


def toy_config(**overrides):
    return digits_config(steps=STEPS, **{**TOY, **overrides})


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("toy") / "run"
    train.run(toy_config(), workdir)
    return workdir


def test_the_model_state_is_carried_as_typed_variables():
    setup = train.build(toy_config())
    state = setup.init_state
    assert set(state["params"]) == {"student/kernel", "student/bias"}  # the teacher is not
    assert set(state["model_state"]) == {"teacher", "queue", "dropout"}
    assert state["model_state"]["queue"]["items"].shape == (toy_tasks.QUEUE, 10)
    assert state["model_state"]["dropout"]["rngs"]["key"].dtype == np.uint32  # stored as data
    model = setup.model(state)
    assert isinstance(model.teacher.kernel, model_state.EMA)
    assert isinstance(model.queue.items, model_state.QueueState)


def test_ema_teacher_equals_a_numpy_ema_step_by_step(toy_run):
    """teacher_0 = student_0 (start), teacher_t = d·teacher_{t-1} + (1 − d)·student_t."""
    init = jax.device_get(train.Trainer(toy_config()).starting_state()[0])
    teacher = {k: np.asarray(init["params"][f"student/{k}"], np.float64)
               for k in ("kernel", "bias")}
    np.testing.assert_array_equal(init["model_state"]["teacher"]["kernel"],
                                  init["params"]["student/kernel"])
    for step in range(1, STEPS + 1):
        state = saved(toy_run, step)
        for k in teacher:
            student = np.asarray(state["params"][f"student/{k}"], np.float64)
            teacher[k] = toy_tasks.DECAY * teacher[k] + (1 - toy_tasks.DECAY) * student
            np.testing.assert_allclose(state["model_state"]["teacher"][k], teacher[k],
                                       rtol=1e-5, atol=1e-7, err_msg=f"step {step} {k}")


def test_queue_equals_a_numpy_fifo(toy_run):
    config = toy_config()
    batches = data.train_iterator(config.data, seed=config.seed)
    items, position, filled = np.zeros((toy_tasks.QUEUE, 10)), 0, 0
    for step in range(1, STEPS + 1):
        for label in next(batches)["label"]:  # one row per example, in batch order
            items[position] = np.eye(10)[label]
            position, filled = (position + 1) % toy_tasks.QUEUE, min(filled + 1, toy_tasks.QUEUE)
        queue = saved(toy_run, step)["model_state"]["queue"]
        np.testing.assert_array_equal(queue["items"], items, err_msg=f"step {step}")
        assert (int(queue["position"]), int(queue["filled"])) == (position, filled)
    assert filled == toy_tasks.QUEUE and position != 0  # it wrapped, mid-batch


def test_dropout_stream_advances_and_draws_differ():
    """The stream's counter is model state: each step draws a fresh dropout mask."""
    setup = train.build(toy_config())
    trainer = train.Trainer(toy_config())
    state = trainer.initial_state()
    batch = sharding.global_batch(next(trainer.train_batches()), trainer.batch_sharding)
    count = int(jax.device_get(state["model_state"]["dropout"]["rngs"]["count"]))
    state, _ = trainer.train_step(state, batch)
    assert int(jax.device_get(state["model_state"]["dropout"]["rngs"]["count"])) == count + 1
    model = setup.model(jax.tree.map(jnp.asarray, jax.device_get(state)))
    x = np.ones((4, 64), np.float32)
    a, b = (np.asarray(model.dropout(x, deterministic=False)) for _ in range(2))
    assert not np.array_equal(a, b)


def test_run_with_ema_queue_and_dropout_resumed_equals_uninterrupted(tmp_path, monkeypatch,
                                                                      toy_run):
    workdir = tmp_path / "run"
    crash_on_batch(monkeypatch, 4)  # during step 4
    with pytest.raises(Crash):
        train.run(toy_config(), workdir)
    monkeypatch.undo()
    train.run(toy_config(), workdir)
    a, b = saved(workdir, STEPS), saved(toy_run, STEPS)
    jax.tree.map(np.testing.assert_array_equal, a, b)
    assert same_lines(workdir) == same_lines(toy_run)


def test_one_device_and_eight_devices_agree(tmp_path, toy_run):
    train.run(toy_config(**{"mesh.data": 1}), tmp_path)
    a, b = saved(tmp_path, STEPS), saved(toy_run, STEPS)
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6), a, b)


def test_ema_target_starts_from_the_parameters_a_run_starts_from(toy_run):
    """From another run's step-4 checkpoint, the teacher is a copy of that run's student at
    step 4, not of this run's initialisation nor that run's teacher."""
    config = toy_config(**{"init.workdir": str(toy_run), "init.step": 4})
    state = jax.device_get(train.Trainer(config).starting_state()[0])
    source = saved(toy_run, 4)
    assert int(state["step"]) == 4
    np.testing.assert_array_equal(state["model_state"]["teacher"]["kernel"],
                                  source["params"]["student/kernel"])
    assert not np.array_equal(source["model_state"]["teacher"]["kernel"],
                              source["params"]["student/kernel"])


def test_a_large_queue_is_sharded_over_fsdp_not_replicated():
    mesh = sharding.make_mesh(digits_config(**{"mesh.fsdp": 8}).mesh)
    queue = model_state.FIFOQueue(65_536, 256)
    state = {"model_state": nnx.to_pure_dict(nnx.state(queue)), "batch_stats": {}}
    shardings = sharding.state_shardings(mesh, state, min_size=2**14)
    assert shardings["model_state"]["items"].spec == P("fsdp", None)
    assert shardings["model_state"]["position"].spec == P()


def test_ema_helpers_against_numpy():
    source = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
    target = model_state.ema_copy(source)
    w0 = np.asarray(source.kernel.get_value())
    source.kernel.set_value(source.kernel.get_value() + 1.0)
    model_state.ema_update(target, source, 0.75)
    np.testing.assert_allclose(target.kernel.get_value(), 0.75 * w0 + 0.25 * (w0 + 1.0),
                               rtol=1e-6)
    model_state.copy_into(target, source)
    np.testing.assert_array_equal(target.kernel.get_value(), source.kernel.get_value())
    with pytest.raises(ValueError, match="mirror"):
        model_state.ema_update(target, nnx.Linear(3, 4, rngs=nnx.Rngs(0)), 0.5)
