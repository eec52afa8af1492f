"""Converters for user-supplied torchvision ResNet-18 and timm ViT-B/16 weights.

The invariance paper measures the torchvision reference ResNet-18 and timm's
vit_base_patch16_224 (papers/invariance.md §3, §7). Their weights are the user's files; this
module maps them onto our models (lib.models.resnet, lib.models.vit) and writes a checkpoint
that a run of the same config starts from:

    python -m lib.convert --source timm_vit_b16 --weights vit_b16.safetensors \
        --config CONFIG.py[:arg] --workdir DIR [--config.KEY=VALUE ...]
    python -m lib.main --config=CONFIG.py[:arg] --workdir=RUN --config.init.workdir=DIR ...

Sources: 'torchvision_resnet18' (conv1, bn1, layer{1-4}.{0,1}.{conv1,bn1,conv2,bn2,
downsample.0,downsample.1}, fc; BatchNorm's num_batches_tracked counters are ignored) and
'timm_vit_b16' (patch_embed.proj, cls_token, pos_embed, blocks.{i}.{norm1,attn.qkv,attn.proj,
norm2,mlp.fc1,mlp.fc2}, norm, head). Conv kernels go from OIHW to HWIO, Linear weights are
transposed, and timm's fused qkv is split into our query, key and value. Every tensor is checked
against the model the config builds: a missing, unexpected or mis-shaped one stops the
conversion with its name and the model expected, and so does a config whose model would compute
another function from the same tensors, which shapes cannot show (ResNet: depth 18, the
ImageNet stem, BatchNorm ε 1e-5; ViT: the cls token, exact GELU, and at a standard width such
as ViT-B's 768 its head count; other widths, small test variants, take num_heads as given).
The class count and input channels come from the weights; the ViT's image size from
data.image_size, else from pos_embed (square images).

Files: .npz; .safetensors with the [convert] extra (pip install -e '.[convert]'); .pth, .pt and
.bin (PyTorch pickles) only where torch is installed (the [torch] extra). A training script's
checkpoint ({'state_dict': ...} or {'model': ...}, names prefixed 'module.') is unwrapped.

DIR receives checkpoints/0 (the step-0 train state of the config, with the converted parameters
and BatchNorm statistics, and no data position), config.json, and converted.json (the source,
the file and its SHA-256). init.mode=continue then starts at step 0 of the run's own data order;
init.mode=params starts a new stage from the parameters (init.prefix_map to move them). An
existing checkpoint is never overwritten. Bad input exits 2 with a message.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import hashlib
import json
import math
import pathlib
import re
import sys

import ml_collections
import ml_dtypes
import numpy as np
from etils import epath
from flax import nnx, traverse_util

from lib import checkpoint, data, files, metrics, train
from lib import config as config_lib
from lib.models import VARIANTS


class ConversionError(ValueError):
    """Weights, a config or a workdir that cannot be converted; the message says what to do."""


@dataclasses.dataclass(frozen=True)
class _Source:
    title: str
    model: dict  # model.* values the source's function needs, beyond the tensors' shapes
    modules: tuple  # (re.fullmatch pattern of our module paths, the source's module name)
    top_level: dict  # our model-level parameters -> the source's names


SOURCES = {
    "torchvision_resnet18": _Source(
        "torchvision resnet18",
        {"name": "imagenet_resnet", "depth": 18, "bn_epsilon": 1e-5},
        ((r"stem/conv", "conv1"),
         (r"stem/bn", "bn1"),
         (r"stage(\d+)/block(\d+)/(conv|bn)([12])", r"layer\1.\2.\3\4"),
         (r"stage(\d+)/block(\d+)/shortcut_conv", r"layer\1.\2.downsample.0"),
         (r"stage(\d+)/block(\d+)/shortcut_bn", r"layer\1.\2.downsample.1"),
         (r"head", "fc")),
        {}),
    "timm_vit_b16": _Source(
        "timm vit_base_patch16_224",
        {"name": "vit", "pool": "cls", "gelu": "exact"},
        ((r"embedding", "patch_embed.proj"),
         (r"block(\d+)/norm([12])", r"blocks.\1.norm\2"),
         (r"block(\d+)/attention/(?:query|key|value)", r"blocks.\1.attn.qkv"),
         (r"block(\d+)/attention/out", r"blocks.\1.attn.proj"),
         (r"block(\d+)/mlp/fc([12])", r"blocks.\1.mlp.fc\2"),
         (r"encoder_norm", "norm"),
         (r"head", "head")),
        {"cls": "cls_token", "pos_embedding": "pos_embed"}),
}
# Our variable names -> PyTorch's: conv / linear kernels, norm scales, BatchNorm statistics.
_LEAVES = {"kernel": "weight", "bias": "bias", "scale": "weight", "mean": "running_mean",
           "var": "running_var"}
_QKV = ("query", "key", "value")  # their order along the rows of timm's fused qkv
_IGNORED = ".num_batches_tracked"  # BatchNorm's step counter: no part of the function


def _source(source: str) -> _Source:
    if source not in SOURCES:
        raise ConversionError(f"unknown source {source!r}; valid choices: {', '.join(SOURCES)}")
    return SOURCES[source]


# --- reading the user's file -------------------------------------------------------------------

_SAFETENSORS_DTYPES = {"F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
                       "BF16": np.dtype(ml_dtypes.bfloat16), "I64": np.dtype("<i8"),
                       "I32": np.dtype("<i4")}


def read_weights(path) -> dict[str, np.ndarray]:
    """The tensors of a .npz, .safetensors or (with torch) .pth/.pt/.bin state dict by name."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise ConversionError(f"weights file {str(path)!r} does not exist (or is not a file)")
    suffix = path.suffix.lower()
    readers = {".npz": _read_npz, ".safetensors": _read_safetensors, ".pth": _read_torch,
               ".pt": _read_torch, ".bin": _read_torch}
    if suffix not in readers:
        raise ConversionError(f"weights file {str(path)!r}: unknown format {suffix!r}; expected "
                              ".npz, .safetensors, or .pth / .pt / .bin (PyTorch, needs torch)")
    try:
        weights = readers[suffix](path)
    except ConversionError:
        raise
    except Exception as e:  # whatever the file's parser raises on a damaged or foreign file
        raise ConversionError(f"weights file {str(path)!r} cannot be read as {suffix}: "
                              f"{type(e).__name__}: {e}") from e
    if weights and all(k.startswith("module.") for k in weights):  # saved from DataParallel
        weights = {k.removeprefix("module."): v for k, v in weights.items()}
    return weights


