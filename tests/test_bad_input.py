"""Bad input through `python -m lib.main`: each case runs in its own process and must exit 2
with one message (no traceback) that names the offending key, value or path, and leave the
workdir as it was: absent, or byte for byte what it held before."""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import os
import pathlib
import shutil

import numpy as np
import pytest
from helpers import DIGITS, REPO, cli, digits_config

from lib import config as config_lib
from lib import train
from lib.data import text_sources
from lib.text import procedure
from lib.text import tokenizer as tokenizer_lib

FASHION = REPO / "experiments/batchnorm_only/configs/fashion_mnist.py"
SELECTIVITY = REPO / "experiments/class_selectivity/configs/fashion_mnist.py"
EARLY_PHASE = REPO / "experiments/early_phase/configs/digits.py"
PRUNING = REPO / "experiments/pruning_stability/configs/digits.py"
SHORT = f"--config={DIGITS}:steps=4"
RESERVOIR = REPO / "experiments/reservoir/configs"
PLAN2VEC = f"--config={REPO}/experiments/plan2vec/configs/maze.py:quick=True"


def _npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    args: tuple  # lib.main arguments besides --workdir; {tmp} and {finished} are filled in
    expect: str  # must appear in stderr
    workdir: str = "new"  # new (absent) | finished (a copy of a finished run) | translation (a
    # copy of the finished TEXT_CONFIG run, the fixture's run/) | omit | a path
    env: tuple = ()  # (name, value template) pairs
    files: tuple = ()  # (path template, contents) written before the run


def _config_file(text: str) -> tuple:
    return (("{tmp}/bad_config.py", text),)


# iwslt.py at toy size on the parallel text of _text_files: a tokenizer of 60 pieces trained
# into the workdir first (lib.text.procedure), then 2 steps.
TEXT_CONFIG = """from experiments.reservoir.configs import iwslt


def get_config(arg=None):
    c = iwslt.get_config("encoder=LFL,steps=2")
    c.model.width, c.model.num_heads, c.model.mlp_dim, c.model.dropout = 16, 2, 32, 0.0
    c.data.vocab_size, c.data.max_length = 60, 32
    c.data.batching, c.data.batch_size, c.data.eval_batch_size = "examples", 8, 8
    c.optim.warmup_steps = 1
    c.eval.bleu, c.eval.sets = False, ("",)
    c.log_every, c.eval_every, c.checkpoint_every, c.progress = 1, 2, 2, False
    return c
"""
TEXT_ARGS = ("--config={tmp}/text_config.py", "--config.data.data_dir={tmp}/text")
_DE = "der die das ein eine und ist nicht haus katze hund baum wasser sonne".split()
_EN = "the the the a a and is not house cat dog tree water sun".split()


def _text_files(changes: dict | None = None) -> tuple:
    """Case.files: TEXT_CONFIG and {tmp}/text/{train,valid}.{de,en}, 48 and 16 aligned lines
    (a word-for-word toy translation); `changes` maps a file name to its new contents (str or
    bytes), or to None to leave it out."""
    texts = {}
    for split, count in (("train", 48), ("valid", 16)):
        words = [[(i * 5 + j * 3) % len(_DE) for j in range(3 + (i * 7) % 5)]
                 for i in range(count + (split == "valid") * 48)][-count:]
        for lang, vocab in (("de", _DE), ("en", _EN)):
            texts[f"{split}.{lang}"] = "".join(" ".join(vocab[w] for w in line) + "\n"
                                               for line in words)
    texts.update(changes or {})
    return (("{tmp}/text_config.py", TEXT_CONFIG),
            *((f"{{tmp}}/text/{name}", text) for name, text in texts.items() if text is not None))


