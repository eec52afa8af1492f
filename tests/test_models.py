"""Model zoo: shapes, exact parameter counts, initialisers, BN behaviour, roles, errors."""
import collections

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from configs.base import get_config
from lib import models


def cfg(**overrides):
    c = get_config().model
    c.update(overrides)
    return c


def build(num_classes=10, in_channels=3, seed=0, **overrides):
    return models.build(cfg(**overrides), num_classes=num_classes, in_channels=in_channels,
                        rngs=nnx.Rngs(seed))


def build_abstract(num_classes=10, in_channels=3, **overrides):
    """Shapes only: counts parameters of big models without allocating them."""
    return nnx.eval_shape(lambda: build(num_classes, in_channels, **overrides))


def params(model):
    return {"/".join(map(str, p)): v for p, v in nnx.to_flat_state(nnx.state(model, nnx.Param))}


def counts(model):
    """(total parameters, BN γ+β parameters), BN found by module type through param_roles."""
    roles = models.param_roles(model)
    p = params(model)
    total = sum(v.size for v in jax.tree.leaves(nnx.state(model, nnx.Param)))
    bn = sum(p[k].size for k, r in roles.items() if r in ("bn_scale", "bn_bias"))
    return total, bn


@pytest.fixture(scope="module")
def resnet8():
    """The 1-channel digits model, shared by the cheap tests."""
    return build(depth=8, width=16, in_channels=1)


@pytest.mark.parametrize("depth,width,in_channels,total,bn", [
    (8, 16, 1, 77_754, 672),
    (14, 16, 3, 175_258, 1_120),
    (20, 16, 3, 272_474, 1_568),
    (32, 16, 3, 466_906, 2_464),
    (56, 16, 3, 855_770, 4_256),
    (110, 16, 3, 1_730_714, 8_288),
    (866, 16, 3, 13_979_930, 64_736),
    (14, 32, 3, 696_618, 2_240),
    (14, 512, 3, 177_279_498, 35_840),
])
def test_cifar_resnet_param_counts(depth, width, in_channels, total, bn):
    m = build_abstract(name="cifar_resnet", depth=depth, width=width, in_channels=in_channels)
    assert counts(m) == (total, bn)


@pytest.mark.parametrize("depth,total", [
    (18, 11_689_512),   # torchvision resnet18
    (34, 21_797_672),   # torchvision resnet34
    (50, 25_557_032),   # torchvision resnet50
    (101, 44_549_160),  # torchvision resnet101
    (152, 60_192_808),  # torchvision resnet152
    (200, 64_673_832),  # = bottleneck_resnet_count([3, 24, 36, 3]) below
])
def test_imagenet_resnet_param_counts(depth, total):
    m = build_abstract(num_classes=1000, name="imagenet_resnet", depth=depth, width=64)
    assert counts(m)[0] == total


def bottleneck_resnet_count(blocks, width=64, classes=1000):
    """Parameters of a torchvision-layout bottleneck ResNet, counted by hand."""
    total = 7 * 7 * 3 * width + 2 * width  # stem conv + BN
    cin = width
    for stage, n in enumerate(blocks):
        w = width * 2**stage
        for b in range(n):
            total += cin * w + 2 * w + 9 * w * w + 2 * w + w * 4 * w + 2 * 4 * w
            if b == 0:  # projection shortcut (channels change in every first block)
                total += cin * 4 * w + 2 * 4 * w
            cin = 4 * w
    return total + cin * classes + classes


def test_bottleneck_formula_reproduces_torchvision_then_counts_resnet200():
    assert bottleneck_resnet_count([3, 4, 6, 3]) == 25_557_032  # torchvision resnet50
    assert bottleneck_resnet_count([3, 8, 36, 3]) == 60_192_808  # torchvision resnet152
    assert bottleneck_resnet_count([3, 24, 36, 3]) == 64_673_832


@pytest.mark.parametrize("depth,total,bn", [
    (11, 9_231_114, 5_504), (13, 9_416_010, 5_888),
    (16, 14_728_266, 8_448), (19, 20_040_522, 11_008),
])
def test_cifar_vgg_param_counts(depth, total, bn):
    assert counts(build_abstract(name="cifar_vgg", depth=depth)) == (total, bn)