def _read_npz(path: pathlib.Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def _read_safetensors(path: pathlib.Path) -> dict[str, np.ndarray]:
    try:
        import safetensors
    except ImportError:
        raise ConversionError(f"reading {str(path)!r} needs the safetensors package: "
                              "pip install -e '.[convert]'") from None
    out = {}
    for name, tensor in safetensors.deserialize(path.read_bytes()):
        dtype = _SAFETENSORS_DTYPES.get(tensor["dtype"])
        if dtype is None:
            raise ConversionError(f"weights file {str(path)!r}: tensor {name!r} has dtype "
                                  f"{tensor['dtype']}; expected one of "
                                  f"{', '.join(_SAFETENSORS_DTYPES)}")
        out[name] = np.frombuffer(tensor["data"], dtype).reshape(tensor["shape"])
    return out


def _read_torch(path: pathlib.Path) -> dict[str, np.ndarray]:
    try:
        import torch
    except ImportError:
        raise ConversionError(
            f"reading {str(path)!r} (a PyTorch pickle) needs torch, which is not installed: "
            "pip install -e '.[torch]' (a CPU wheel is enough), or save the state dict as "
            ".safetensors or .npz where torch is installed") from None
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):  # a training script's checkpoint
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict):
        raise ConversionError(f"weights file {str(path)!r} holds a {type(state).__name__}, "
                              "not a state dict (name -> tensor)")
    return {k: (v.detach().float() if v.is_floating_point() else v).numpy()
            for k, v in state.items() if torch.is_tensor(v)}


# --- mapping tensors onto a model --------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _Use:
    path: str  # our variable
    part: int | None  # its third of timm's fused qkv (None: the whole tensor)
    kind: str  # conv (OIHW -> HWIO) | linear (transposed) | same


def _source_name(spec: _Source, path: str) -> tuple[str, int | None] | None:
    """(the source's tensor, part of a fused qkv) that holds our variable `path`, or None."""
    module, _, leaf = path.rpartition("/")
    if not module:
        return (spec.top_level[leaf], None) if leaf in spec.top_level else None
    if leaf not in _LEAVES:
        return None
    for pattern, name in spec.modules:
        if match := re.fullmatch(pattern, module):
            last = module.rsplit("/", 1)[-1]
            return f"{match.expand(name)}.{_LEAVES[leaf]}", (
                _QKV.index(last) if last in _QKV else None)
    return None


