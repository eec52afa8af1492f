"""Names of pluggable pieces: "module.path:Name" resolves to that object (DESIGN.md rule 3).

Tasks, procedures, init transforms, models, data sources and augmentations are named this way in
configs, so a paper's piece lives in its own folder (or in lib/ when shared) and no central
if-chain has to know it. Short names ('cifar_resnet', 'fashion_mnist') stay for the built-in
pieces.
"""

from __future__ import annotations

import importlib

from lib.config import ConfigError


def is_spec(name: str) -> bool:
    """Whether a configured name is a "module:Name" reference rather than a built-in short name
    (or a TFDS name with a version, 'cifar10:3.0.2': what follows ':' is no identifier)."""
    module_name, sep, attr = name.partition(":")
    return bool(sep and module_name) and attr.isidentifier()


def resolve(spec: str, key: str):
    """`"module.path:Name"` (config key `key`) -> the object, with a clear error when it does
    not exist."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"{key}={spec!r} must look like 'module.path:Name'")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and module_name.startswith(e.name):
            raise ConfigError(f"{key}={spec!r}: no module {e.name!r}") from e
        raise
    if not hasattr(module, attr):
        raise ConfigError(f"{key}={spec!r}: module {module_name!r} has no {attr!r}")
    return getattr(module, attr)
