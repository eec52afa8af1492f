"""CIFAR and ImageNet ResNets (open_lth / torchvision layouts) as Flax NNX modules.

Parameter paths: 'stem/conv', 'stem/bn', 'stage{s}/block{j}/{conv1,bn1,conv2,bn2[,conv3,bn3]}',
'stage{s}/block{j}/shortcut_{conv,bn}' (projection shortcuts only) and 'head'; stages count
from 1, blocks from 0. With features=True the model also returns an OrderedDict of post-ReLU
activations keyed by the same module paths: 'stem' (for ImageNet after the max-pool, i.e. the
input of stage1), 'stage1/block0', ..., then 'pool' (the globally averaged features fed to the
head).
"""
import collections

import jax
import jax.numpy as jnp
from flax import nnx

from lib.models.layers import DEFAULT_LAYERS, PAD1, LayerSpec, apply_head, global_avg_pool

IMAGENET_DEPTHS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
    200: ("bottleneck", (3, 24, 36, 3)),
}


class BasicBlock(nnx.Module):
    """Post-activation basic block: conv3x3-BN-ReLU-conv3x3-BN, add shortcut, ReLU."""

    expansion = 1

    def __init__(self, cin, width, stride, layers: LayerSpec, *, shortcut: str = "projection",
                 mask_pruned_residual: bool = False, rngs: nnx.Rngs):
        cout = width * self.expansion
        self.conv1 = layers.conv(cin, width, 3, stride, padding=PAD1, rngs=rngs)
        self.bn1 = layers.bn(width, rngs=rngs)
        self.conv2 = layers.conv(width, cout, 3, padding=PAD1, rngs=rngs)
        self.bn2 = layers.bn(cout, rngs=rngs)
        _add_shortcut(self, cin, cout, stride, layers, shortcut, rngs)
        self.mask_pruned_residual = mask_pruned_residual
        self.record_activations = False  # set on a merged model to sow the two below

    def __call__(self, x, *, train: bool):
        y = self.bn1(self.conv1(x), use_running_average=not train)
        if self.record_activations:  # BN1 output before ReLU (pruning_stability activations)
            self.sow(nnx.Intermediate, "bn1_output", y)
        y = self.bn2(self.conv2(jax.nn.relu(y)), use_running_average=not train)
        out = _residual_sum(self, self.bn2, y, x, train)
        if self.record_activations:  # the (masked) residual sum before ReLU
            self.sow(nnx.Intermediate, "residual_sum", out)
        return jax.nn.relu(out)


class Bottleneck(nnx.Module):
    """torchvision v1.5 bottleneck: the stride sits in the 3x3 conv; output is 4x width."""

    expansion = 4

    def __init__(self, cin, width, stride, layers: LayerSpec, *, shortcut: str = "projection",
                 mask_pruned_residual: bool = False, rngs: nnx.Rngs):
        cout = width * self.expansion
        self.conv1 = layers.conv(cin, width, 1, padding="VALID", rngs=rngs)
        self.bn1 = layers.bn(width, rngs=rngs)
        self.conv2 = layers.conv(width, width, 3, stride, padding=PAD1, rngs=rngs)
        self.bn2 = layers.bn(width, rngs=rngs)
        self.conv3 = layers.conv(width, cout, 1, padding="VALID", rngs=rngs)
        self.bn3 = layers.bn(cout, rngs=rngs)
        _add_shortcut(self, cin, cout, stride, layers, shortcut, rngs)
        self.mask_pruned_residual = mask_pruned_residual

    def __call__(self, x, *, train: bool):
        y = jax.nn.relu(self.bn1(self.conv1(x), use_running_average=not train))
        y = jax.nn.relu(self.bn2(self.conv2(y), use_running_average=not train))
        y = self.bn3(self.conv3(y), use_running_average=not train)
        return jax.nn.relu(_residual_sum(self, self.bn3, y, x, train))


SHORTCUTS = ("projection", "zero_pad")


