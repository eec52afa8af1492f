"""Config loading: typed `get_config(arg)` options and validation against the declared keys.

Experiment configs are Python files with `get_config(arg: str | None)`. The arg string is
`"quick,variant=bn_only,depth=56"`: a bare word is a boolean flag, `k=v` is parsed with the type
of the option's default. Every key of the resulting ConfigDict must be declared with the same
type, so a typo fails at start-up instead of being silently ignored: in `configs/base.py` (the
keys lib/ reads), or in a paper's own section module (`experiments/<slug>/config.py`) that the
config lists in `sections`. Such a module defines `declare(c)`, which declares its sections
with their defaults (a comment per key, quoted in error messages), and `RULES` for their
values; `add_sections(c, module_name)` declares them in a config and lists the module.
"""

from __future__ import annotations

import difflib
import functools
import importlib.util
import json
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
    "keep_steps", "init.workdir", "sparsity.mask", "sections", "compile_cache",
    "data.tokenizer",  # a path (the workdir's own when trained there); its sha256 is checked
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


# Sections that configs/base.py declared before they moved to their papers: a config.json
# written then holds them without naming their module in `sections`.
_MOVED_SECTIONS = {
    "pretrain": "experiments.early_phase.config",
    "early_stats": "experiments.early_phase.config",
    "perturb": "experiments.early_phase.config",
    "filter_pruning": "experiments.pruning_stability.config",
    "flatness": "experiments.pruning_stability.config",
    "selectivity": "experiments.class_selectivity.config",
}


def section_modules(config) -> list:
    """The imported modules of config['sections'] (a ConfigDict or a saved dict)."""
    names = [n for n in (config.get("sections") or ()) if n]
    modules = []
    for name in dict.fromkeys(names):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            raise ConfigError(f"sections: no module {name!r} (entries name the modules that "
                              "declare a paper's config sections, e.g. "
                              "experiments.early_phase.config)") from e
        if not callable(getattr(module, "declare", None)):
            raise ConfigError(f"sections: module {name!r} has no declare(c) declaring sections")
        modules.append(module)
    return modules


def reference_config(config=None) -> tuple[ml_collections.ConfigDict, dict]:
    """(every declared key with its default, the value rules) for `config`: configs/base.py
    plus the sections of the modules it lists in `sections`."""
    reference, rules = base.get_config(), dict(base.RULES)
    for module in section_modules(config or {}):
        module.declare(reference)
        rules.update(getattr(module, "RULES", {}))
    return reference, rules


def add_sections(config: ml_collections.ConfigDict, module_name: str
                 ) -> ml_collections.ConfigDict:
    """`config` with the sections of the paper module `module_name` (experiments.<slug>.config)
    declared at their defaults, and the module listed in config.sections."""
    module, = section_modules({"sections": (module_name,)})
    module.declare(config)
    config.sections = (*[s for s in config.sections if s and s != module_name], module_name)
    return config


@functools.lru_cache(maxsize=16)
def _comments_of(path: str) -> dict[str, str]:
    comments = {}
    for line in pathlib.Path(path).read_text().splitlines():
        m = re.match(r"\s*c\.([\w.]+) = .*?\s#\s(.*)$", line)
        if m:
            comments[m.group(1)] = m.group(2).strip()
    return comments


def key_comments(config=None) -> dict[str, str]:
    """The comment beside each key's declaration (configs/base.py and the config's section
    modules), by dotted key: what the key means, quoted in error messages."""
    comments = dict(_comments_of(base.__file__))
    for module in section_modules(config or {}):
        comments.update(_comments_of(module.__file__))
    return comments


def validate(config: ml_collections.ConfigDict, reference=None, prefix: str = "",
             rules: dict | None = None, comments: dict | None = None) -> None:
    """Raises ConfigError for a key that is not declared (configs/base.py or a section module
    named in `sections`), a value of another type, or a value that breaks its rule (RULES:
    ranges, finiteness, list entries)."""
    if reference is None:
        reference, rules = reference_config(config)
        comments = key_comments(config)
    comments = comments or {}

    def explain(name: str) -> str:
        return f" ({name}: {comments[name]})" if name in comments else ""

    ref_keys = list(reference.keys())
    for key, value in config.items():
        name = prefix + key
        if key not in reference:
            raise ConfigError(
                f"unknown config key {name!r}.{_closest(key, ref_keys)} "
                f"Valid keys here: {', '.join(prefix + k for k in sorted(ref_keys))}. "
                "Every key must be declared in configs/base.py, or in a paper's section module "
                "listed in `sections`."
            )
        ref = reference[key]
        if isinstance(ref, ml_collections.ConfigDict):
            if not isinstance(value, ml_collections.ConfigDict):
                raise ConfigError(f"config key {name!r} must be a section, got {value!r}")
            validate(value, ref, prefix=name + ".", rules=rules, comments=comments)
        elif not _type_ok(value, ref):
            raise ConfigError(
                f"config key {name!r} expects {_type_name(ref)} (default {ref!r}), got "
                f"{type(value).__name__} {value!r}.{explain(name)}"
            )
        elif name in rules and not rules[name](value):
            infinite = isinstance(value, float) and not math.isfinite(value)
            raise ConfigError(
                f"config key {name!r} = {value!r} is not allowed: it must be "
                f"{'finite and ' if infinite else ''}{rules[name].allowed}.{explain(name)} "
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


def with_moved_sections(values: dict) -> dict:
    """A saved config whose sections moved from configs/base.py to their papers' modules,
    with those modules named in `sections` (configs written after the move name them)."""
    moved = [_MOVED_SECTIONS[k] for k in values if k in _MOVED_SECTIONS]
    known = [n for n in values.get("sections") or () if n]
    if not set(moved) - set(known):
        return values
    return {**values, "sections": tuple(dict.fromkeys([*known, *moved]))}


def unused_moved_sections(saved: dict, config: ml_collections.ConfigDict) -> set[str]:
    """Sections a config.json from before the move holds at their defaults and `config` does
    not declare: that run did not use them, so resuming it with today's config is the same
    run."""
    unused = set()
    for name, module_name in _MOVED_SECTIONS.items():
        if name in saved and name not in config:
            defaults = importlib.import_module(module_name).get_config()[name].to_dict()
            if json.loads(json.dumps(defaults)) == saved[name]:
                unused.add(name)
    return unused


def from_saved(values: dict) -> ml_collections.ConfigDict:
    """A run's saved config.json as a ConfigDict. Keys added after the run was made take their
    defaults, which by convention keep the earlier behaviour, so older workdirs stay
    readable."""
    values = with_moved_sections(values)
    reference, _ = reference_config(values)
    return ml_collections.ConfigDict(_merged(reference.to_dict(), values))


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
