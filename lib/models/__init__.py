"""Model zoo: build(model_cfg, ...) -> Flax NNX module, and param_roles(model).

Families (architectures: /work/shared/papers/lth_common.md §1): 'cifar_resnet',
'imagenet_resnet', 'cifar_vgg'. Every model is called as
``model(x, *, train, features=False)`` on NHWC input and returns float32 logits, or
``(logits, feats)`` with an OrderedDict of intermediate activations when features=True.
The output layer is always the attribute ``head``; parameter paths are described in the
docstrings of lib.models.resnet and lib.models.vgg.
"""
from flax import nnx

from lib.models.layers import BN_INITS, DTYPES, KERNEL_INITS, LayerSpec
from lib.models.resnet import CifarResNet, ImageNetResNet
from lib.models.vgg import CifarVGG

MODELS = ("cifar_resnet", "imagenet_resnet", "cifar_vgg")
ROLES = ("bn_scale", "bn_bias", "head_kernel", "head_bias", "conv_kernel", "conv_bias",
         "linear_kernel", "linear_bias", "other")

__all__ = [
    "BN_INITS",
    "DTYPES",
    "KERNEL_INITS",
    "MODELS",
    "ROLES",
    "CifarResNet",
    "CifarVGG",
    "ImageNetResNet",
    "LayerSpec",
    "build",
    "param_roles",
]


def build(model_cfg, *, num_classes: int, in_channels: int, rngs: nnx.Rngs) -> nnx.Module:
    """The model named by model_cfg.name (keys as in configs/base.py; VGG ignores width)."""
    layers = LayerSpec(
        kernel_init=model_cfg.kernel_init, bn_init=model_cfg.bn_init,
        bn_momentum=model_cfg.bn_momentum, bn_epsilon=model_cfg.bn_epsilon,
        dtype=model_cfg.dtype)
    common = {"num_classes": num_classes, "in_channels": in_channels, "layers": layers,
              "rngs": rngs}
    if model_cfg.name == "cifar_resnet":
        return CifarResNet(model_cfg.depth, model_cfg.width, **common)
    if model_cfg.name == "imagenet_resnet":
        return ImageNetResNet(model_cfg.depth, model_cfg.width, **common)
    if model_cfg.name == "cifar_vgg":
        return CifarVGG(model_cfg.depth, **common)
    raise ValueError(f"unknown model name {model_cfg.name!r}; valid choices: {', '.join(MODELS)}")


_SUFFIX = {nnx.BatchNorm: {"scale": "bn_scale", "bias": "bn_bias"},
           nnx.Conv: {"kernel": "conv_kernel", "bias": "conv_bias"},
           nnx.Linear: {"kernel": "linear_kernel", "bias": "linear_bias"}}


def param_roles(model: nnx.Module) -> dict[str, str]:
    """Role of every nnx.Param, keyed by its '/'-joined path, decided by the owning module's
    type (and the 'head' attribute for the output layer), so optimiser masks need no regexes.
    """
    paths = [p for p, _ in nnx.to_flat_state(nnx.state(model, nnx.Param))]
    roles = {"/".join(map(str, p)): "other" for p in paths}
    for mpath, module in nnx.iter_modules(model):
        for cls, by_name in _SUFFIX.items():
            if not isinstance(module, cls):
                continue
            for name, role in by_name.items():
                key = "/".join(map(str, (*mpath, name)))
                if key in roles:
                    if mpath == ("head",) and cls is nnx.Linear:
                        role = "head_" + name
                    roles[key] = role
    return roles
