"""lib.convert: torchvision ResNet-18 and timm ViT-B/16 state dicts onto our models.

The converted models are compared with a numpy forward pass written here from PyTorch's
semantics (torchvision's ResNet, timm's VisionTransformer) on state dicts of random values that
the tests write, for small variants of both networks; where torch, torchvision and timm are
installed, also with those libraries themselves. Then the command line: a trainer starts from the
checkpoint it writes, and bad input exits 2 with a message and writes nothing.
"""

import hashlib
import json
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from scipy.special import erf

from configs import base
from lib import config as config_lib
from lib import convert, models, train

RESNET = {"name": "imagenet_resnet", "depth": 18, "width": 8}
# Patch 8 on 32x32 images: 16 patches and the cls token.
VIT = {"name": "vit", "width": 32, "depth": 2, "num_heads": 4, "mlp_dim": 64, "patch_size": 8,
       "gelu": "exact"}


def model_config(**values):
    return config_lib.updated(base.get_config(), {f"model.{k}": v for k, v in values.items()}).model


def build(values, image_size=32, classes=10, channels=3):
    return models.build(model_config(**values), num_classes=classes, in_channels=channels,
                        image_size=(image_size, image_size), rngs=nnx.Rngs(0))


# --- state dicts with PyTorch's names and layouts, filled with random values --------------------

def resnet18_state(rng, width=8, classes=10, channels=3):
    """torchvision resnet18's state dict at stage widths W, 2W, 4W, 8W."""
    sd = {}

    def conv(name, cout, cin, k):
        sd[name] = rng.normal(0, np.sqrt(2 / (cin * k * k)), (cout, cin, k, k))

    def bn(name, c):
        sd[name + ".weight"] = rng.uniform(0.5, 1.5, c)
        sd[name + ".bias"] = rng.normal(0, 0.2, c)
        sd[name + ".running_mean"] = rng.normal(0, 0.2, c)
        sd[name + ".running_var"] = rng.uniform(0.5, 2.0, c)
        sd[name + ".num_batches_tracked"] = np.array(7, np.int64)

    conv("conv1.weight", width, channels, 7)
    bn("bn1", width)
    cin = width
    for s in range(1, 5):
        cout = width * 2 ** (s - 1)
        for j in range(2):
            pre = f"layer{s}.{j}"
            conv(f"{pre}.conv1.weight", cout, cin if j == 0 else cout, 3)
            bn(f"{pre}.bn1", cout)
            conv(f"{pre}.conv2.weight", cout, cout, 3)
            bn(f"{pre}.bn2", cout)
            if j == 0 and s > 1:
                conv(f"{pre}.downsample.0.weight", cout, cin, 1)
                bn(f"{pre}.downsample.1", cout)
        cin = cout
    sd["fc.weight"] = rng.normal(0, 1 / np.sqrt(cin), (classes, cin))
    sd["fc.bias"] = rng.normal(0, 0.1, classes)
    return {k: v.astype(np.float32) if v.dtype == np.float64 else v for k, v in sd.items()}


