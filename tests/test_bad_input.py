"""Bad input through `python -m lib.main`: each case runs in its own process and must exit 2
with one message (no traceback) that names the offending key, value or path, and leave the
workdir as it was: absent, or byte for byte what it held before."""

from __future__ import annotations

import dataclasses
import gzip
import os
import pathlib
import shutil

import pytest
from helpers import DIGITS, REPO, cli, digits_config

from lib import train

FASHION = REPO / "experiments/batchnorm_only/configs/fashion_mnist.py"
SELECTIVITY = REPO / "experiments/class_selectivity/configs/fashion_mnist.py"
EARLY_PHASE = REPO / "experiments/early_phase/configs/digits.py"
PRUNING = REPO / "experiments/pruning_stability/configs/digits.py"
SHORT = f"--config={DIGITS}:steps=4"


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    args: tuple  # lib.main arguments besides --workdir; {tmp} and {finished} are filled in
    expect: str  # must appear in stderr
    workdir: str = "new"  # new (absent) | finished (a copy of a finished run) | omit | a path
    env: tuple = ()  # (name, value template) pairs
    files: tuple = ()  # (path template, contents) written before the run


def _config_file(text: str) -> tuple:
    return (("{tmp}/bad_config.py", text),)


CASES = [
    # flags
    Case("no --config", (), "Flag --config must have a value"),
    Case("no --workdir", (SHORT,), "Flag --workdir must have a value", workdir="omit"),
    Case("unknown flag", (SHORT, "--bogus"), "Unknown command line flag 'bogus'"),
    # the config file
    Case("config file missing", ("--config={tmp}/no_such_config.py",), "does not exist"),
    Case("config file is a folder", ("--config={tmp}",), "is not a Python file"),
    Case("config file syntax error", ("--config={tmp}/bad_config.py",),
         "syntax error at line 1", files=_config_file("def get_config(arg=None)\n")),
    Case("config file import fails", ("--config={tmp}/bad_config.py",),
         "No module named 'no_such_module'", files=_config_file("import no_such_module\n")),
    Case("config file has no get_config", ("--config={tmp}/bad_config.py",),
         "defines no get_config", files=_config_file("x = 1\n")),
    Case("get_config raises", ("--config={tmp}/bad_config.py",), "raised ValueError: boom",
         files=_config_file("def get_config(arg=None):\n    raise ValueError('boom')\n")),
    Case("get_config returns a dict", ("--config={tmp}/bad_config.py",),
         "not an ml_collections.ConfigDict",
         files=_config_file("def get_config(arg=None):\n    return {}\n")),
    Case("unknown config option", (f"--config={DIGITS}:stpes=3",),
         "unknown config option 'stpes'"),
    Case("config option of the wrong type", (f"--config={DIGITS}:steps=abc",),
         "option 'steps' expects int"),
    # overrides: unknown keys, types, ranges
    Case("unknown key", (SHORT, "--config.optim.lrr=0.1"), "Did you mean: optim.lr"),
    Case("unknown key, space form", (SHORT, "--config.optim.lrr", "0.1"),
         "Did you mean: optim.lr"),
    Case("unknown section", (SHORT, "--config.optimizer.lr=0.1"), "'optimizer'"),
    Case("wrong type", (SHORT, "--config.total_steps=ten"), "total_steps"),
    Case("list entries of the wrong type", (SHORT, "--config.optim.milestones=abc"),
         "'optim.milestones' expects a list of int"),
    Case("batch size 0", (SHORT, "--config.data.batch_size=0"), "'data.batch_size' = 0"),
    Case("negative batch size", (SHORT, "--config.data.batch_size=-8"), "'data.batch_size'"),
    Case("eval batch size 0", (SHORT, "--config.data.eval_batch_size=0"),
         "'data.eval_batch_size'"),
    Case("negative total steps", (SHORT, "--config.total_steps=-5"), "'total_steps' = -5"),
    Case("NaN learning rate", (SHORT, "--config.optim.lr=nan"), "must be finite"),
    Case("infinite learning rate", (SHORT, "--config.optim.lr=inf"), "'optim.lr'"),
    Case("momentum above 1", (SHORT, "--config.optim.momentum=1.5"), "'optim.momentum'"),
    Case("negative weight decay", (SHORT, "--config.optim.weight_decay=-1e-4"),
         "'optim.weight_decay'"),
    Case("pruning fraction 1.5", (SHORT, "--config.sparsity.fraction=1.5"),
         "'sparsity.fraction'"),
    Case("negative log cadence", (SHORT, "--config.log_every=-1"), "'log_every'"),
    Case("no checkpoints kept", (SHORT, "--config.keep_checkpoints=0"), "'keep_checkpoints'"),
    Case("negative seed", (SHORT, "--config.seed=-1"), "'seed'"),
    Case("zero BN epsilon", (SHORT, "--config.model.bn_epsilon=0"), "'model.bn_epsilon'"),
    Case("severity 6", (SHORT, "--config.robustness.severities=(1, 6)"),
         "'robustness.severities'"),
    Case("task without a colon", (SHORT, "--config.task=lib.task"), "'task'"),
    Case("task that does not exist", (SHORT, "--config.task=lib.task:Nope"), "has no 'Nope'"),
    Case("procedure that does not exist", (SHORT, "--config.procedure=lib.nowhere:run"),
         "no module 'lib.nowhere'"),
    # choices and combinations checked when the run is built
    Case("unknown optimizer", (SHORT, "--config.optim.name=adamx"), "optim.name='adamx'"),
    Case("unknown augmentation", (SHORT, "--config.data.augment=rotate"), "data.augment"),
    Case("unknown model", (SHORT, "--config.model.name=resnet9000"), "resnet9000"),
    Case("unknown trainable subset", (SHORT, "--config.optim.trainable=bn_onlyy"),
         "optim.trainable='bn_onlyy'"),
    Case("batch not divisible by the devices", (SHORT, "--config.data.batch_size=100"),
         "not divisible by the 8 devices"),
    Case("fsdp that does not divide the devices", (SHORT, "--config.mesh.fsdp=3"),
         "mesh.fsdp=3"),
    Case("subset larger than the split", (SHORT, "--config.data.train_examples=99999"),
         "data.train_examples=99999"),
    # data
    Case("TFDS dataset not prepared", (SHORT, "--config.data.name=cifar10",
                                       "--config.data.data_dir={tmp}"),
         "python -m lib.data.prepare cifar10 --data_dir={tmp}"),
    Case("FASHION_MNIST_DIR missing", (f"--config={FASHION}:quick",),
         "FASHION_MNIST_DIR='{tmp}/nowhere'", env=(("FASHION_MNIST_DIR", "{tmp}/nowhere"),)),
    Case("FASHION_MNIST_DIR not gzip", (f"--config={FASHION}:quick",),
         "not a readable Fashion-MNIST idx file", env=(("FASHION_MNIST_DIR", "{tmp}/fm"),),
         files=tuple((f"{{tmp}}/fm/{n}", b"not gzip") for n in (
             "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"))),
    Case("FASHION_MNIST_DIR truncated", (f"--config={FASHION}:quick",), "header promises",
         env=(("FASHION_MNIST_DIR", "{tmp}/fm"),),
         files=tuple((f"{{tmp}}/fm/{n}", gzip.compress(b"\0\0\x08\x01\0\0\0\x09abc")) for n in (
             "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"))),
    # the workdir
    Case("workdir is a file", (SHORT,), "is a file", workdir="{tmp}/file",
         files=(("{tmp}/file", "x"),)),
    Case("workdir under a file", (SHORT,), "lies under", workdir="{tmp}/file/run",
         files=(("{tmp}/file", "x"),)),
    Case("workdir under /proc", (SHORT,), "cannot be written", workdir="/proc/ier_run"),
    Case("workdir on a read-only file system", (SHORT,), "cannot be written",
         workdir="/sys/ier_run"),
    Case("workdir of another config", (SHORT, "--config.seed=3"), "differs at: seed",
         workdir="finished"),
    Case("bad value on a finished run", (SHORT, "--config.data.batch_size=0"),
         "'data.batch_size'", workdir="finished"),
    # init.workdir
    Case("init.workdir missing", (SHORT, "--config.init.workdir={tmp}/nowhere"),
         "holds no checkpoints/ folder"),
    Case("init.step not saved", (SHORT, "--config.init.workdir={finished}",
                                 "--config.init.step=3"), "has checkpoints at steps"),
    # a procedure's later stages, checked before the first
    Case("unknown corruption", (f"--config={SELECTIVITY}:quick",
                                "--config.robustness.corruptions=('snowstorm',)"), "snowstorm"),
    Case("unknown perturbation", (f"--config={EARLY_PHASE}:quick",
                                  "--config.perturb.names=('rewnd',)"), "'rewnd'"),
    Case("unknown flatness method", (f"--config={PRUNING}:quick",
                                     "--config.flatness.examples=8",
                                     "--config.flatness.method=qr"), "flatness.method='qr'"),
    Case("IMP with no levels", (f"--config={EARLY_PHASE}:quick", "--config.imp.levels=0"),
         "imp.levels=0"),
    # pluggable pieces, views, stages and eval sets
    Case("model that does not exist", (SHORT, "--config.model.name=lib.models:Nope"),
         "model.name='lib.models:Nope': module 'lib.models' has no 'Nope'"),
    Case("data source that does not exist", (SHORT, "--config.data.name=lib.nowhere:source"),
         "no module 'lib.nowhere'"),
    Case("augmentation that does not exist",
         (SHORT, "--config.data.augment=lib.data.pipeline:Nope"), "has no 'Nope'"),
    Case("views the task cannot take", (SHORT, "--config.data.augment=views",
                                        "--config.data.views=(2,)",
                                        "--config.data.view_sizes=(8,)"), "gives 2 views"),
    Case("prefix map that matches nothing", (SHORT, "--config.init.workdir={finished}",
                                             "--config.init.mode=params",
                                             "--config.init.prefix_map=('enc/=backbone/',)"),
         "starts with 'enc/'"),
    Case("freezing regex that matches nothing", (SHORT, "--config.optim.freeze=^nothing/"),
         "matches no parameter path"),
    Case("eval set that does not exist", (SHORT, "--config.eval.sets=('nope',)"),
         "digits has splits"),
    Case("validation split not held out", (SHORT, "--config.data.eval_split=validation"),
         "data.validation_examples"),
]
if os.geteuid() != 0:  # root may write into a folder without write permission
    CASES.append(Case("workdir in a read-only folder", (SHORT,), "cannot be written",
                      workdir="{tmp}/locked/run", files=(("{tmp}/locked/.keep", ""),)))


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished 4-step digits run (the config SHORT gives)."""
    workdir = tmp_path_factory.mktemp("finished") / "run"
    train.run(digits_config("bn_only", steps=4, log_every=50, checkpoint_every=300), workdir)
    return workdir


def snapshot(path: pathlib.Path) -> dict | None:
    """Every file under `path` with its bytes (None if `path` does not exist)."""
    if not path.exists():
        return None
    if path.is_file():
        return {"": path.read_bytes()}
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*"))
            if p.is_file()}


def test_the_table_has_at_least_30_inputs():
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input_exits_2_with_one_message_and_writes_nothing(case, tmp_path, finished):
    def fill(text):
        return text.replace("{tmp}", str(tmp_path)).replace("{finished}", str(finished))

    for path, contents in case.files:
        target = pathlib.Path(fill(path))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(contents if isinstance(contents, bytes) else contents.encode())
    if case.id == "workdir in a read-only folder":
        (tmp_path / "locked").chmod(0o555)
    if case.workdir == "finished":
        workdir = tmp_path / "copy"
        shutil.copytree(finished, workdir)
    elif case.workdir in ("new", "omit"):
        workdir = tmp_path / "run"
    else:
        workdir = pathlib.Path(fill(case.workdir))
    before = snapshot(workdir)

    workdir_flag = [] if case.workdir == "omit" else [f"--workdir={workdir}"]
    out = cli(*map(fill, case.args), *workdir_flag,
              **{name: fill(value) for name, value in case.env})

    assert out.returncode == 2, out.stderr[-3000:]
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    errors = [line for line in out.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, out.stderr[-3000:]
    assert fill(case.expect) in out.stderr, out.stderr[-3000:]
    assert snapshot(workdir) == before