def _variables(model: nnx.Module) -> dict[str, nnx.Variable]:
    """The model's parameters and BatchNorm statistics by '/'-joined path."""
    params, stats = nnx.state(model, nnx.Param, nnx.BatchStat)
    return {"/".join(map(str, p)): v for s in (params, stats) for p, v in nnx.to_flat_state(s)}


def _plan(spec: _Source, variables: dict, described: str) -> dict[str, list[_Use]]:
    """The source's tensor names -> the variables each one fills."""
    plan, uncovered = {}, []
    for path, var in variables.items():
        found = _source_name(spec, path)
        if found is None:
            uncovered.append(path)
            continue
        leaf = path.rsplit("/", 1)[-1]
        kind = {4: "conv", 2: "linear"}.get(len(var.shape), "same") if leaf == "kernel" \
            else "same"
        plan.setdefault(found[0], []).append(_Use(path, found[1], kind))
    if uncovered:
        raise ConversionError(f"{described} has variables that {spec.title} weights do not "
                              f"hold: {_few(uncovered)}; use a config whose model is that "
                              "network")
    return plan


def _source_shape(uses: list[_Use], variables: dict) -> tuple[int, ...]:
    """The shape, in the source's layout, of the tensor that fills `uses`."""
    use = uses[0]
    shape = tuple(variables[use.path].shape)
    if use.kind == "conv":  # HWIO <- OIHW
        shape = (shape[3], shape[2], shape[0], shape[1])
    elif use.kind == "linear":  # (in, out) <- (out, in)
        shape = shape[::-1]
    if use.part is not None:  # q, k, v stacked along the rows
        shape = (len(_QKV) * shape[0], *shape[1:])
    return shape


def _to_ours(x: np.ndarray, use: _Use, dtype) -> np.ndarray:
    if use.part is not None:
        x = np.split(x, len(_QKV))[use.part]
    if use.kind == "conv":
        x = x.transpose(2, 3, 1, 0)
    elif use.kind == "linear":
        x = x.T
    return np.ascontiguousarray(x, dtype=dtype)


def _few(names, n: int = 5) -> str:
    names = list(names)
    shown = ", ".join(repr(k) for k in names[:n])
    return shown + (f" and {len(names) - n} more" if len(names) > n else "")


def expected_shapes(source: str, model: nnx.Module, described: str = "the model"
                    ) -> dict[str, tuple[int, ...]]:
    """The tensors (names and shapes in the source's layout) that `model` needs from `source`
    weights; `model` may be abstract (nnx.eval_shape)."""
    spec = _source(source)
    variables = _variables(model)
    return {name: _source_shape(uses, variables)
            for name, uses in _plan(spec, variables, described).items()}


def convert(source: str, weights: dict, model: nnx.Module, described: str = "the model"
            ) -> dict[str, np.ndarray]:
    """Our variables (parameters and BatchNorm statistics, by '/'-joined path, in the model's
    layout and dtypes) from `source` weights (name -> array). Raises ConversionError, naming
    the tensor and `described`, on a missing, unexpected or mis-shaped tensor. Checks names and
    shapes only: check_config covers what they cannot show."""
    spec = _source(source)
    variables = _variables(model)
    plan = _plan(spec, variables, described)
    missing = [name for name in plan if name not in weights]
    unexpected = sorted(k for k in weights if k not in plan and not k.endswith(_IGNORED))
    if missing or unexpected:
        found = []
        if missing:
            found.append(f"they lack {len(missing)} of its {len(plan)} tensors: "
                         f"{_few(missing)}")
        if unexpected:
            found.append(f"they hold {len(unexpected)} tensors it has no place for: "
                         f"{_few(unexpected)}")
        raise ConversionError(f"these are not the {spec.title} weights that {described} "
                              "needs: " + "; ".join(found))
    bad = [(name, np.shape(weights[name]), _source_shape(uses, variables), uses)
           for name, uses in plan.items()
           if np.shape(weights[name]) != _source_shape(uses, variables)]
    if bad:
        shown = "; ".join(f"{name!r} has shape {got}, needs {expected} (for "
                          f"{', '.join(u.path for u in uses)})"
                          for name, got, expected, uses in bad[:3])
        more = f"; and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise ConversionError(f"{len(bad)} of the {len(plan)} tensors have shapes {described} "
                              f"cannot take: {shown}{more}")
    return {use.path: _to_ours(np.asarray(weights[name]), use, variables[use.path].dtype)
            for name, uses in plan.items() for use in uses}


