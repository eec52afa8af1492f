"""lib.distributed: which jax.distributed arguments flags, env, SLURM and Cloud TPU give."""

import pytest

from lib import distributed
from lib.distributed import Topology, TopologyError

ON_CLOUD_TPU_VM = distributed.on_cloud_tpu_vm


@pytest.fixture(autouse=True)
def no_tpu_chips(monkeypatch):
    monkeypatch.setattr(distributed, "on_cloud_tpu_vm", lambda: False)


def resolve(env=None, **flags):
    return distributed.resolve(**flags, env=env or {})


def test_nothing_set_is_a_single_process():
    assert resolve() is None


def test_flags():
    assert resolve(coordinator_address="10.0.0.2:1234", num_processes=4, process_id=3) == \
        Topology("flags", "10.0.0.2:1234", 4, 3)


def test_flags_take_precedence_over_the_environment():
    env = {"JAX_COORDINATOR_ADDRESS": "a:1", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "1"}
    assert resolve(env, coordinator_address="b:2", num_processes=3, process_id=0).source == "flags"


def test_environment_variables():
    env = {"JAX_COORDINATOR_ADDRESS": "head:9999", "JAX_NUM_PROCESSES": "2",
           "JAX_PROCESS_ID": "1", "SLURM_JOB_ID": "5"}
    t = resolve(env)
    assert (t.coordinator_address, t.num_processes, t.process_id) == ("head:9999", 2, 1)


@pytest.mark.parametrize("flags, message", [
    ({"coordinator_address": "h:1", "num_processes": 2}, "process_id missing"),
    ({"num_processes": 2, "process_id": 0}, "coordinator_address missing"),
    ({"coordinator_address": "h:1", "num_processes": 2, "process_id": 2},
     r"process_id=2 must lie in \[0, num_processes=2\)"),
    ({"coordinator_address": "h", "num_processes": 2, "process_id": 0}, "must be HOST:PORT"),
])
def test_incomplete_or_inconsistent_flags(flags, message):
    with pytest.raises(TopologyError, match=message):
        resolve(**flags)


def test_bad_environment_value_is_named():
    env = {"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "two", "JAX_PROCESS_ID": "0"}
    with pytest.raises(TopologyError, match="JAX_NUM_PROCESSES='two' is not an integer"):
        resolve(env)


@pytest.mark.parametrize("nodelist, host", [
    ("node001", "node001"),
    ("node001,host2", "node001"),
    ("gpu[003-005,9],cpu1", "gpu003"),
    ("gpu[7,9-12]", "gpu7"),
    ("a-b-1", "a-b-1"),
])
def test_first_slurm_host(nodelist, host):
    assert distributed.first_slurm_host(nodelist) == host


def slurm_env(ntasks, nodes, procid, localid, **extra):
    return {"SLURM_JOB_ID": "123456", "SLURM_NTASKS": str(ntasks), "SLURM_PROCID": str(procid),
            "SLURM_LOCALID": str(localid), "SLURM_STEP_NODELIST": "gpu[010-011]",
            "SLURM_STEP_NUM_NODES": str(nodes), **extra}


def test_slurm_one_process_per_node_sees_all_local_gpus():
    # port as jax's own SLURM detection: job id mod 4096 in [61440, 65535]
    assert resolve(slurm_env(2, 2, 1, 0)) == Topology(
        "slurm", f"gpu010:{123456 % 4096 + 61440}", 2, 1, None)


def test_slurm_one_process_per_gpu():
    assert resolve(slurm_env(16, 2, 13, 5)).local_device_ids == (5,)
    # SLURM bound one GPU to the task (--gpus-per-task=1): it is that process's only device
    bound = slurm_env(16, 2, 13, 5, CUDA_VISIBLE_DEVICES="5")
    assert resolve(bound).local_device_ids is None


def test_slurm_port_override_and_single_task():
    assert resolve(slurm_env(2, 2, 0, 0, JAX_COORDINATOR_PORT="4000")).coordinator_address == \
        "gpu010:4000"
    assert resolve(slurm_env(1, 1, 0, 0)) is None  # one task: nothing to start
    assert resolve({"SLURM_JOB_ID": "1", "SLURM_NTASKS": "4"}) is None  # sbatch shell, no srun


def test_cloud_tpu_environment_variables():
    env = {"TPU_WORKER_HOSTNAMES": "t1k-w-0,t1k-w-1,t1k-w-2,t1k-w-3", "TPU_WORKER_ID": "2"}
    assert resolve(env) == Topology("cloud_tpu_env", "t1k-w-0:8476", 4, 2)
    assert resolve({**env, "TPU_WORKER_HOSTNAMES": "t1k-w-0"}) is None  # one host
    # multi-slice: jax's own detection reads the megascale settings
    multislice = {**env, "MEGASCALE_COORDINATOR_ADDRESS": "x:1"}
    assert resolve(multislice) is None  # without TPU chips on the PCI bus


def test_tpu_chips_without_variables_leave_the_group_to_jax(monkeypatch):
    monkeypatch.setattr(distributed, "on_cloud_tpu_vm", lambda: True)
    assert resolve() == Topology("cloud_tpu_metadata")  # jax asks the metadata server
    assert resolve(slurm_env(2, 2, 0, 0)).source == "slurm"  # SLURM on TPU hosts comes first


def test_this_machine_has_no_tpu_chips():
    """Also on a Google Cloud VM, whose network card and disks carry Google's PCI vendor id."""
    assert ON_CLOUD_TPU_VM() is False
