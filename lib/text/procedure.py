"""Tokenise, then train: config.procedure = "lib.text.procedure:run" for text datasets.

A text run whose data.tokenizer is empty first trains a sentencepiece BPE of data.vocab_size
pieces on the train split's text (lib.data.text_sources.training_text) into
`workdir/tokenizer`, then trains with data.tokenizer pointing there, in the same workdir. A
re-run finds that tokenizer and reuses it, so the token ids its checkpoints learned keep their
meaning; one trained with other settings stops the run (lib.text.tokenizer.train_or_load),
as does a data.tokenizer that is not the one the workdir trained (tokenizer.check_matches).
Data that needs no tokenizer (enwik8) or names one already goes straight to lib.train.run.

Only process 0 trains and writes; the others wait for its outcome, then load the file, which
they must see: the workdir is on a file system every process shares, as for checkpoints.

Bad input that lib.train.run finds before its first write (a model, data split or workdir
that does not fit) removes the tokenizer this call trained, and the folders it made for it:
the workdir is left as it was (DESIGN.md rule 9).
"""

from __future__ import annotations

import jax
import numpy as np
from etils import epath

from lib import config as config_lib
from lib import files, train
from lib.config import ConfigError
from lib.data import text_sources
from lib.text import tokenizer as tokenizer_lib

TOKENIZER_DIR = "tokenizer"
MAX_SENTENCES = 2_000_000  # a larger train text (WMT: 9M sentences) trains the tokenizer on a
# seeded sample of this many: BPE statistics settle long before, and sentencepiece's memory and
# time grow with the text. IWSLT'14 (320k sentences) is used whole.


def _train_or_load(data_cfg, folder) -> tokenizer_lib.Tokenizer:
    return tokenizer_lib.train_or_load(lambda: text_sources.training_text(data_cfg), folder,
                                       vocab_size=data_cfg.vocab_size,
                                       max_sentences=MAX_SENTENCES)


def workdir_tokenizer(config, workdir) -> str:
    """The directory of the run's tokenizer, trained there on process 0 unless it exists."""
    folder = files.as_path(workdir) / TOKENIZER_DIR
    error = None
    if jax.process_index() == 0:
        try:
            _train_or_load(config.data, folder)
        except Exception as e:  # re-raised below, once the other processes know
            error = e
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        failed = int(multihost_utils.broadcast_one_to_all(np.int32(error is not None)))
        if failed and error is None:
            raise ConfigError("training the tokenizer failed on process 0; its log says why")
    if error is not None:
        raise error
    if jax.process_index() != 0:
        if not (folder / tokenizer_lib.MODEL_FILE).exists():
            raise ConfigError(f"process {jax.process_index()} does not see "
                              f"{folder / tokenizer_lib.MODEL_FILE}, which process 0 wrote: put "
                              "the workdir on a file system that every process shares")
        _train_or_load(config.data, folder)  # loads it, and checks its settings
    return str(folder)


def run(config, workdir) -> dict:
    if text_sources.needs_tokenizer(config.data) and not config.data.tokenizer:
        if config.init.workdir:
            raise ConfigError(
                f"init.workdir={config.init.workdir!r}: a run that starts from another run's "
                "parameters must read its text with that run's tokenizer (a new one would give "
                "its embeddings other pieces): set data.tokenizer to the directory it trained "
                f"with (e.g. {config.init.workdir}/{TOKENIZER_DIR})")
        folder = files.as_path(workdir) / TOKENIZER_DIR
        created = _outermost_missing(folder)  # None: the tokenizer folder is there already
        config = config_lib.updated(config, {"data.tokenizer": workdir_tokenizer(config, workdir)})
        if created is not None and jax.process_index() == 0:
            before = _files_beside(folder)
            try:
                return train.run(config, workdir)
            except BaseException:
                if _files_beside(folder) == before:  # train.run wrote nothing: undo ours
                    created.rmtree()
                raise
    elif text_sources.needs_tokenizer(config.data):
        _check_workdir_tokenizer(config.data.tokenizer, files.as_path(workdir) / TOKENIZER_DIR)
    return train.run(config, workdir)


def _check_workdir_tokenizer(named: str, own: epath.Path) -> None:
    """Refuses data.tokenizer (`named`) unless it is the tokenizer that this procedure trained
    into the workdir (`own`) before, when it did: the checkpoints there learned its ids."""
    if not (own / tokenizer_lib.MODEL_FILE).exists():
        return
    trained = tokenizer_lib.load(own)
    try:
        tokenizer_lib.check_matches(tokenizer_lib.load(named), {
            "sha256": trained.sha256, "vocab_size": trained.vocab_size}, str(own))
    except ConfigError as e:
        raise ConfigError(f"data.tokenizer={named!r}: {e}") from None


def _outermost_missing(path: epath.Path) -> epath.Path | None:
    """The outermost of `path` and its parents that does not exist (None if `path` does)."""
    missing = None
    while not path.exists() and path.parent != path:
        missing, path = path, path.parent
    return missing


def _files_beside(folder: epath.Path) -> dict:
    """Every file under folder's parent (the workdir) outside `folder`, with its size and
    modification time."""
    out, todo = {}, [p for p in folder.parent.iterdir() if p != folder]
    while todo:
        path = todo.pop()
        stat = path.stat()
        out[str(path)] = (stat.length, stat.mtime)
        if stat.is_directory:
            todo += path.iterdir()
    return out