def _add_shortcut(block, cin, cout, stride, layers, kind, rngs):
    """Where the shape changes: a projection (1x1 conv + BN), or He et al.'s parameter-free
    option A ("zero_pad": subsample by the stride, zero-pad the new channels); identity
    otherwise."""
    if kind not in SHORTCUTS:
        raise ValueError(f"unknown shortcut {kind!r}; valid choices: {', '.join(SHORTCUTS)}")
    block.pad = None
    if stride == 1 and cin == cout:
        block.shortcut_conv = block.shortcut_bn = None
        return
    if kind == "zero_pad":
        extra = cout - cin
        if extra < 0 or extra % 2:
            raise ValueError(f"zero_pad shortcut needs an even channel increase ({cin}→{cout})")
        block.shortcut_conv = block.shortcut_bn = None
        block.pad = (stride, extra // 2)
        return
    # 'VALID' 1x1 stride 2 gives floor((H-1)/2)+1 = ceil(H/2), the same size as the 3x3 path.
    block.shortcut_conv = layers.conv(cin, cout, 1, stride, padding="VALID", rngs=rngs)
    block.shortcut_bn = layers.bn(cout, rngs=rngs)


def _residual_sum(block, last_bn, y, x, train):
    """y + shortcut(x); with mask_pruned_residual, channels whose last BN has γ = β = 0
    exactly (filter-pruned: the masked optimizer keeps them there) stay 0, so a pruned filter
    is silent at the block output too (pruning_stability.md §2)."""
    out = y + _shortcut(block, x, train)
    if block.mask_pruned_residual:
        alive = (last_bn.scale.value != 0) | (last_bn.bias.value != 0)
        out = out * alive.astype(out.dtype)
    return out


def _shortcut(block, x, train):
    if block.pad is not None:
        stride, channels = block.pad
        return jnp.pad(x[:, ::stride, ::stride, :], ((0, 0), (0, 0), (0, 0), (channels, channels)))
    if block.shortcut_conv is None:
        return x
    return block.shortcut_bn(block.shortcut_conv(x), use_running_average=not train)


class Stem(nnx.Module):
    """conv-BN-ReLU, then (ImageNet only) a 3x3/2 max-pool."""

    def __init__(self, cin, cout, kernel, stride, layers: LayerSpec, *, max_pool: bool,
                 rngs: nnx.Rngs):
        pad = kernel // 2
        self.conv = layers.conv(cin, cout, kernel, stride, padding=((pad, pad), (pad, pad)),
                                rngs=rngs)
        self.bn = layers.bn(cout, rngs=rngs)
        self.max_pool = max_pool

    def __call__(self, x, *, train: bool):
        x = jax.nn.relu(self.bn(self.conv(x), use_running_average=not train))
        if self.max_pool:
            # Padding with -inf, as PyTorch's MaxPool2d(3, 2, padding=1).
            x = nnx.max_pool(x, (3, 3), strides=(2, 2), padding=PAD1)
        return x


class Stage(nnx.Module):
    """Blocks as attributes block0, block1, ... so parameter paths read stage1/block0/..."""

    def __init__(self, block_cls, cin, width, num_blocks, stride, layers: LayerSpec, *,
                 block_options: dict, rngs: nnx.Rngs):
        self.num_blocks = num_blocks
        for j in range(num_blocks):
            setattr(self, f"block{j}", block_cls(cin, width, stride if j == 0 else 1, layers,
                                                 **block_options, rngs=rngs))
            cin = width * block_cls.expansion

    def blocks(self):
        return [(f"block{j}", getattr(self, f"block{j}")) for j in range(self.num_blocks)]


class ResNet(nnx.Module):
    """Stem, stages of residual blocks, global average pool, linear head."""

    def __init__(self, *, stem: Stem, block_cls, stem_width, widths, depths, strides,
                 num_classes, layers: LayerSpec, block_options: dict, rngs: nnx.Rngs):
        self.stem = stem
        self.num_stages = len(widths)
        cin = stem_width
        for s, (width, n, stride) in enumerate(zip(widths, depths, strides), start=1):
            setattr(self, f"stage{s}", Stage(block_cls, cin, width, n, stride, layers,
                                             block_options=block_options, rngs=rngs))
            cin = width * block_cls.expansion
        self.head = layers.head(cin, num_classes, rngs=rngs)

    def __call__(self, x, *, train: bool, features: bool = False):
        feats = collections.OrderedDict()
        x = self.stem(x, train=train)
        feats["stem"] = x
        for s in range(1, self.num_stages + 1):
            for name, block in getattr(self, f"stage{s}").blocks():
                x = block(x, train=train)
                feats[f"stage{s}/{name}"] = x
        x = global_avg_pool(x)
        feats["pool"] = x
        logits = apply_head(self.head, x)
        return (logits, feats) if features else logits


class CifarResNet(ResNet):
    """open_lth cifar_resnet_D_W: D = 6n+2, stage widths W, 2W, 4W, projection shortcuts
    (shortcut="zero_pad": He et al.'s option A, as the GST ResNet-20/56)."""

    def __init__(self, depth: int = 20, width: int = 16, *, num_classes: int,
                 in_channels: int = 3, layers: LayerSpec = DEFAULT_LAYERS,
                 shortcut: str = "projection", mask_pruned_residual: bool = False,
                 rngs: nnx.Rngs):
        if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
            raise ValueError(
                f"cifar_resnet depth must be 6n+2 (8, 14, 20, 32, 56, 110, ...), got {depth!r}")
        _check_width("cifar_resnet", width)
        n = (depth - 2) // 6
        super().__init__(
            stem=Stem(in_channels, width, 3, 1, layers, max_pool=False, rngs=rngs),
            block_cls=BasicBlock, stem_width=width, widths=(width, 2 * width, 4 * width),
            depths=(n, n, n), strides=(1, 2, 2), num_classes=num_classes, layers=layers,
            block_options={"shortcut": shortcut, "mask_pruned_residual": mask_pruned_residual},
            rngs=rngs)


class ImageNetResNet(ResNet):
    """torchvision resnet{18,34,50,101,152} (and 200) with stage widths W, 2W, 4W, 8W.

    stem="cifar": a 3x3 stride-1 stem without max-pool, the usual CIFAR adaptation (the GST
    ResNet-18: 11,173,962 parameters at 10 classes)."""

    def __init__(self, depth: int = 50, width: int = 64, *, num_classes: int,
                 in_channels: int = 3, layers: LayerSpec = DEFAULT_LAYERS,
                 stem: str = "imagenet", mask_pruned_residual: bool = False, rngs: nnx.Rngs):
        if depth not in IMAGENET_DEPTHS:
            raise ValueError(f"imagenet_resnet depth must be one of "
                             f"{', '.join(map(str, IMAGENET_DEPTHS))}, got {depth!r}")
        _check_width("imagenet_resnet", width)
        kind, depths = IMAGENET_DEPTHS[depth]
        if stem not in ("imagenet", "cifar"):
            raise ValueError(f"unknown stem {stem!r}; valid choices: imagenet, cifar")
        kernel, stride = (7, 2) if stem == "imagenet" else (3, 1)
        super().__init__(
            stem=Stem(in_channels, width, kernel, stride, layers, max_pool=stem == "imagenet",
                      rngs=rngs),
            block_cls=BasicBlock if kind == "basic" else Bottleneck, stem_width=width,
            widths=(width, 2 * width, 4 * width, 8 * width), depths=depths,
            strides=(1, 2, 2, 2), num_classes=num_classes, layers=layers,
            block_options={"mask_pruned_residual": mask_pruned_residual}, rngs=rngs)


def _check_width(name, width):
    if not isinstance(width, int) or width < 1:
        raise ValueError(f"{name} width must be a positive integer, got {width!r}")