def vit_state(rng, width=32, depth=2, mlp_dim=64, patch=8, image=32, classes=10, channels=3):
    """timm vit_base_patch16_224's state dict at other sizes."""
    d = width
    sd = {"patch_embed.proj.weight": rng.normal(0, 1 / np.sqrt(channels * patch ** 2),
                                                (d, channels, patch, patch)),
          "patch_embed.proj.bias": rng.normal(0, 0.1, d),
          "cls_token": rng.normal(0, 0.5, (1, 1, d)),
          "pos_embed": rng.normal(0, 0.5, (1, (image // patch) ** 2 + 1, d))}

    def linear(name, cout, cin):
        sd[name + ".weight"] = rng.normal(0, 1 / np.sqrt(cin), (cout, cin))
        sd[name + ".bias"] = rng.normal(0, 0.1, cout)

    def norm(name):
        sd[name + ".weight"] = rng.uniform(0.5, 1.5, d)
        sd[name + ".bias"] = rng.normal(0, 0.1, d)

    for i in range(depth):
        norm(f"blocks.{i}.norm1")
        linear(f"blocks.{i}.attn.qkv", 3 * d, d)
        linear(f"blocks.{i}.attn.proj", d, d)
        norm(f"blocks.{i}.norm2")
        linear(f"blocks.{i}.mlp.fc1", mlp_dim, d)
        linear(f"blocks.{i}.mlp.fc2", d, mlp_dim)
    norm("norm")
    linear("head", classes, d)
    return {k: v.astype(np.float32) for k, v in sd.items()}


# --- PyTorch's forward passes, in numpy (float64, NCHW) -----------------------------------------

def conv2d(x, w, stride=1, pad=0):
    """torch.nn.functional.conv2d: symmetric zero padding, OIHW weights."""
    _, _, kh, kw = w.shape
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))
    return np.einsum("ncyxij,ocij->noyx", windows[:, :, ::stride, ::stride], w)


def batchnorm_eval(x, sd, name):
    """BatchNorm2d in eval mode: running statistics, eps 1e-5."""
    def channel(k):
        return sd[f"{name}.{k}"].astype(np.float64)[None, :, None, None]

    return ((x - channel("running_mean")) / np.sqrt(channel("running_var") + 1e-5)
            * channel("weight") + channel("bias"))


def max_pool_3x3_s2_p1(x):
    x = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    return np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(2, 3))[
        :, :, ::2, ::2].max(axis=(-2, -1))


def relu(x):
    return np.maximum(x, 0)


def torchvision_resnet18(sd, x):
    """(logits, globally pooled features) of torchvision's ResNet-18 in eval mode."""
    sd = {k: v.astype(np.float64) for k, v in sd.items()}
    x = relu(batchnorm_eval(conv2d(x, sd["conv1.weight"], 2, 3), sd, "bn1"))
    x = max_pool_3x3_s2_p1(x)
    for s in range(1, 5):
        for j in range(2):
            pre = f"layer{s}.{j}"
            stride = 2 if (s > 1 and j == 0) else 1
            out = relu(batchnorm_eval(conv2d(x, sd[f"{pre}.conv1.weight"], stride, 1), sd,
                                      f"{pre}.bn1"))
            out = batchnorm_eval(conv2d(out, sd[f"{pre}.conv2.weight"], 1, 1), sd, f"{pre}.bn2")
            if f"{pre}.downsample.0.weight" in sd:
                x = batchnorm_eval(conv2d(x, sd[f"{pre}.downsample.0.weight"], stride), sd,
                                   f"{pre}.downsample.1")
            x = relu(out + x)
    pooled = x.mean(axis=(2, 3))
    return pooled @ sd["fc.weight"].T + sd["fc.bias"], pooled


def layer_norm(x, sd, name):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-6) * sd[name + ".weight"] + sd[name + ".bias"]


def linear(x, sd, name):
    return x @ sd[name + ".weight"].T + sd[name + ".bias"]


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def timm_vit(sd, x, num_heads, depth):
    """(logits, cls token after the final norm) of timm's VisionTransformer in eval mode:
    fused qkv, exact GELU, LayerNorm eps 1e-6."""
    sd = {k: v.astype(np.float64) for k, v in sd.items()}
    patch = sd["patch_embed.proj.weight"].shape[-1]
    x = conv2d(x, sd["patch_embed.proj.weight"], patch) + sd["patch_embed.proj.bias"][
        None, :, None, None]
    n, d = x.shape[:2]
    x = x.reshape(n, d, -1).transpose(0, 2, 1)  # flatten(2).transpose(1, 2)
    x = np.concatenate([np.broadcast_to(sd["cls_token"], (n, 1, d)), x], axis=1) + sd["pos_embed"]
    t, dh = x.shape[1], d // num_heads
    for i in range(depth):
        b = f"blocks.{i}"
        qkv = linear(layer_norm(x, sd, b + ".norm1"), sd, b + ".attn.qkv")
        q, k, v = qkv.reshape(n, t, 3, num_heads, dh).transpose(2, 0, 3, 1, 4)
        attention = softmax(q @ k.transpose(0, 1, 3, 2) * dh ** -0.5) @ v
        x = x + linear(attention.transpose(0, 2, 1, 3).reshape(n, t, d), sd, b + ".attn.proj")
        h = linear(layer_norm(x, sd, b + ".norm2"), sd, b + ".mlp.fc1")
        x = x + linear(0.5 * h * (1 + erf(h / np.sqrt(2))), sd, b + ".mlp.fc2")
    pre_logits = layer_norm(x, sd, "norm")[:, 0]
    return linear(pre_logits, sd, "head"), pre_logits