def assign(model: nnx.Module, converted: dict[str, np.ndarray]) -> None:
    """Sets the model's parameters and BatchNorm statistics to `converted` (convert's output)."""
    for path, var in _variables(model).items():
        var.set_value(np.asarray(converted[path]))


def check_config(source: str, model_cfg: ml_collections.ConfigDict) -> None:
    """Raises ConversionError where the config's model would compute another function than the
    source network from the same tensors: what the tensors' shapes cannot show."""
    spec = _source(source)
    wrong = {k: v for k, v in spec.model.items() if model_cfg[k] != v}
    if source == "torchvision_resnet18" and model_cfg.stem not in ("", "imagenet"):
        wrong["stem"] = "imagenet"
    if wrong:
        have = ", ".join(f"model.{k}={model_cfg[k]!r}" for k in wrong)
        fix = " ".join(f"--config.model.{k}={v}" for k, v in wrong.items())
        raise ConversionError(f"{spec.title} weights need a model with "
                              f"{', '.join(f'model.{k}={v!r}' for k, v in wrong.items())}; "
                              f"the config has {have}. Set them in the config or pass {fix} "
                              "(to the run that starts from the checkpoint too)")
    if model_cfg.name == "vit" and model_cfg.variant in ("", *VARIANTS):  # else: build says
        shape = VARIANTS[model_cfg.variant] if model_cfg.variant else model_cfg
        standard = {v["width"]: (name, v["num_heads"]) for name, v in VARIANTS.items()}
        name, heads = standard.get(shape["width"], (None, shape["num_heads"]))
        if shape["num_heads"] != heads:
            raise ConversionError(
                f"timm's ViT-{name} (width {shape['width']}) has {heads} attention heads; the "
                f"config's model has {shape['num_heads']}: set model.num_heads={heads} (or "
                f"model.variant={name})")


# --- the checkpoint ----------------------------------------------------------------------------

def _info(source: str, weights: dict, config):
    """The dataset facts the model is built with, from the weights: input channels and class
    count; the image size from data.image_size, else (ViT) from pos_embed."""
    first, last = (("conv1.weight", "fc.weight") if source == "torchvision_resnet18"
                   else ("patch_embed.proj.weight", "head.weight"))
    # A missing tensor is reported by convert, with the whole list.
    channels = int(weights[first].shape[1]) if first in weights else 3
    classes = int(weights[last].shape[0]) if last in weights else 1000
    side = config.data.image_size or 224
    if source == "timm_vit_b16" and not config.data.image_size and "pos_embed" in weights:
        grid = math.isqrt(max(weights["pos_embed"].shape[1] - 1, 0))
        side = grid * config.model.patch_size or side
    return data.DatasetInfo(config.data.name, (side, side, channels), classes, 0, 0)


def _describe(config, info, config_name: str) -> str:
    m = config.model
    if m.name == "vit":
        shape = (f"variant {m.variant}" if m.variant else
                 f"width {m.width}, depth {m.depth}, {m.num_heads} heads, mlp_dim {m.mlp_dim}")
        h, w, _ = info.image_shape
        model = f"vit {shape}, patch {m.patch_size}, {h}x{w} images"
    else:
        model = f"{m.name} depth {m.depth}, width {m.width}"
    return (f"the model of {config_name} ({model}; {info.num_classes} classes, "
            f"{info.image_shape[2]}-channel input)")


def _refuse_overwrite(workdir: epath.Path) -> None:
    checkpoints = workdir / "checkpoints"
    if (workdir / "config.json").exists() or (checkpoints.is_dir()
                                              and any(checkpoints.iterdir())):
        raise ConversionError(f"{str(workdir)!r} already holds a run or a converted checkpoint; "
                              "nothing was written. Pass a new --workdir (or delete that one)")