def _text_lines(name: str) -> list[str]:
    return dict(_text_files())[f"{{tmp}}/text/{name}"].splitlines(keepends=True)


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
    # the reservoir paper: layer type strings, placement, parallel text and its tokenizer
    Case("unknown layer type", (f"--config={RESERVOIR}/synthetic.py:encoder=LXL",),
         "unknown layer type 'X' in 'LXL'; valid types: L, T, F, G, C, D"),
    Case("more reservoirs than the depth takes",
         (f"--config={RESERVOIR}/iwslt.py:layers=4,reservoirs=2",),
         "2 reservoirs needs at least 2k + 1 = 5 layers"),
    Case("unknown layer type, found after the tokenizer is trained",
         (*TEXT_ARGS, "--config.model.encoder_types=LXL"), "unknown layer type 'X' in 'LXL'",
         files=_text_files()),
    Case("parallel text: one language missing", TEXT_ARGS,
         "{tmp}/text lacks train.en; it has train.de, valid.de, valid.en",
         files=_text_files({"train.en": None})),
    Case("parallel text: eval split missing, found after the tokenizer is trained", TEXT_ARGS,
         "{tmp}/text lacks valid.en", files=_text_files({"valid.en": None})),
    Case("parallel text not UTF-8", TEXT_ARGS, "line 2 of {tmp}/text/train.de is not UTF-8",
         files=_text_files({"train.de": _text_lines("train.de")[0].encode()
                            + "schöne katze\n".encode("latin-1")
                            + "".join(_text_lines("train.de")[2:]).encode()})),
    Case("parallel text: line counts differ", TEXT_ARGS,
         "{tmp}/text/train.de has 48 lines but {tmp}/text/train.en has 47",
         files=_text_files({"train.en": "".join(_text_lines("train.en")[:-1])})),
    Case("parallel text: a line empty on one side", TEXT_ARGS,
         "line 3 of train.en is empty but line 3 of train.de is not",
         files=_text_files({"train.en": "".join(_text_lines("train.en")[:2]) + "\n"
                            + "".join(_text_lines("train.en")[3:])})),
    Case("resumed text run, tokenizer of another vocab_size",
         (*TEXT_ARGS, "--config.data.vocab_size=50"),
         "was trained with other settings: vocab_size 60, not 50", workdir="translation",
         files=_text_files()),
    Case("resumed text run, tokenizer.json of another training", TEXT_ARGS,
         "the two files come from different trainings", workdir="translation",
         files=(*_text_files(), ("{tmp}/copy/tokenizer/tokenizer.json", json.dumps(
             {"vocab_size": 60, "model_type": "bpe", "sha256": "0" * 64,
              "character_coverage": 1.0})))),
    # plan2vec: mazes, graph sizes, latent size, the user's arrays
    Case("maze whose free space is disconnected",
         (PLAN2VEC, "--config.plan2vec.extra_walls=(-0.3,0.3,-0.01,0.01)"),
         "the free space falls into 2 disconnected parts"),
    Case("more graph neighbours than frames", (PLAN2VEC, "--config.plan2vec.neighbours=400"),
         "plan2vec.neighbours=400 nearest neighbours, but the data has 300 frames"),
    Case("latent size below 1", (PLAN2VEC, "--config.plan2vec.latent=0"),
         "'plan2vec.latent' = 0 is not allowed: it must be ≥ 1"),
    Case("user frames of the wrong shape",
         (PLAN2VEC, "--config.plan2vec.env=file", "--config.plan2vec.data_file={tmp}/f.npz"),
         "{tmp}/f.npz: 'images' has shape (5, 8); expected [N, H, W]",
         files=(("{tmp}/f.npz", _npz(images=np.zeros((5, 8), np.uint8),
                                     trajectory=np.zeros(5, int), step=np.arange(5))),)),
    Case("user trajectory ids of the wrong length",
         (PLAN2VEC, "--config.plan2vec.env=file", "--config.plan2vec.data_file={tmp}/f.npz"),
         "'trajectory' must be [N] = [5] integers, got shape (4,)",
         files=(("{tmp}/f.npz", _npz(images=np.zeros((5, 8, 8), np.uint8),
                                     trajectory=np.zeros(4, int), step=np.arange(5))),)),
    Case("resumed text run, data.tokenizer another tokenizer",
         (*TEXT_ARGS, "--config.data.tokenizer={translation}/other_tokenizer"),
         "vocab_size 60 there, 50 here", workdir="translation", files=_text_files()),
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


@pytest.fixture(scope="module")
def translation(tmp_path_factory):
    """run/: a finished run of TEXT_CONFIG, its tokenizer in run/tokenizer; other_tokenizer/: a
    tokenizer of 50 pieces trained on the same text."""
    base = tmp_path_factory.mktemp("translation")
    for path, contents in _text_files():
        target = pathlib.Path(path.replace("{tmp}", str(base)))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(contents)
    config = config_lib.updated(config_lib.load_file(base / "text_config.py"),
                                {"data.data_dir": str(base / "text"),
                                 "async_checkpointing": False})
    procedure.run(config, base / "run")
    tokenizer_lib.train(text_sources.training_text(config.data), base / "other_tokenizer",
                        vocab_size=50)
    return base


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
def test_bad_input_exits_2_with_one_message_and_writes_nothing(case, tmp_path, finished,
                                                              request):
    text_run = (request.getfixturevalue("translation") if case.workdir == "translation"
                or "{translation}" in "".join(case.args) else None)

    def fill(text):
        return (text.replace("{tmp}", str(tmp_path)).replace("{finished}", str(finished))
                .replace("{translation}", str(text_run)))

    if case.workdir in ("finished", "translation"):  # copied first: case.files may edit it
        workdir = tmp_path / "copy"
        shutil.copytree(finished if case.workdir == "finished" else text_run / "run", workdir)
    elif case.workdir in ("new", "omit"):
        workdir = tmp_path / "run"
    else:
        workdir = pathlib.Path(fill(case.workdir))
    for path, contents in case.files:
        target = pathlib.Path(fill(path))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(contents if isinstance(contents, bytes) else contents.encode())
    if case.id == "workdir in a read-only folder":
        (tmp_path / "locked").chmod(0o555)
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