def ours(model, x_nchw, tap):
    logits, feats = model(jnp.asarray(x_nchw.transpose(0, 2, 3, 1), jnp.float32), train=False,
                          features=True)
    return np.asarray(logits), np.asarray(feats[tap])


def assert_close(actual, expected):
    """float32 against float64: relative to the output's scale."""
    np.testing.assert_allclose(actual, expected, rtol=1e-4,
                               atol=1e-4 * float(np.abs(expected).max()))


def far(actual, expected):
    return float(np.abs(actual - expected).max()) > 1e-2 * float(np.abs(expected).max())


@pytest.fixture(scope="module")
def resnet_case():
    rng = np.random.default_rng(0)
    sd = resnet18_state(rng)
    x = rng.normal(size=(2, 3, 32, 32))
    return sd, x, torchvision_resnet18(sd, x)


@pytest.fixture(scope="module")
def vit_case():
    rng = np.random.default_rng(1)
    sd = vit_state(rng)
    x = rng.normal(size=(2, 3, 32, 32))
    return sd, x, timm_vit(sd, x, VIT["num_heads"], VIT["depth"])


def test_resnet18_matches_torchvision_semantics(resnet_case):
    sd, x, (logits, pooled) = resnet_case
    model = build(RESNET)
    convert.check_config("torchvision_resnet18", model_config(**RESNET))
    converted = convert.convert("torchvision_resnet18", sd, model)
    convert.assign(model, converted)
    got_logits, got_pooled = ours(model, x, "pool")
    assert_close(got_logits, logits)
    assert_close(got_pooled, pooled)
    # The comparison sees a layout mistake: a stem kernel with H and W swapped (OIHW -> WHIO).
    convert.assign(model, {**converted, "stem/conv/kernel":
                           converted["stem/conv/kernel"].transpose(1, 0, 2, 3)})
    assert far(ours(model, x, "pool")[0], logits)


def test_vit_matches_timm_semantics(vit_case):
    sd, x, (logits, pre_logits) = vit_case
    model = build(VIT)
    convert.check_config("timm_vit_b16", model_config(**VIT))
    converted = convert.convert("timm_vit_b16", sd, model)
    convert.assign(model, converted)
    got_logits, got_pre = ours(model, x, "pre_logits")
    assert_close(got_logits, logits)
    assert_close(got_pre, pre_logits)
    # The comparison sees swapped query and key, and the tanh GELU in place of the exact one.
    swapped = dict(converted)
    for leaf in ("kernel", "bias"):
        q, k = f"block0/attention/query/{leaf}", f"block0/attention/key/{leaf}"
        swapped[q], swapped[k] = converted[k], converted[q]
    convert.assign(model, swapped)
    assert far(ours(model, x, "pre_logits")[1], pre_logits)
    tanh = build({**VIT, "gelu": "tanh"})
    convert.assign(tanh, converted)
    assert not np.allclose(ours(tanh, x, "pre_logits")[1], pre_logits, rtol=1e-4, atol=1e-4)