def test_cifar_resnet_shapes_and_features_on_odd_sizes(resnet8):
    x = jnp.ones((2, 14, 14, 1))
    logits, feats = resnet8(x, train=False, features=True)
    assert logits.shape == (2, 10) and logits.dtype == jnp.float32
    assert isinstance(feats, collections.OrderedDict)
    assert {k: v.shape for k, v in feats.items()} == {
        "stem": (2, 14, 14, 16), "stage1/block0": (2, 14, 14, 16),
        "stage2/block0": (2, 7, 7, 32), "stage3/block0": (2, 4, 4, 64), "pool": (2, 64)}
    assert resnet8(jnp.ones((2, 8, 8, 1)), train=False).shape == (2, 10)


def test_imagenet_resnet_shapes_and_features():
    m = build(num_classes=7, name="imagenet_resnet", depth=50, width=2)
    logits, feats = m(jnp.ones((1, 32, 32, 3)), train=True, features=True)
    assert logits.shape == (1, 7)
    names = list(feats)
    assert names[0] == "stem" and names[-1] == "pool"
    assert [n for n in names if n.startswith("stage4/")] == [f"stage4/block{j}" for j in range(3)]
    assert len(names) == 2 + 16
    assert feats["stem"].shape == (1, 8, 8, 2)  # 7x7/2 conv then 3x3/2 max-pool
    assert feats["stage4/block2"].shape == (1, 1, 1, 64)
    assert feats["pool"].shape == (1, 64)


def test_cifar_vgg_shapes_and_features():
    m = build(num_classes=5, name="cifar_vgg", depth=11)
    logits, feats = m(jnp.ones((2, 16, 16, 3)), train=False, features=True)
    assert logits.shape == (2, 5)
    assert list(feats) == [f"conv{i}" for i in range(8)] + ["pool"]
    assert feats["conv7"].shape == (2, 1, 1, 512)
    assert models.param_roles(m)["conv0/conv/bias"] == "conv_bias"


def test_convnet_shapes_count_and_roles():
    """early_phase.md §6's 4-conv net on 8×8×1 digits: 3·3·(1·16 + 16·32 + 32·64 + 64·64)
    kernel weights, 2·(16+32+64+64) BN parameters, a 64×10 head with bias; no conv biases."""
    m = build(name="convnet", widths=(16, 32, 64, 64), pool_after=(1, 3), in_channels=1)
    total, bn = counts(m)
    assert (total, bn) == (9 * (16 + 16 * 32 + 32 * 64 + 64 * 64) + 2 * 176 + 650, 352)
    logits, feats = m(jnp.ones((2, 8, 8, 1)), train=False, features=True)
    assert logits.shape == (2, 10) and logits.dtype == jnp.float32
    assert list(feats) == ["conv0", "conv1", "conv2", "conv3", "pool"]
    assert feats["conv1"].shape == (2, 8, 8, 32) and feats["conv3"].shape == (2, 4, 4, 64)
    roles = models.param_roles(m)
    assert roles["conv0/conv/kernel"] == "conv_kernel" and "conv0/conv/bias" not in roles
    assert roles["head/kernel"] == "head_kernel"
    with pytest.raises(ValueError, match=r"pool_after=\(4,\) names modules outside 0..3"):
        build(name="convnet", pool_after=(4,))


def test_features_order_survives_jit(resnet8):
    graphdef, state = nnx.split(resnet8)

    @jax.jit
    def forward(state, x):
        return nnx.merge(graphdef, state)(x, train=False, features=True)

    logits, feats = forward(state, jnp.ones((1, 8, 8, 1)))
    assert list(feats) == ["stem", "stage1/block0", "stage2/block0", "stage3/block0", "pool"]
    np.testing.assert_allclose(logits, resnet8(jnp.ones((1, 8, 8, 1)), train=False),
                               rtol=1e-5, atol=1e-5)


def test_param_paths_and_roles(resnet8):
    roles = models.param_roles(resnet8)
    assert set(roles) == set(params(resnet8))
    for path in ("stem/conv/kernel", "stage1/block0/conv1/kernel",
                 "stage2/block0/shortcut_conv/kernel"):
        assert roles[path] == "conv_kernel"
    assert roles["stem/bn/scale"] == roles["stage2/block0/shortcut_bn/scale"] == "bn_scale"
    assert roles["stage1/block0/bn1/bias"] == "bn_bias"
    assert {k for k, r in roles.items() if r.startswith("head")} == {"head/kernel", "head/bias"}
    assert roles["head/kernel"] == "head_kernel" and roles["head/bias"] == "head_bias"
    assert "stage1/block0/shortcut_conv/kernel" not in roles  # identity shortcut
    p = params(resnet8)
    assert sum(p[k].size for k, r in roles.items() if r.startswith("bn_")) == 672