def write_checkpoint(source: str, weights_path, config: ml_collections.ConfigDict, workdir,
                     config_name: str = "the config") -> epath.Path:
    """Converts a weights file for `config`'s model and writes workdir/checkpoints/0 (plus
    config.json and converted.json); returns the checkpoint's directory. Every check runs
    before the first write."""
    _source(source)
    files.check_workdir(str(workdir))
    workdir = files.as_path(workdir)
    _refuse_overwrite(workdir)
    weights = read_weights(weights_path)
    check_config(source, config.model)
    info = _info(source, weights, config)
    setup = train.build(config, info)
    converted = convert(source, weights, setup.model(setup.init_state),
                        _describe(config, info, config_name))
    fresh = setup.init_state
    stats = traverse_util.flatten_dict(fresh["batch_stats"], sep="/")
    state = {**fresh, "params": {k: converted[k] for k in fresh["params"]},
             "batch_stats": traverse_util.unflatten_dict({k: converted[k] for k in stats},
                                                         sep="/")}
    ckpt = checkpoint.Checkpointer(workdir / "checkpoints", keep=1, async_save=False)
    try:
        ckpt.save(0, state, None)  # None: a run from it starts at its own data order's start
    finally:
        ckpt.close()
    files.write_text_atomic(workdir / "config.json", json.dumps(
        json.loads(config.to_json_best_effort()), indent=2, sort_keys=True) + "\n")
    digest = hashlib.sha256(pathlib.Path(weights_path).read_bytes()).hexdigest()
    files.write_text_atomic(workdir / "converted.json", json.dumps(
        {"source": source, "weights": str(pathlib.Path(weights_path).resolve()),
         "sha256": digest, "variables": len(converted), "config": config_name}, indent=2)
        + "\n")
    return workdir / "checkpoints" / "0"


# --- command line ------------------------------------------------------------------------------

def _override(config: ml_collections.ConfigDict, key: str, text: str):
    """The typed value of `--config.KEY=TEXT`, typed by the key's current value."""
    node, done = config, []
    for part in key.split("."):
        if not isinstance(node, ml_collections.ConfigDict) or part not in node:
            options = list(node.keys()) if isinstance(node, ml_collections.ConfigDict) else []
            close = config_lib.closest_keys(part, options)
            hint = f" Did you mean: {', '.join('.'.join([*done, c]) for c in close)}?" \
                if close else ""
            raise config_lib.ConfigError(f"unknown config key {key!r}.{hint}")
        node, done = node[part], [*done, part]
    if isinstance(node, bool):
        if text.lower() not in ("true", "false", "1", "0"):
            raise config_lib.ConfigError(f"--config.{key} is a boolean, got {text!r}")
        return text.lower() in ("true", "1")
    if isinstance(node, tuple):
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        return tuple(value) if isinstance(value, (tuple, list)) else (value,)
    try:
        return type(node)(text)
    except ValueError:
        raise config_lib.ConfigError(f"--config.{key} expects {type(node).__name__}, got "
                                     f"{text!r}") from None


def load_config(spec: str, overrides: list[str]) -> ml_collections.ConfigDict:
    """CONFIG.py[:arg] with `--config.KEY=VALUE` (or `--config.KEY VALUE`) overrides, validated."""
    config = config_lib.load_file(*config_lib.split_config_spec(spec), check=False)
    changes, rest = {}, list(overrides)
    while rest:
        item = rest.pop(0)
        key, eq, text = item.removeprefix("--config.").partition("=")
        if not item.startswith("--config.") or not key:
            raise config_lib.ConfigError(f"unexpected argument {item!r}; config overrides are "
                                         "--config.KEY=VALUE")
        if not eq:
            if not rest:
                raise config_lib.ConfigError(f"{item} needs a value")
            text = rest.pop(0)
        changes[key] = _override(config, key, text)
    config = config_lib.updated(config, changes)
    config_lib.validate(config)
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lib.convert", allow_abbrev=False,
        description=__doc__.splitlines()[0],
        epilog="Config overrides follow, as with lib.main: --config.KEY=VALUE ...")
    parser.add_argument("--source", required=True, choices=list(SOURCES))
    parser.add_argument("--weights", required=True,
                        help="the state dict: .npz, .safetensors, or .pth/.pt/.bin (needs torch)")
    parser.add_argument("--config", required=True,
                        help="CONFIG.py[:arg] whose model receives the weights")
    parser.add_argument("--workdir", required=True, help="new folder for the checkpoint")
    args, overrides = parser.parse_known_args(argv)
    metrics.quiet_library_logs()
    try:
        config = load_config(args.config, overrides)
        step_dir = write_checkpoint(args.source, args.weights, config, args.workdir,
                                    config_name=args.config)
    except (ConversionError, config_lib.ConfigError, files.WorkdirError) as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    print(f"wrote {step_dir}; start a run of this config from it with "
          f"--config.init.workdir={args.workdir}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
