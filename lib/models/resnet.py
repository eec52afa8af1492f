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

from lib.models.layers import DEFAULT_LAYERS, PAD1, LayerSpec, global_avg_pool

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

    def __init__(self, cin, width, stride, layers: LayerSpec, *, rngs: nnx.Rngs):
        cout = width * self.expansion
        self.conv1 = layers.conv(cin, width, 3, stride, padding=PAD1, rngs=rngs)
        self.bn1 = layers.bn(width, rngs=rngs)
        self.conv2 = layers.conv(width, cout, 3, padding=PAD1, rngs=rngs)
        self.bn2 = layers.bn(cout, rngs=rngs)
        _add_shortcut(self, cin, cout, stride, layers, rngs)

    def __call__(self, x, *, train: bool):
        y = jax.nn.relu(self.bn1(self.conv1(x), use_running_average=not train))
        y = self.bn2(self.conv2(y), use_running_average=not train)
        return jax.nn.relu(y + _shortcut(self, x, train))


class Bottleneck(nnx.Module):
    """torchvision v1.5 bottleneck: the stride sits in the 3x3 conv; output is 4x width."""

    expansion = 4

    def __init__(self, cin, width, stride, layers: LayerSpec, *, rngs: nnx.Rngs):
        cout = width * self.expansion
        self.conv1 = layers.conv(cin, width, 1, padding="VALID", rngs=rngs)
        self.bn1 = layers.bn(width, rngs=rngs)
        self.conv2 = layers.conv(width, width, 3, stride, padding=PAD1, rngs=rngs)
        self.bn2 = layers.bn(width, rngs=rngs)
        self.conv3 = layers.conv(width, cout, 1, padding="VALID", rngs=rngs)
        self.bn3 = layers.bn(cout, rngs=rngs)
        _add_shortcut(self, cin, cout, stride, layers, rngs)

    def __call__(self, x, *, train: bool):
        y = jax.nn.relu(self.bn1(self.conv1(x), use_running_average=not train))
        y = jax.nn.relu(self.bn2(self.conv2(y), use_running_average=not train))
        y = self.bn3(self.conv3(y), use_running_average=not train)
        return jax.nn.relu(y + _shortcut(self, x, train))


def _add_shortcut(block, cin, cout, stride, layers, rngs):
    """Projection (1x1 conv + BN) where the shape changes, identity otherwise."""
    if stride == 1 and cin == cout:
        block.shortcut_conv = block.shortcut_bn = None
        return
    # 'VALID' 1x1 stride 2 gives floor((H-1)/2)+1 = ceil(H/2), the same size as the 3x3 path.
    block.shortcut_conv = layers.conv(cin, cout, 1, stride, padding="VALID", rngs=rngs)
    block.shortcut_bn = layers.bn(cout, rngs=rngs)


def _shortcut(block, x, train):
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
                 rngs: nnx.Rngs):
        self.num_blocks = num_blocks
        for j in range(num_blocks):
            setattr(self, f"block{j}",
                    block_cls(cin, width, stride if j == 0 else 1, layers, rngs=rngs))
            cin = width * block_cls.expansion

    def blocks(self):
        return [(f"block{j}", getattr(self, f"block{j}")) for j in range(self.num_blocks)]


class ResNet(nnx.Module):
    """Stem, stages of residual blocks, global average pool, linear head."""

    def __init__(self, *, stem: Stem, block_cls, stem_width, widths, depths, strides,
                 num_classes, layers: LayerSpec, rngs: nnx.Rngs):
        self.stem = stem
        self.num_stages = len(widths)
        cin = stem_width
        for s, (width, n, stride) in enumerate(zip(widths, depths, strides), start=1):
            setattr(self, f"stage{s}", Stage(block_cls, cin, width, n, stride, layers, rngs=rngs))
            cin = width * block_cls.expansion
        self.head = layers.linear(cin, num_classes, rngs=rngs)

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
        logits = self.head(x).astype(jnp.float32)
        return (logits, feats) if features else logits


class CifarResNet(ResNet):
    """open_lth cifar_resnet_D_W: D = 6n+2, stage widths W, 2W, 4W, projection shortcuts."""

    def __init__(self, depth: int = 20, width: int = 16, *, num_classes: int,
                 in_channels: int = 3, layers: LayerSpec = DEFAULT_LAYERS, rngs: nnx.Rngs):
        if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
            raise ValueError(
                f"cifar_resnet depth must be 6n+2 (8, 14, 20, 32, 56, 110, ...), got {depth!r}")
        _check_width("cifar_resnet", width)
        n = (depth - 2) // 6
        super().__init__(
            stem=Stem(in_channels, width, 3, 1, layers, max_pool=False, rngs=rngs),
            block_cls=BasicBlock, stem_width=width, widths=(width, 2 * width, 4 * width),
            depths=(n, n, n), strides=(1, 2, 2), num_classes=num_classes, layers=layers,
            rngs=rngs)


class ImageNetResNet(ResNet):
    """torchvision resnet{18,34,50,101,152} (and 200) with stage widths W, 2W, 4W, 8W."""

    def __init__(self, depth: int = 50, width: int = 64, *, num_classes: int,
                 in_channels: int = 3, layers: LayerSpec = DEFAULT_LAYERS, rngs: nnx.Rngs):
        if depth not in IMAGENET_DEPTHS:
            raise ValueError(f"imagenet_resnet depth must be one of "
                             f"{', '.join(map(str, IMAGENET_DEPTHS))}, got {depth!r}")
        _check_width("imagenet_resnet", width)
        kind, depths = IMAGENET_DEPTHS[depth]
        super().__init__(
            stem=Stem(in_channels, width, 7, 2, layers, max_pool=True, rngs=rngs),
            block_cls=BasicBlock if kind == "basic" else Bottleneck, stem_width=width,
            widths=(width, 2 * width, 4 * width, 8 * width), depths=depths,
            strides=(1, 2, 2, 2), num_classes=num_classes, layers=layers, rngs=rngs)


def _check_width(name, width):
    if not isinstance(width, int) or width < 1:
        raise ValueError(f"{name} width must be a positive integer, got {width!r}")
