"""Datasets for training and evaluation: sources by name, Grain pipelines, and the prepare CLI.

    info = get_info(config.data)
    batches = train_iterator(config.data, seed=config.seed,
                             process_index=jax.process_index(), process_count=jax.process_count())
    for batch in eval_batches(config.data, ...): ...  # dict(image, label, mask)

Batch sizes in the config are global; each process gets its contiguous share of every batch.
"""

from lib.data.errors import DatasetError, DatasetNotFoundError, DatasetUnreadableError
from lib.data.pipeline import (
    DatasetInfo,
    eval_batches,
    eval_set_specs,
    get_info,
    normalization_stats,
    train_iterator,
)

__all__ = [
    "DatasetError",
    "DatasetInfo",
    "DatasetNotFoundError",
    "DatasetUnreadableError",
    "eval_batches",
    "eval_set_specs",
    "get_info",
    "normalization_stats",
    "train_iterator",
]
