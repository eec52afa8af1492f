"""Model zoo: build(model_cfg, ...) -> Flax NNX module, and param_roles(model).

Families (architectures: /work/shared/papers/lth_common.md §1): 'cifar_resnet',
'imagenet_resnet', 'cifar_vgg', and 'vit' (big_vision's Vision Transformer). Every model is
called as ``model(x, *, train, features=False)`` on NHWC input and returns float32 logits, or
``(logits, feats)`` with an OrderedDict of intermediate activations when features=True.
The output layer is always the attribute ``head``; parameter paths are described in the
docstrings of lib.models.resnet, lib.models.vgg and lib.models.vit.
"""
from flax import nnx

from lib import registry
from lib.models.convnet import ConvNet
from lib.models.layers import BN_INITS, DTYPES, KERNEL_INITS, LayerSpec
from lib.models.mlp import MLP
from lib.models.resnet import CifarResNet, ImageNetResNet
from lib.models.slimmable import (
    SlimCifarResNet,
    SlimImageNetResNet,
    SlimMobileNetV2,
    SlimMobileNetV3,
)
from lib.models.strided import StridedConvNet
from lib.models.transformer import Frozen
from lib.models.vgg import CifarVGG
from lib.models.vit import VARIANTS, ViT

MODELS = ("cifar_resnet", "imagenet_resnet", "cifar_vgg", "convnet", "strided_convnet", "mlp",
          "vit", "slim_cifar_resnet", "slim_imagenet_resnet", "slim_mobilenet_v2",
          "slim_mobilenet_v3")
ROLES = ("bn_scale", "bn_bias", "ln_scale", "ln_bias", "head_kernel", "head_bias", "conv_kernel",
         "conv_bias", "linear_kernel", "linear_bias", "other")

__all__ = [
    "BN_INITS",
    "DTYPES",
    "KERNEL_INITS",
    "MODELS",
    "ROLES",
    "VARIANTS",
    "CifarResNet",
    "CifarVGG",
    "ConvNet",
    "ImageNetResNet",
    "SlimCifarResNet",
    "SlimImageNetResNet",
    "SlimMobileNetV2",
    "SlimMobileNetV3",
    "LayerSpec",
    "MLP",
    "StridedConvNet",
    "ViT",
    "build",
    "frozen_params",
    "param_roles",
]


def layer_spec(model_cfg) -> LayerSpec:
    """The init and numerics settings of model_cfg (for a paper's own model factory too)."""
    return LayerSpec(
        kernel_init=model_cfg.kernel_init, linear_init=model_cfg.linear_init,
        bn_init=model_cfg.bn_init, bn_momentum=model_cfg.bn_momentum,
        bn_epsilon=model_cfg.bn_epsilon, bn_group_size=model_cfg.bn_group_size,
        dtype=model_cfg.dtype, conv_weight_grad=model_cfg.conv_weight_grad,
        bias_init=model_cfg.bias_init)