def test_bn_init_uniform_default(resnet8):
    roles, p = models.param_roles(resnet8), params(resnet8)
    gamma = np.concatenate([p[k] for k, r in roles.items() if r == "bn_scale"])
    beta = np.concatenate([p[k] for k, r in roles.items() if r == "bn_bias"])
    assert gamma.min() >= 0 and gamma.max() < 1 and np.unique(gamma).size > 100
    assert np.all(beta == 0)


@pytest.mark.parametrize("bn_init,check", [
    ("fixed", lambda g, b: np.all(g == 1) and np.all(b == 0)),
    ("oneone", lambda g, b: np.all(g == 1) and np.all(b == 1)),
    ("positivenegative",
     lambda g, b: g.min() < 0 < g.max() and g.min() >= -1 and g.max() < 1 and np.all(b == 0)),
])
def test_bn_init_options(bn_init, check):
    model = build(depth=8, width=8, bn_init=bn_init)
    roles, p = models.param_roles(model), params(model)
    gamma = np.concatenate([p[k] for k, r in roles.items() if r == "bn_scale"])
    beta = np.concatenate([p[k] for k, r in roles.items() if r == "bn_bias"])
    assert check(gamma, beta)


@pytest.fixture(scope="module")
def wide_resnet8_kernels():
    """stage3/block0/conv2 of a width-32 ResNet-8: 3x3x128x128, fan_in 1152, per kernel_init."""
    out = {}
    for init in models.KERNEL_INITS:
        m = build(depth=8, width=32, kernel_init=init)
        out[init] = np.asarray(params(m)["stage3/block0/conv2/kernel"])
    return out


def test_kaiming_normal_untruncated(wide_resnet8_kernels):
    w = wide_resnet8_kernels["kaiming_normal"]
    sigma = np.sqrt(2 / (3 * 3 * 128))
    assert w.std() == pytest.approx(sigma, rel=0.01)
    assert abs(w.mean()) < 0.01 * sigma
    assert np.mean(np.abs(w) > 2 * sigma) == pytest.approx(0.0455, abs=0.005)


def test_other_kernel_inits(wide_resnet8_kernels):
    fan_in = 3 * 3 * 128
    w = wide_resnet8_kernels["kaiming_uniform"]
    assert np.abs(w).max() <= np.sqrt(6 / fan_in)
    assert w.std() == pytest.approx(np.sqrt(2 / fan_in), rel=0.01)
    w = wide_resnet8_kernels["orthogonal"].reshape(fan_in, 128)
    np.testing.assert_allclose(w.T @ w, np.eye(128), atol=1e-4)
    w = wide_resnet8_kernels["binary"]
    assert np.unique(np.abs(w)).size == 1
    assert np.mean(w > 0) == pytest.approx(0.5, abs=0.01)
    assert np.abs(w).max() == pytest.approx(np.sqrt(2 / fan_in), rel=0.01)


def test_biases_use_pytorch_default():
    m = build(num_classes=10, name="cifar_vgg", depth=11)
    p = params(m)
    head_bound = 1 / np.sqrt(512)
    assert 0 < np.abs(p["head/bias"]).max() <= head_bound
    conv_bias = np.asarray(p["conv1/conv/bias"])  # fan_in 3*3*64
    assert 0.5 / 24 < np.abs(conv_bias).max() <= 1 / 24


def test_bn_running_stats_update_only_in_train(resnet8):
    model = nnx.clone(resnet8)

    def stats():
        return jax.tree.map(np.asarray, nnx.state(model, nnx.BatchStat))

    before = stats()
    x = jax.random.normal(jax.random.key(1), (4, 8, 8, 1)) + 3.0
    model(x, train=False)
    jax.tree.map(np.testing.assert_array_equal, before, stats())
    model(x, train=True)
    after = stats()
    mean = after["stem"]["bn"]["mean"]
    # Flax momentum 0.9: running <- 0.9 * running + 0.1 * batch, from running mean 0.
    conv = nnx.state(model, nnx.Param)["stem"]["conv"]["kernel"]
    batch_mean = jax.lax.conv_general_dilated(
        x, conv[...], (1, 1), ((1, 1), (1, 1)),
        dimension_numbers=("NHWC", "HWIO", "NHWC")).mean(axis=(0, 1, 2))
    np.testing.assert_allclose(mean, 0.1 * batch_mean, rtol=1e-4, atol=1e-6)
    assert not np.allclose(before["stage3"]["block0"]["bn2"]["var"],
                           after["stage3"]["block0"]["bn2"]["var"])