def test_full_size_layouts_are_torchvisions_and_timms():
    resnet = nnx.eval_shape(lambda: build({**RESNET, "width": 64}, 224, 1000))
    shapes = convert.expected_shapes("torchvision_resnet18", resnet)
    assert len(shapes) == 102  # torchvision resnet18: 122 tensors, 20 of them num_batches_tracked
    assert shapes["conv1.weight"] == (64, 3, 7, 7)
    assert shapes["layer2.0.downsample.0.weight"] == (128, 64, 1, 1)
    assert shapes["layer4.1.bn2.running_var"] == (512,)
    assert shapes["fc.weight"] == (1000, 512)
    vit = nnx.eval_shape(lambda: build({"name": "vit", "variant": "B", "patch_size": 16,
                                        "gelu": "exact"}, 224, 1000))
    shapes = convert.expected_shapes("timm_vit_b16", vit)
    assert len(shapes) == 152  # 4 + 12 blocks x 12 + norm and head
    assert shapes["patch_embed.proj.weight"] == (768, 3, 16, 16)
    assert shapes["pos_embed"] == (1, 197, 768)
    assert shapes["blocks.11.attn.qkv.weight"] == (2304, 768)
    assert shapes["blocks.0.mlp.fc1.weight"] == (3072, 768)
    assert shapes["head.weight"] == (1000, 768)


@pytest.mark.parametrize("change, match", [
    (lambda sd: sd.pop("layer3.1.bn2.running_var"),
     r"weights that the model needs: they lack 1 of its 102 tensors: "
     r"'layer3\.1\.bn2\.running_var'$"),
    (lambda sd: sd.update({"layer5.0.conv1.weight": np.zeros((1, 1, 1, 1))}),
     r"needs: they hold 1 tensors it has no place for: 'layer5\.0\.conv1\.weight'$"),
    (lambda sd: sd.update({"fc.weight": np.zeros((10, 63), np.float32)}),
     r"1 of the 102 tensors have shapes the model cannot take: 'fc\.weight' has shape "
     r"\(10, 63\), needs \(10, 64\) \(for head/kernel\)$"),
])
def test_bad_tensors_are_named(resnet_case, change, match):
    sd = dict(resnet_case[0])
    change(sd)
    model = nnx.eval_shape(lambda: build(RESNET))
    with pytest.raises(convert.ConversionError, match=match):
        convert.convert("torchvision_resnet18", sd, model)


def test_foreign_weights_and_models_are_refused(vit_case):
    model = nnx.eval_shape(lambda: build(RESNET))
    with pytest.raises(convert.ConversionError, match=r"not the torchvision resnet18 weights.*"
                       r"lack 102 of its 102.*hold 32 tensors"):
        convert.convert("torchvision_resnet18", vit_case[0], model)
    bottleneck = nnx.eval_shape(lambda: build({**RESNET, "depth": 50}))
    with pytest.raises(convert.ConversionError, match="conv3/kernel"):
        convert.convert("torchvision_resnet18", {}, bottleneck)


@pytest.mark.parametrize("source, values, match", [
    ("torchvision_resnet18", {**RESNET, "depth": 34}, r"model\.depth=18.*--config\.model\.depth"),
    ("torchvision_resnet18", {**RESNET, "stem": "cifar"}, r"model\.stem='imagenet'"),
    ("torchvision_resnet18", {**RESNET, "bn_epsilon": 1e-3}, r"model\.bn_epsilon=1e-05"),
    ("timm_vit_b16", {**VIT, "gelu": "tanh"}, r"model\.gelu='exact'"),
    ("timm_vit_b16", {**VIT, "width": 768, "num_heads": 6},
     r"ViT-B \(width 768\) has 12 attention heads; the config's model has 6: set "
     r"model\.num_heads=12 \(or model\.variant=B\)"),
    ("timm_vit_b16", {**VIT, "pool": "gap"}, r"model\.pool='cls'"),
    ("timm_vit_b16", RESNET, r"model\.name='vit'"),
])
def test_configs_that_compute_another_function_are_refused(source, values, match):
    with pytest.raises(convert.ConversionError, match=match):
        convert.check_config(source, model_config(**values))


def test_vit_b_variant_passes_the_config_check():
    convert.check_config("timm_vit_b16", model_config(name="vit", variant="B", gelu="exact"))


