"""Config loading: typed `get_config(arg)` options and validation against configs/base.py.

Experiment configs are Python files with `get_config(arg: str | None)`. The arg string is
`"quick,variant=bn_only,depth=56"`: a bare word is a boolean flag, `k=v` is parsed with the type
of the option's default. Every key of the resulting ConfigDict must exist in `configs/base.py`
with the same type, so a typo fails at start-up instead of being silently ignored.
"""

from __future__ import annotations

import difflib
import functools
import importlib.util
import math
import pathlib
import re
import traceback
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


def _scalar_ok(value: Any, default: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))


def _type_ok(value: Any, default: Any) -> bool:
    """The value has the default's type; list entries have the type of the default's entries."""
    if default is None or value is None:
        return True
    if isinstance(default, (tuple, list)):
        if not isinstance(value, (tuple, list)):
            return False
        kinds = [d for d in default if d is not None]
        return not kinds or all(_scalar_ok(v, kinds[0]) for v in value)
    return _scalar_ok(value, default)


def _type_name(default: Any) -> str:
    if isinstance(default, (tuple, list)):
        entries = {type(d).__name__ for d in default}
        return f"a list of {entries.pop()}" if len(entries) == 1 else "a list"
    return type(default).__name__


@functools.cache
def key_comments() -> dict[str, str]:
    """The comment beside each key's declaration in configs/base.py, by dotted key: what the key
    means, quoted in error messages."""
    comments = {}
    for line in pathlib.Path(base.__file__).read_text().splitlines():
        m = re.match(r"\s*c\.([\w.]+) = .*?\s#\s(.*)$", line)
        if m:
            comments[m.group(1)] = m.group(2).strip()
    return comments


def _explain(name: str) -> str:
    comment = key_comments().get(name)
    return f" ({name}: {comment})" if comment else ""


def validate(config: ml_collections.ConfigDict, reference=None, prefix: str = "",
             rules: dict | None = None) -> None:
    """Raises ConfigError for a key absent from configs/base.py, a value of another type, or a
    value that breaks its rule (configs/base.py RULES: ranges, finiteness, list entries)."""
    reference = base.get_config() if reference is None else reference
    rules = base.RULES if rules is None else rules
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
            validate(value, ref, prefix=name + ".", rules=rules)
        elif not _type_ok(value, ref):
            raise ConfigError(
                f"config key {name!r} expects {_type_name(ref)} (default {ref!r}), got "
                f"{type(value).__name__} {value!r}.{_explain(name)}"
            )
        elif name in rules and not rules[name](value):
            infinite = isinstance(value, float) and not math.isfinite(value)
            raise ConfigError(
                f"config key {name!r} = {value!r} is not allowed: it must be "
                f"{'finite and ' if infinite else ''}{rules[name].allowed}.{_explain(name)} "
                f"Set it with --config.{name}=VALUE."
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


def _raised_in(error: BaseException, path: pathlib.Path) -> int | None:
    """The line of `path` where `error` was raised, if the config file itself raised it (its
    innermost frame outside Python's import machinery); None if code it called did."""
    frames = [f for f in traceback.extract_tb(error.__traceback__)
              if not f.filename.startswith("<frozen")]
    if frames and pathlib.Path(frames[-1].filename).resolve() == path.resolve():
        return frames[-1].lineno
    return None


def _import_file(path: str | pathlib.Path):
    path = pathlib.Path(path)
    if not path.exists():
        raise ConfigError(f"config file {str(path)!r} does not exist (paths are relative to "
                          f"{pathlib.Path.cwd()}); the configs are experiments/<slug>/configs/*.py")
    if not path.is_file() or path.suffix != ".py":
        raise ConfigError(f"config file {str(path)!r} is not a Python file (.py)")
    spec = importlib.util.spec_from_file_location(f"_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        if pathlib.Path(e.filename or "").resolve() != path.resolve():
            raise
        raise ConfigError(f"config file {str(path)!r} has a syntax error at line {e.lineno}: "
                          f"{e.msg}") from e
    except Exception as e:  # raised by the file (the user's input), not by code it imports
        if (line := _raised_in(e, path)) is None:
            raise
        raise ConfigError(f"config file {str(path)!r} failed to import (line {line}): "
                          f"{type(e).__name__}: {e}") from e
    return module


def load_file(path: str | pathlib.Path, arg: str | None = None, *, check: bool = True
              ) -> ml_collections.ConfigDict:
    """Imports a config file, calls its get_config(arg) and (check) validates the result.

    Every way a config file itself can fail (missing, syntax error, no get_config, an exception
    it raises, a result that is not a ConfigDict) is a ConfigError naming the file; an error
    raised in the project code it calls keeps its traceback."""
    path = pathlib.Path(path)
    module = _import_file(path)
    get_config = getattr(module, "get_config", None)
    if not callable(get_config):
        raise ConfigError(f"config file {str(path)!r} defines no get_config(arg) function")
    try:
        config = get_config(arg) if arg is not None else get_config()
    except ConfigError as e:
        raise ConfigError(f"config file {str(path)!r}: {e}") from e
    except Exception as e:
        if (line := _raised_in(e, path)) is None:
            raise
        raise ConfigError(f"config file {str(path)!r}: get_config({arg!r}) raised "
                          f"{type(e).__name__}: {e} (line {line})") from e
    if not isinstance(config, ml_collections.ConfigDict):
        raise ConfigError(f"config file {str(path)!r}: get_config({arg!r}) returned "
                          f"{type(config).__name__}, not an ml_collections.ConfigDict")
    if check:
        validate(config)
    return config


def split_config_spec(spec: str) -> tuple[str, str | None]:
    """`"path/file.py:quick,variant=x"` -> ("path/file.py", "quick,variant=x")."""
    path, sep, arg = spec.partition(":")
    return path, (arg if sep else None)