def test_bfloat16_compute_float32_params():
    m = build(depth=8, width=4, dtype="bfloat16")
    logits, feats = m(jnp.ones((2, 8, 8, 3)), train=True, features=True)
    assert logits.dtype == jnp.float32 and feats["stage3/block0"].dtype == jnp.bfloat16
    assert all(v.dtype == jnp.float32 for v in jax.tree.leaves(nnx.state(m, nnx.Param)))


@pytest.mark.parametrize("overrides,match", [
    ({"name": "cifar_resnet", "depth": 21}, r"6n\+2 .*got 21"),
    ({"name": "imagenet_resnet", "depth": 20}, r"18, 34, 50, 101, 152, 200, got 20"),
    ({"name": "cifar_vgg", "depth": 12}, r"11, 13, 16, 19, got 12"),
    ({"name": "resnet"}, r"'resnet'.*cifar_resnet, imagenet_resnet, cifar_vgg"),
    ({"bn_init": "ones"}, r"'ones'.*uniform, fixed, oneone, positivenegative"),
    ({"kernel_init": "he"}, r"'he'.*kaiming_normal, kaiming_normal_fan_out, kaiming_uniform, "
                            r"torch_default, orthogonal, binary"),
    ({"dtype": "float16"}, r"'float16'.*float32, bfloat16"),
])
def test_invalid_config_errors(overrides, match):
    with pytest.raises(ValueError, match=match):
        build_abstract(**overrides)


# --- Vision Transformer -----------------------------------------------------------------------

TINY_VIT = {"name": "vit", "width": 32, "depth": 2, "num_heads": 4, "mlp_dim": 64,
            "patch_size": 4}


def build_vit(image_size=(8, 8), num_classes=10, in_channels=3, seed=0, **overrides):
    return models.build(cfg(**{**TINY_VIT, **overrides}), num_classes=num_classes,
                        in_channels=in_channels, image_size=image_size, rngs=nnx.Rngs(seed))


@pytest.fixture(scope="module")
def vit_tiny():
    """width 32, 2 blocks, 4 heads, 8x8 images in 4x4 patches: 4 patch tokens + cls."""
    return build_vit()