def test_gelu_default_is_unchanged_and_exact_is_erf():
    x = jnp.linspace(-4, 4, 64).reshape(2, 32)
    small = {"name": "vit", "width": 32, "num_heads": 4, "depth": 1, "mlp_dim": 64,
             "patch_size": 8}
    default = build(small).block0.mlp  # configs/base.py's model.gelu
    assert default.approximate
    np.testing.assert_array_equal(default(x), default.fc2(jax.nn.gelu(default.fc1(x))))
    exact = build({**small, "gelu": "exact"}).block0.mlp  # the same initial weights
    h = np.asarray(exact.fc1(x), np.float64)
    erf_gelu = jnp.asarray(0.5 * h * (1 + erf(h / np.sqrt(2))), jnp.float32)
    np.testing.assert_allclose(exact(x), exact.fc2(erf_gelu), rtol=1e-6, atol=1e-6)
    assert not np.allclose(exact(x), default(x), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match=r"unknown vit gelu 'erf'; valid choices: tanh, exact"):
        build({**small, "gelu": "erf"})


# --- reading files -----------------------------------------------------------------------------

def test_read_npz_and_unwrap_module_prefix(tmp_path):
    sd = {"conv1.weight": np.ones((2, 3, 1, 1), np.float32), "bn1.num_batches_tracked":
          np.array(3, np.int64)}
    np.savez(tmp_path / "w.npz", **{"module." + k: v for k, v in sd.items()})
    read = convert.read_weights(tmp_path / "w.npz")
    assert sorted(read) == sorted(sd)
    np.testing.assert_array_equal(read["conv1.weight"], sd["conv1.weight"])