def build(model_cfg, *, num_classes: int, in_channels: int, image_size=None,
          rngs: nnx.Rngs) -> nnx.Module:
    """The model named by model_cfg.name (keys as in configs/base.py; VGG ignores width).

    A name "module.path:Name" is a callable with this function's arguments that returns the
    module: a paper's own model, in its folder. image_size, (height, width) or an int, is
    needed by 'vit' and 'mlp' only; the conv nets accept any input size and ignore it. For
    'vit' a non-empty model.variant (Ti, S, B, L) sets width, depth, num_heads and mlp_dim;
    the kernel_init and bn_* keys do not apply (big_vision initialisation, no BatchNorm).
    The slimmable ImageNet ResNet (model.depth 18/34/50) and MobileNets (V3:
    model.mobilenet_kind) have the paper's code's base widths (model.width does not apply)
    unless scaled: the ResNet by model.stage_widths and model.layout, MobileNetV2 by
    model.width_mult and model.depth_mult (width_transfer's scaled-up nets); their classes'
    default dropout (MobileNetV2 0.5, V3 0).
    """
    if registry.is_spec(model_cfg.name):
        factory = registry.resolve(model_cfg.name, "model.name")
        return factory(model_cfg, num_classes=num_classes, in_channels=in_channels,
                       image_size=image_size, rngs=rngs)
    if model_cfg.name == "vit":
        return _build_vit(model_cfg, num_classes, in_channels, image_size, rngs)
    layers = layer_spec(model_cfg)
    common = {"num_classes": num_classes, "in_channels": in_channels, "layers": layers,
              "rngs": rngs}
    residual = {"mask_pruned_residual": model_cfg.mask_pruned_residual}
    if model_cfg.name == "cifar_resnet":
        return CifarResNet(model_cfg.depth, model_cfg.width, shortcut=model_cfg.shortcut,
                           **residual, **common)
    if model_cfg.name == "imagenet_resnet":
        return ImageNetResNet(model_cfg.depth, model_cfg.width, stem=model_cfg.stem or "imagenet",
                              **residual, **common)
    if model_cfg.name == "slim_cifar_resnet":
        return SlimCifarResNet(model_cfg.depth, model_cfg.width, stem=model_cfg.stem or "1x1",
                               **common)
    if model_cfg.name == "slim_imagenet_resnet":
        return SlimImageNetResNet(model_cfg.depth, widths=tuple(model_cfg.stage_widths) or None,
                                  layout=tuple(model_cfg.layout) or None, **common)
    if model_cfg.name == "slim_mobilenet_v2":
        return SlimMobileNetV2(width_mult=model_cfg.width_mult, depth_mult=model_cfg.depth_mult,
                               **common)
    if model_cfg.name == "slim_mobilenet_v3":
        return SlimMobileNetV3(model_cfg.mobilenet_kind, **common)
    if model_cfg.name == "cifar_vgg":
        return CifarVGG(model_cfg.depth, final_pool=model_cfg.final_pool, **common)
    if model_cfg.name == "convnet":
        return ConvNet(model_cfg.widths, model_cfg.pool_after, **common)
    if model_cfg.name == "strided_convnet":
        return StridedConvNet(model_cfg.widths, model_cfg.strides,
                              padding=model_cfg.conv_padding, **common)
    if model_cfg.name == "mlp":
        if image_size is None:
            raise ValueError("mlp needs the input image size: pass image_size=(height, width)")
        h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
        in_features = h * w * common.pop("in_channels")
        return MLP(model_cfg.widths, in_features=in_features, **common)
    raise ValueError(f"unknown model name {model_cfg.name!r}; valid choices: {', '.join(MODELS)}")


def _build_vit(model_cfg, num_classes, in_channels, image_size, rngs):
    if image_size is None:
        raise ValueError("vit needs the input image size: pass image_size=(height, width)")
    shape = {"width": model_cfg.width, "depth": model_cfg.depth,
             "num_heads": model_cfg.num_heads, "mlp_dim": model_cfg.mlp_dim}
    if model_cfg.variant:
        if model_cfg.variant not in VARIANTS:
            raise ValueError(f"unknown vit variant {model_cfg.variant!r}; valid choices: "
                             f"'' (explicit sizes), {', '.join(VARIANTS)}")
        shape = VARIANTS[model_cfg.variant]
    return ViT(image_size=image_size, patch_size=model_cfg.patch_size, **shape,
               num_classes=num_classes, in_channels=in_channels, pool=model_cfg.pool,
               dtype=model_cfg.dtype, gelu=model_cfg.gelu, rngs=rngs)


_SUFFIX = {nnx.BatchNorm: {"scale": "bn_scale", "bias": "bn_bias"},
           nnx.LayerNorm: {"scale": "ln_scale", "bias": "ln_bias"},
           nnx.Conv: {"kernel": "conv_kernel", "bias": "conv_bias"},
           nnx.Linear: {"kernel": "linear_kernel", "bias": "linear_bias"}}


def frozen_params(model: nnx.Module) -> list[str]:
    """Paths of the parameters inside modules of a `Frozen` layer type (reservoirs): fixed at
    their initial values by construction, so the trainer never gives them optimizer state."""
    return sorted("/".join(map(str, (*mpath, *path)))
                  for mpath, module in nnx.iter_modules(model) if isinstance(module, Frozen)
                  for path, _ in nnx.to_flat_state(nnx.state(module, nnx.Param)))


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