def vit_param_count(width, depth, mlp_dim, *, patch=16, image=224, channels=3, classes=1000,
                    cls=True):
    """Parameters of a ViT counted by hand from the layer shapes (original ViT / timm layout:
    the position embedding also covers the cls token)."""
    tokens = (image // patch) ** 2 + cls
    embedding = patch * patch * channels * width + width
    block = (2 * width                          # LayerNorm γ, β
             + 4 * (width * width + width)      # query, key, value, out
             + 2 * width                        # LayerNorm γ, β
             + width * mlp_dim + mlp_dim        # MLP in
             + mlp_dim * width + width)         # MLP out
    return (embedding + cls * width + tokens * width + depth * block
            + 2 * width + width * classes + classes)  # encoder_norm, head


@pytest.mark.parametrize("variant,total", [
    ("Ti", 5_717_416),     # timm vit_tiny_patch16_224
    ("S", 22_050_664),     # timm vit_small_patch16_224
    ("B", 86_567_656),     # timm vit_base_patch16_224
    ("L", 304_326_632),    # timm vit_large_patch16_224
])
def test_vit_param_counts(variant, total):
    v = models.VARIANTS[variant]
    assert vit_param_count(v["width"], v["depth"], v["mlp_dim"]) == total
    m = nnx.eval_shape(lambda: build_vit(image_size=(224, 224), num_classes=1000,
                                         variant=variant, patch_size=16))
    assert sum(x.size for x in jax.tree.leaves(nnx.state(m, nnx.Param))) == total
    assert counts(m)[1] == 0  # no BatchNorm


def test_vit_s16_param_count_and_shapes():
    m = nnx.eval_shape(lambda: build_vit(image_size=224, num_classes=1000, variant="S",
                                         patch_size=16))
    p = params(m)
    assert sum(v.size for v in p.values()) == vit_param_count(384, 12, 1536) == 22_050_664
    assert p["embedding/kernel"].shape == (16, 16, 3, 384)
    assert p["pos_embedding"].shape == (1, 197, 384) and p["cls"].shape == (1, 1, 384)
    assert p["block11/mlp/fc1/kernel"].shape == (384, 1536)
    assert "block12/norm1/scale" not in p


def test_vit_shapes_and_features(vit_tiny):
    logits, feats = vit_tiny(jnp.ones((2, 8, 8, 3)), train=False, features=True)
    assert logits.shape == (2, 10) and logits.dtype == jnp.float32
    assert isinstance(feats, collections.OrderedDict)
    assert {k: v.shape for k, v in feats.items()} == {
        "block0": (2, 5, 32), "block1": (2, 5, 32), "pre_logits": (2, 32)}
    assert list(feats) == ["block0", "block1", "pre_logits"]
    # pre_logits is the normalised cls token of the last block's output
    np.testing.assert_allclose(feats["pre_logits"], vit_tiny.encoder_norm(feats["block1"])[:, 0],
                               rtol=1e-5, atol=1e-5)
    assert vit_tiny(jnp.ones((2, 8, 8, 3)), train=True).shape == (2, 10)


def test_vit_non_square_images_and_train_flag_is_a_no_op():
    m = build_vit(image_size=(8, 12), num_classes=3, in_channels=1)
    assert params(m)["pos_embedding"].shape == (1, 2 * 3 + 1, 32)
    x = jax.random.normal(jax.random.key(0), (2, 8, 12, 1))
    _, f_eval = m(x, train=False, features=True)
    _, f_train = m(x, train=True, features=True)
    np.testing.assert_array_equal(f_eval["pre_logits"], f_train["pre_logits"])


def test_vit_gap_pool():
    m = build_vit(pool="gap")
    p = params(m)
    assert "cls" not in p and p["pos_embedding"].shape == (1, 4, 32)
    logits, feats = m(jax.random.normal(jax.random.key(1), (2, 8, 8, 3)), train=False,
                      features=True)
    assert logits.shape == (2, 10) and feats["block1"].shape == (2, 4, 32)
    np.testing.assert_allclose(feats["pre_logits"],
                               m.encoder_norm(feats["block1"]).mean(axis=1), rtol=1e-5, atol=1e-5)
    total = sum(v.size for v in p.values())
    assert total == vit_param_count(32, 2, 64, patch=4, image=8, classes=10, cls=False)


def test_vit_init_follows_big_vision(vit_tiny):
    p = params(vit_tiny)
    assert np.all(np.asarray(p["head/kernel"]) == 0) and np.all(np.asarray(p["head/bias"]) == 0)
    assert np.all(np.asarray(p["cls"]) == 0)
    assert np.all(np.asarray(p["block0/norm1/scale"]) == 1)
    assert np.all(np.asarray(p["block0/attention/query/bias"]) == 0)
    np.testing.assert_array_equal(vit_tiny(jnp.ones((1, 8, 8, 3)), train=False), 0.0)
    pos = np.asarray(build_vit(image_size=64, patch_size=4, width=64, depth=1)
                     .pos_embedding[...])  # 257 x 64 entries
    assert pos.std() == pytest.approx(0.02, rel=0.05) and abs(pos.mean()) < 0.002


def test_vit_param_roles(vit_tiny):
    roles = models.param_roles(vit_tiny)
    assert set(roles) == set(params(vit_tiny))
    assert set(roles.values()) <= set(models.ROLES)
    assert roles["embedding/kernel"] == "conv_kernel" and roles["embedding/bias"] == "conv_bias"
    assert {k for k, r in roles.items() if r == "other"} == {"pos_embedding", "cls"}
    assert {k for k, r in roles.items() if r.startswith("head")} == {"head/kernel", "head/bias"}
    assert roles["head/kernel"] == "head_kernel" and roles["head/bias"] == "head_bias"
    for j in range(2):
        for ln in ("norm1", "norm2"):
            assert roles[f"block{j}/{ln}/scale"] == "ln_scale"
            assert roles[f"block{j}/{ln}/bias"] == "ln_bias"
        for lin in ("attention/query", "attention/key", "attention/value", "attention/out",
                    "mlp/fc1", "mlp/fc2"):
            assert roles[f"block{j}/{lin}/kernel"] == "linear_kernel"
            assert roles[f"block{j}/{lin}/bias"] == "linear_bias"
    assert roles["encoder_norm/scale"] == "ln_scale" and roles["encoder_norm/bias"] == "ln_bias"


def test_vit_batchnorm_subsets_are_refused(vit_tiny):
    from lib import optim
    from lib.config import ConfigError

    roles = models.param_roles(vit_tiny)
    shapes = {k: tuple(v.shape) for k, v in params(vit_tiny).items()}
    for setting in ("bn_only", "bn_and_output", "gamma_only", "beta_only", "random_count",
                    "all_no_affine"):
        with pytest.raises(ConfigError, match=f"'{setting}'.*no BatchNorm"):
            optim.trainable_subset(setting, roles, shapes)
    assert optim.trainable_subset("output_only", roles, shapes).count(shapes) == 32 * 10 + 10
    assert optim.trainable_subset("none", roles, shapes).count(shapes) == 0


def test_vit_bfloat16_compute_float32_params():
    m = build_vit(dtype="bfloat16")
    logits, feats = m(jnp.ones((2, 8, 8, 3)), train=True, features=True)
    assert logits.dtype == jnp.float32
    assert feats["block1"].dtype == feats["pre_logits"].dtype == jnp.bfloat16
    assert all(v.dtype == jnp.float32 for v in jax.tree.leaves(nnx.state(m, nnx.Param)))
    _, f32 = build_vit()(jnp.ones((2, 8, 8, 3)), train=True, features=True)
    np.testing.assert_allclose(feats["pre_logits"].astype(jnp.float32), f32["pre_logits"],
                               atol=0.1)


@pytest.mark.parametrize("overrides,match", [
    ({"image_size": 10}, r"10x10 is not divisible by patch size 4"),
    ({"image_size": (8, 6)}, r"8x6 is not divisible by patch size 4"),
    ({"image_size": None}, r"vit needs the input image size"),
    ({"variant": "XL"}, r"'XL'.*Ti, S, B, L"),
    ({"pool": "mean"}, r"'mean'.*cls, gap"),
    ({"num_heads": 5}, r"width 32 is not divisible by num_heads 5"),
    ({"dtype": "float16"}, r"'float16'.*float32, bfloat16"),
    ({"name": "vit_s"}, r"'vit_s'.*cifar_vgg, convnet, strided_convnet, mlp, vit"),
])
def test_vit_invalid_config_errors(overrides, match):
    with pytest.raises(ValueError, match=match):
        nnx.eval_shape(lambda: build_vit(**overrides))


@pytest.mark.parametrize("overrides, total", [
    # pruning_stability.md §3: the GST models' parameter counts at 10 classes
    ({"name": "cifar_vgg", "depth": 11, "final_pool": "max"}, 9_231_114),
    ({"name": "imagenet_resnet", "depth": 18, "width": 64, "stem": "cifar"}, 11_173_962),
    ({"name": "cifar_resnet", "depth": 20, "shortcut": "zero_pad"}, 269_722),
    ({"name": "cifar_resnet", "depth": 56, "shortcut": "zero_pad"}, 853_018),
])
def test_gst_model_param_counts(overrides, total):
    assert counts(build_abstract(**overrides))[0] == total


def test_zero_pad_shortcut_subsamples_and_pads_by_hand():
    model = build(depth=8, width=2, in_channels=1, shortcut="zero_pad")
    block = model.stage2.block0  # 2 → 4 channels, stride 2: one zero channel on each side
    x = jnp.arange(2 * 4 * 4 * 2, dtype=jnp.float32).reshape(2, 4, 4, 2)
    out = np.asarray(models.resnet._shortcut(block, x, train=False))
    assert out.shape == (2, 2, 2, 4)
    np.testing.assert_array_equal(out[..., 1:3], np.asarray(x)[:, ::2, ::2, :])
    assert np.all(out[..., [0, 3]] == 0)


def test_cifar_stem_keeps_the_resolution_and_vgg_max_pool_takes_the_maximum():
    model = build(name="imagenet_resnet", depth=18, width=4, stem="cifar", in_channels=1)
    _, feats = model(jnp.ones((1, 32, 32, 1)), train=False, features=True)
    assert feats["stem"].shape == (1, 32, 32, 4)
    vgg = build(name="cifar_vgg", depth=11, final_pool="max", in_channels=1)
    _, feats = vgg(jax.random.normal(jax.random.key(0), (2, 32, 32, 1)), train=False,
                   features=True)
    np.testing.assert_allclose(feats["pool"], np.asarray(feats["conv7"]).max(axis=(1, 2)))
    with pytest.raises(ValueError, match="unknown shortcut 'option_b'"):
        build(depth=8, shortcut="option_b")


def test_gst_initialisers_by_hand():
    """torch_default: U(±1/√fan_in), std 1/√(3·fan_in); kaiming_normal_fan_out: std √(2/fan_out)
    with PyTorch's fan_out = C_out·k·k (Flax kernels are (k, k, C_in, C_out))."""
    from lib.models.layers import kernel_initializer

    shape = (3, 3, 16, 64)
    w = np.asarray(kernel_initializer("torch_default")(jax.random.key(0), shape))
    assert np.abs(w).max() <= 1 / np.sqrt(144) and w.std() == pytest.approx(
        1 / np.sqrt(3 * 144), rel=0.03)
    w = np.asarray(kernel_initializer("kaiming_normal_fan_out")(jax.random.key(0), shape))
    assert w.std() == pytest.approx(np.sqrt(2 / (9 * 64)), rel=0.03)


def test_mlp_shapes_features_and_param_count():
    m = models.build(cfg(name="mlp", widths=(256, 256)), num_classes=10, in_channels=1,
                     image_size=(28, 28), rngs=nnx.Rngs(0))
    logits, feats = m(jnp.ones((3, 28, 28, 1)), train=False, features=True)
    assert logits.shape == (3, 10) and list(feats) == ["dense0", "dense1"]
    assert feats["dense1"].shape == (3, 256) and float(feats["dense0"].min()) >= 0  # post-ReLU
    assert counts(m)[0] == 784 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10  # 269,322


def test_strided_convnet_shapes_features_and_zero_biases():
    cfg = get_config().model
    cfg.name, cfg.widths, cfg.strides = "strided_convnet", (4, 6, 8), (2, 2, 1)
    cfg.kernel_init, cfg.bias_init = "lecun_normal", "zeros"
    model = models.build(cfg, num_classes=3, in_channels=1, rngs=nnx.Rngs(0))
    logits, feats = model(jnp.ones((2, 28, 28, 1)), train=False, features=True)
    assert logits.shape == (2, 3) and list(feats) == ["conv0", "conv1", "conv2", "pool"]
    assert feats["conv1"].shape == (2, 7, 7, 6) and feats["pool"].shape == (2, 8)
    assert all(not np.any(c.bias[...]) for c in model.convs)
    cfg.bias_init = "torch"  # U(±1/√fan_in): nonzero, inside the bound
    biased = models.build(cfg, num_classes=3, in_channels=1, rngs=nnx.Rngs(0))
    bias = np.asarray(biased.convs[0].bias[...])
    assert np.any(bias) and np.all(np.abs(bias) <= 1 / 3)
    cfg.strides = (2, 2)
    with pytest.raises(ValueError, match="one positive width and stride per conv"):
        models.build(cfg, num_classes=3, in_channels=1, rngs=nnx.Rngs(0))


def test_strided_convnet_same_padding_pads_only_the_end_of_a_stride_2_conv():
    cfg = get_config().model
    cfg.name, cfg.widths, cfg.strides, cfg.conv_padding = "strided_convnet", (4, 6), (2, 1), "same"
    model = models.build(cfg, num_classes=0, in_channels=1, rngs=nnx.Rngs(0))
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 28, 28, 1)), jnp.float32)
    conv = model.convs[0]
    expected = jax.nn.relu(jax.lax.conv_general_dilated(
        x, conv.kernel[...], (2, 2), ((0, 1), (0, 1)),
        dimension_numbers=("NHWC", "HWIO", "NHWC")) + conv.bias[...])
    _, feats = model(x, train=False, features=True)
    np.testing.assert_allclose(feats["conv0"], expected, atol=1e-5)
    cfg.conv_padding = "valid"
    with pytest.raises(ValueError, match="unknown conv_padding 'valid'; valid choices: "
                                         "symmetric, same"):
        models.build(cfg, num_classes=0, in_channels=1, rngs=nnx.Rngs(0))
