"""Config loading: typed `get_config(arg)` options and validation against configs/base.py.

Experiment configs are Python files with `get_config(arg: str | None)`. The arg string is
`"quick,variant=bn_only,depth=56"`: a bare word is a boolean flag, `k=v` is parsed with the type
of the option's default. Every key of the resulting ConfigDict must exist in `configs/base.py`
with the same type, so a typo fails at start-up instead of being silently ignored.
"""

from __future__ import annotations

import difflib
import importlib.util
import pathlib
from typing import Any

import ml_collections

from configs import base


class ConfigError(ValueError):
    """A config file, arg or override that does not match configs/base.py."""


def _parse_value(key: str, text: str, default: Any) -> Any:
    if isinstance(default, bool):
        if text.lower() in ("1", "true", "yes", ""):
            return True
        if text.lower() in ("0", "false", "no"):
            return False
        raise ConfigError(f"option {key!r} is a boolean, got {text!r} (use true/false)")
    try:
        return type(default)(text)
    except ValueError as e:
        raise ConfigError(
            f"option {key!r} expects {type(default).__name__}, got {text!r}"
        ) from e


# Keys that cannot change what a run computes: where data and outputs live, how often it logs,
# evaluates and checkpoints, and how many devices share the batch (results do not depend on the
# device count, DESIGN.md rule 5). They may change when a run is resumed.
OPERATIONAL_KEYS = (
    "data.data_dir", "data.prefetch", "data.eval_batch_size", "log_every", "eval_every",
    "checkpoint_every", "keep_checkpoints", "async_checkpointing", "progress", "mesh.",
    "keep_steps", "init.workdir", "sparsity.mask",
)


def is_operational(key: str) -> bool:
    return key.startswith(OPERATIONAL_KEYS)


def parse_arg(arg: str | None, **defaults: Any) -> ml_collections.ConfigDict:
    """Parses `"quick,variant=bn_only"` into typed options; unknown options are errors.

    `defaults` declares every option with its default value, whose type types the parsing.
    """
    options = dict(defaults)
    for item in filter(None, (s.strip() for s in (arg or "").split(","))):
        key, sep, text = item.partition("=")
        if key not in defaults:
            raise ConfigError(
                f"unknown config option {key!r} in {arg!r}; valid options: "
                + ", ".join(f"{k} (default {v!r})" for k, v in defaults.items())
            )
        options[key] = _parse_value(key, text if sep else "", defaults[key])
    return ml_collections.ConfigDict(options)


def closest_keys(key: str, candidates: list[str]) -> list[str]:
    """Likely intended keys: similar spelling, or initials ('learning_rate' -> 'lr')."""
    initials = "".join(part[0] for part in key.split("_") if part)
    close = difflib.get_close_matches(key, candidates, n=3, cutoff=0.5)
    close += [c for c in candidates if c == initials and c not in close]
    return close


def _closest(key: str, candidates: list[str]) -> str:
    close = closest_keys(key, candidates)
    return f" Did you mean: {', '.join(close)}?" if close else ""


def _type_ok(value: Any, default: Any) -> bool:
    if default is None or value is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    if isinstance(default, (tuple, list)):
        return isinstance(value, (tuple, list))
    return isinstance(value, type(default))


def validate(config: ml_collections.ConfigDict, reference=None, prefix: str = "") -> None:
    """Raises ConfigError for a key absent from configs/base.py or a value of another type."""
    reference = base.get_config() if reference is None else reference
    ref_keys = list(reference.keys())
    for key, value in config.items():
        name = prefix + key
        if key not in reference:
            raise ConfigError(
                f"unknown config key {name!r}.{_closest(key, ref_keys)} "
                f"Valid keys here: {', '.join(prefix + k for k in sorted(ref_keys))}. "
                "Every key must be declared in configs/base.py."
            )
        ref = reference[key]
        if isinstance(ref, ml_collections.ConfigDict):
            if not isinstance(value, ml_collections.ConfigDict):
                raise ConfigError(f"config key {name!r} must be a section, got {value!r}")
            validate(value, ref, prefix=name + ".")
        elif not _type_ok(value, ref):
            raise ConfigError(
                f"config key {name!r} expects {type(ref).__name__} "
                f"(default {ref!r}), got {type(value).__name__} {value!r}"
            )


def updated(config: ml_collections.ConfigDict, changes: dict[str, Any]
            ) -> ml_collections.ConfigDict:
    """A copy of `config` with dotted-key changes ({"optim.lr": 0.05}) applied."""
    out = ml_collections.ConfigDict(config.to_dict())
    for key, value in changes.items():
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return out


def _merged(defaults: dict, values: dict) -> dict:
    out = dict(defaults)
    for k, v in values.items():
        out[k] = _merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k),
                                                                           dict) else v
    return out


def from_saved(values: dict) -> ml_collections.ConfigDict:
    """A run's saved config.json as a ConfigDict. Keys added to configs/base.py after the run
    was made take their defaults, which by convention keep the earlier behaviour, so older
    workdirs stay readable."""
    return ml_collections.ConfigDict(_merged(base.get_config().to_dict(), values))


def _import_file(path: str | pathlib.Path):
    path = pathlib.Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    spec = importlib.util.spec_from_file_location(f"_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_file(path: str | pathlib.Path, arg: str | None = None) -> ml_collections.ConfigDict:
    """Imports a config file, calls its get_config(arg) and validates the result."""
    module = _import_file(path)
    config = module.get_config(arg) if arg is not None else module.get_config()
    validate(config)
    return config


def split_config_spec(spec: str) -> tuple[str, str | None]:
    """`"path/file.py:quick,variant=x"` -> ("path/file.py", "quick,variant=x")."""
    path, sep, arg = spec.partition(":")
    return path, (arg if sep else None)