def test_read_safetensors_float32_and_bfloat16(tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    import ml_dtypes

    values = np.linspace(-2, 2, 12, dtype=np.float32).reshape(3, 4)
    safetensors_numpy.save_file({"a.weight": values}, tmp_path / "w.safetensors")
    np.testing.assert_array_equal(convert.read_weights(tmp_path / "w.safetensors")["a.weight"],
                                  values)
    # BF16, which safetensors.numpy cannot read: the bytes as PyTorch writes them.
    bf16 = values.astype(ml_dtypes.bfloat16)
    header = b'{"a.weight":{"dtype":"BF16","shape":[3,4],"data_offsets":[0,24]}}'
    (tmp_path / "b.safetensors").write_bytes(
        len(header).to_bytes(8, "little") + header + bf16.tobytes())
    read = convert.read_weights(tmp_path / "b.safetensors")["a.weight"]
    np.testing.assert_array_equal(read.astype(np.float32), bf16.astype(np.float32))


def test_unreadable_files_are_explained(tmp_path):
    with pytest.raises(convert.ConversionError, match="does not exist"):
        convert.read_weights(tmp_path / "missing.npz")
    (tmp_path / "w.h5").write_bytes(b"x")
    with pytest.raises(convert.ConversionError, match=r"unknown format '\.h5'"):
        convert.read_weights(tmp_path / "w.h5")
    (tmp_path / "w.npz").write_bytes(b"not a zip")
    with pytest.raises(convert.ConversionError, match=r"cannot be read as \.npz"):
        convert.read_weights(tmp_path / "w.npz")


def test_pth_without_torch_names_the_extra(tmp_path):
    try:
        import torch  # noqa: F401
        pytest.skip("torch is installed")
    except ImportError:
        pass
    (tmp_path / "w.pth").write_bytes(b"x")
    with pytest.raises(convert.ConversionError, match=r"needs torch.*pip install -e '\.\[torch\]'"):
        convert.read_weights(tmp_path / "w.pth")


# --- the real libraries, where installed -------------------------------------------------------

def test_outputs_match_torchvision_and_timm(tmp_path):
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    x = np.random.default_rng(2).normal(size=(2, 3, 64, 64)).astype(np.float32)

    net = torchvision.models.resnet18(num_classes=10)
    for name, t in net.state_dict().items():  # BN statistics and affines away from 0 and 1
        if name.endswith(("running_mean", "bias")):
            t.normal_(0, 0.2)
        elif name.endswith("running_var") or (name.endswith("weight") and t.ndim == 1):
            t.uniform_(0.5, 1.5)
    net.eval()
    pooled = {}
    net.avgpool.register_forward_hook(lambda m, i, o: pooled.update(out=o.flatten(1)))
    torch.save(net.state_dict(), tmp_path / "resnet18.pth")
    model = build({**RESNET, "width": 64}, 64)
    convert.assign(model, convert.convert(
        "torchvision_resnet18", convert.read_weights(tmp_path / "resnet18.pth"), model))
    with torch.no_grad():
        logits = net(torch.from_numpy(x)).numpy()
    got_logits, got_pooled = ours(model, x, "pool")
    assert_close(got_logits, logits)
    assert_close(got_pooled, pooled["out"].numpy())

    vit = timm.models.vision_transformer.VisionTransformer(
        img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=4, mlp_ratio=2.0,
        num_classes=10)
    with torch.no_grad():
        for p in vit.parameters():
            p.normal_(0, 0.2)
    vit.eval()
    model = build(VIT)
    sd = {k: v.numpy() for k, v in vit.state_dict().items()}
    convert.assign(model, convert.convert("timm_vit_b16", sd, model))
    xs = x[:, :, :32, :32]
    with torch.no_grad():
        logits = vit(torch.from_numpy(xs)).numpy()
        pre_logits = vit.forward_features(torch.from_numpy(xs))[:, 0].numpy()
    got_logits, got_pre = ours(model, xs, "pre_logits")
    assert_close(got_logits, logits)
    assert_close(got_pre, pre_logits)
    # The full-size networks' names and shapes.
    full = nnx.eval_shape(lambda: build({**RESNET, "width": 64}, 224, 1000))
    assert convert.expected_shapes("torchvision_resnet18", full) == {
        k: tuple(v.shape) for k, v in torchvision.models.resnet18().state_dict().items()
        if not k.endswith("num_batches_tracked")}
    full = nnx.eval_shape(lambda: build({"name": "vit", "variant": "B", "patch_size": 16,
                                         "gelu": "exact"}, 224, 1000))
    assert convert.expected_shapes("timm_vit_b16", full) == {
        k: tuple(v.shape) for k, v in
        timm.create_model("vit_base_patch16_224", pretrained=False).state_dict().items()}


# --- the command line --------------------------------------------------------------------------

CONFIG = '''
from configs import base


def get_config(arg=None):
    c = base.get_config()
    c.data.name = "digits"
    c.model.name = "imagenet_resnet"
    c.model.depth = 18
    c.model.width = 8
    c.total_steps = 2
    return c
'''
VIT_OVERRIDES = ["--config.model.name=vit", "--config.model.width=32", "--config.model.depth=1",
                 "--config.model.num_heads", "4", "--config.model.mlp_dim=64",
                 "--config.model.patch_size=4", "--config.model.gelu=exact"]


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "config.py"
    path.write_text(CONFIG)
    return path


def digits_weights(path, source):
    """A state dict for the digits config's model (8x8 images, 1 channel, 10 classes)."""
    rng = np.random.default_rng(3)
    sd = resnet18_state(rng, channels=1) if source == "torchvision_resnet18" else \
        vit_state(rng, depth=1, patch=4, image=8, channels=1)
    np.savez(path, **sd)
    return sd


def test_config_overrides_are_typed_by_their_keys(config_file):
    c = convert.load_config(f"{config_file}:ignored", [
        "--config.model.mask_pruned_residual=true", "--config.model.widths=(8, 16)",
        "--config.model.bn_epsilon", "1e-3", "--config.model.stem=imagenet"])
    assert c.model.mask_pruned_residual is True and c.model.widths == (8, 16)
    assert c.model.bn_epsilon == 1e-3 and c.model.stem == "imagenet"
    with pytest.raises(config_lib.ConfigError, match=r"--config\.model\.depth expects int"):
        convert.load_config(str(config_file), ["--config.model.depth=deep"])
    with pytest.raises(config_lib.ConfigError, match="unexpected argument 'extra'"):
        convert.load_config(str(config_file), ["extra"])


@pytest.mark.parametrize("source, overrides", [("torchvision_resnet18", []),
                                               ("timm_vit_b16", VIT_OVERRIDES)])
def test_cli_checkpoint_starts_a_run(tmp_path, config_file, capsys, source, overrides):
    weights = tmp_path / "w.npz"
    digits_weights(weights, source)
    out = tmp_path / "converted"
    args = ["--source", source, "--weights", str(weights), "--config", str(config_file),
            "--workdir", str(out), *overrides]
    assert convert.main(args) == 0, capsys.readouterr().err
    assert f"--config.init.workdir={out}" in capsys.readouterr().out
    record = json.loads((out / "converted.json").read_text())
    assert record["source"] == source
    assert record["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    config = convert.load_config(str(config_file), overrides)
    setup = train.build(config)
    expected = convert.convert(source, convert.read_weights(weights),
                               setup.model(setup.init_state))
    for mode in ("continue", "params"):
        c = config_lib.updated(config, {"init.workdir": str(out), "init.mode": mode})
        state, data_state = train.Trainer(c).starting_state()
        assert data_state is None and int(state["step"]) == 0
        for k, v in jax.device_get(state["params"]).items():
            np.testing.assert_array_equal(v, expected[k], err_msg=k)
        stats = jax.device_get(state["batch_stats"])
        for k, v in jax.tree_util.tree_leaves_with_path(stats):
            path = "/".join(p.key for p in k)
            np.testing.assert_array_equal(v, expected[path], err_msg=path)
    # Never overwritten.
    before = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert convert.main(args) == 2
    assert "already holds" in capsys.readouterr().err
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == before


@pytest.mark.parametrize("edit, args, message", [
    (lambda sd: sd.pop("layer3.1.bn2.running_var"), [], r"the model of .*config\.py "
     r"\(imagenet_resnet depth 18, width 8; 10 classes, 1-channel input\) needs: they lack 1 "
     r"of its 102 tensors: 'layer3\.1\.bn2\.running_var'"),
    (lambda sd: sd.update({"layer1.0.conv1.weight": np.zeros((8, 8, 3, 1), np.float32)}), [],
     r"the model of .*config\.py .* cannot take: 'layer1\.0\.conv1\.weight' has shape "
     r"\(8, 8, 3, 1\), needs \(8, 8, 3, 3\) \(for stage1/block0/conv1/kernel\)"),
    (None, ["--config.model.width=16"], r"101 of the 102 tensors have shapes the model of .*"
     r"width 16.* cannot take: .*'fc\.weight' has shape \(10, 64\), needs \(10, 128\).*"
     r"and 98 more"),
    (None, ["--config.model.widht=8"], r"unknown config key 'model\.widht'\. Did you mean: "
     r"model\.width"),
    (None, ["--config.model.depth=34"], r"need a model with model\.depth=18"),
    ("missing", [], r"weights file .*missing\.npz' does not exist"),
])
def test_cli_bad_input_exits_2_and_writes_nothing(tmp_path, config_file, capsys, edit, args,
                                                    message):
    weights = tmp_path / "w.npz"
    sd = resnet18_state(np.random.default_rng(3), channels=1)
    if callable(edit):
        edit(sd)
    np.savez(weights, **sd)
    out = tmp_path / "converted"
    code = convert.main(["--source", "torchvision_resnet18", "--weights",
                         str(tmp_path / "missing.npz") if edit == "missing" else str(weights),
                         "--config", str(config_file), "--workdir", str(out), *args])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ")
    assert re.search(message, err), err
    assert not out.exists()


def test_cli_unknown_source_and_no_traceback(tmp_path, config_file):
    run = subprocess.run(
        [sys.executable, "-m", "lib.convert", "--source", "timm_vit_l16", "--weights", "w.npz",
         "--config", str(config_file), "--workdir", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert "invalid choice: 'timm_vit_l16'" in run.stderr and "Traceback" not in run.stderr
    run = subprocess.run(
        [sys.executable, "-m", "lib.convert", "--source", "timm_vit_b16", "--weights",
         str(tmp_path / "missing.safetensors"), "--config", str(config_file), "--workdir",
         str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert "does not exist" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "out").exists()
