"""Slimmable ImageNet ResNets and MobileNets (lib/models/slimmable.py): parameter counts at full
width against torchvision's and a count by hand, the convolutions their cost is counted over
(lib.slim.space), also at width_transfer's scaled widths and depths, a masked random
sub-network against the separately built narrow network with the sliced weights in eval and
train mode, BatchNorm statistics that move only where a channel is active, dropout, networks
widened past their bases against the cost counter, and the model names and width spaces of
experiments.joslim and the model factory's scaling keys."""

import functools
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from configs import base
from experiments.joslim import config as joslim_config
from experiments.joslim import task
from lib import config as config_lib
from lib import models
from lib.models import slimmable
from lib.slim import cost, masking, space

CLASSES, IMAGE = 10, 64  # every net downsamples by 32: 2×2 at the end

# name: (model constructor, width space and convs at (classes, image))
NETS = {
    "resnet18": (lambda **kw: slimmable.SlimImageNetResNet(18, **kw),
                 lambda n, image: space.imagenet_resnet(18, n, image)),
    "resnet50": (lambda **kw: slimmable.SlimImageNetResNet(50, **kw),
                 lambda n, image: space.imagenet_resnet(50, n, image)),
    "mobilenet_v2": (lambda **kw: slimmable.SlimMobileNetV2(**{"dropout": 0.0, **kw}),
                     lambda n, image: space.mobilenet_v2(n, image)),
    "mobilenet_v3_large": (lambda **kw: slimmable.SlimMobileNetV3("large", **kw),
                           lambda n, image: space.mobilenet_v3("large", n, image)),
    "mobilenet_v3_small": (lambda **kw: slimmable.SlimMobileNetV3("small", **kw),
                           lambda n, image: space.mobilenet_v3("small", n, image)),
}
# kernels the model has but the cost does not count (lib.slim.space's `counted`): the Linear
# classifiers and MobileNetV3's 1×1 conv after pooling, {path: shape} of the full channels
NOT_COUNTED = {
    "mobilenet_v2": lambda ch: {"head": (ch["last"], CLASSES)},
    "mobilenet_v3_large": lambda ch: {"head": (ch["head"], CLASSES),
                                      "post_pool": (1, 1, ch["last"], ch["head"])},
}
NOT_COUNTED["mobilenet_v3_small"] = NOT_COUNTED["mobilenet_v3_large"]


def scaled_resnet(depth, widths, layout):
    """(model constructor, arch builder) of an ImageNet ResNet at other widths and layout."""
    return (functools.partial(slimmable.SlimImageNetResNet, depth, widths=widths,
                              layout=layout),
            functools.partial(space.imagenet_resnet, depth, widths=widths, layout=layout))


def scaled_mobilenet_v2(width_mult, depth_mult):
    return (functools.partial(slimmable.SlimMobileNetV2, dropout=0.0, width_mult=width_mult,
                              depth_mult=depth_mult),
            functools.partial(space.mobilenet_v2, width_mult=width_mult, depth_mult=depth_mult))


# width_transfer's scaled nets (width_transfer.md §3): the ×2 targets and smaller proxies
NETS.update({"resnet18_x2": scaled_resnet(18, (128, 256, 512, 1024), (4, 4, 4, 4)),
             "resnet18_proxy": scaled_resnet(18, (32, 64, 128, 256), (1, 1, 1, 1)),
             "resnet50_proxy": scaled_resnet(50, (32, 64, 128, 256), (2, 1, 3, 1)),
             "mobilenet_v2_x2": scaled_mobilenet_v2(2.0, 2.0),
             "mobilenet_v2_proxy": scaled_mobilenet_v2(0.5, 0.5),
             "mobilenet_v2_x1.4": scaled_mobilenet_v2(1.4, 0.5)})
NOT_COUNTED.update({name: NOT_COUNTED["mobilenet_v2"]
                    for name in ("mobilenet_v2_x2", "mobilenet_v2_proxy", "mobilenet_v2_x1.4")})
# the nets whose masked sub-networks are run against the sliced ones (the large ones only
# through their convs: running them costs much and tests no other code)
SLICED = [name for name in NETS if not name.endswith(("_x2", "_x1.4"))]


def build(name, num_classes=CLASSES, channels=None, seed=0):
    return NETS[name][0](num_classes=num_classes, channels=channels, rngs=nnx.Rngs(seed))


def count(model):
    return sum(v.size for v in jax.tree.leaves(nnx.state(model, nnx.Param)))


def make_divisible(v, divisor=8):
    """torchvision's _make_divisible (MobileNetV3's SE widths)."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def mobilenet_count(stem, blocks, last, head, classes, se_width):
    """Parameters of a MobileNet counted by hand (BN: γ and β). Stem 3×3 conv 3→stem + BN;
    per block (cin, exp, cout, kernel, se): a 1×1 expansion + BN where exp ≠ cin, the
    depthwise k×k + BN, SE (two 1×1 convs with bias, se_width(exp) inside), the 1×1
    projection + BN; the last 1×1 conv + BN; a 1×1 conv (or Linear) to `head` with bias
    (head=0: none); the Linear classifier."""
    total = 27 * stem + 2 * stem
    for cin, exp, cout, k, se in blocks:
        if exp != cin:
            total += cin * exp + 2 * exp
        total += k * k * exp + 2 * exp
        if se:
            sq = se_width(exp)
            total += 2 * exp * sq + sq + exp
        total += exp * cout + 2 * cout
    total += blocks[-1][2] * last + 2 * last
    if head:
        total += last * head + head
    return total + (head or last) * classes + classes


def v2_blocks():
    blocks, cin = [(32, 32, 16, 3, False)], 16
    for t, c, n, _ in space.MOBILENET_V2:
        for _ in range(n):
            blocks.append((cin, cin * t, c, 3, False))
            cin = c
    return blocks


def v3_blocks(kind):
    blocks, cin = [], 16
    for k, exp, c, se, _ in space.MOBILENET_V3[kind]:
        blocks.append((cin, exp, c, k, se))
        cin = c
    return blocks


def test_the_hand_count_reproduces_torchvision():
    assert mobilenet_count(32, v2_blocks(), 1280, 0, 1000, None) == 3_504_872  # mobilenet_v2
    # torchvision's MobileNetV3: SE widths made divisible by 8, Small's head 1024 (the paper's)
    assert mobilenet_count(16, v3_blocks("large"), 960, 1280, 1000,
                           lambda e: make_divisible(e // 4)) == 5_483_032
    assert mobilenet_count(16, v3_blocks("small"), 576, 1024, 1000,
                           lambda e: make_divisible(e // 4)) == 2_542_856


@pytest.mark.parametrize("name,total", [
    ("resnet18", 11_689_512),  # torchvision resnet18: its Linear fc = our 1×1 conv with bias
    ("resnet34", 21_797_672),  # torchvision resnet34
    ("resnet50", 25_557_032),  # torchvision resnet50
    # torchvision mobilenet_v2 (dropout and Linear classifier as ours): the same count
    ("mobilenet_v2", 3_504_872),
    # torchvision 5,483,032 with SE widths exp // 4 (the arch's fixed `{b}/se`, the paper's
    # code) instead of make_divisible(exp // 4, 8): 72 → 18 (not 24), 120 → 30 (not 32) ×2
    ("mobilenet_v3_large", 5_483_032 - (2 * 72 * 6 + 6) - 2 * (2 * 120 * 2 + 2)),
    # torchvision 2,542,856; SE exp // 4 (16 → 4 not 8, 240 → 60 not 64 ×2, 120 → 30 not 32,
    # 144 → 36 not 40), and the code's 1280-wide head (torchvision and the paper: 1024)
    ("mobilenet_v3_small", 2_542_856 - (2 * 16 * 4 + 4) - 2 * (2 * 240 * 4 + 4)
     - (2 * 120 * 2 + 2) - (2 * 144 * 4 + 4) + 576 * 256 + 256 + 256 * 1000),
])
def test_parameter_counts_at_full_width(name, total):
    constructor = NETS[name][0] if name in NETS else lambda **kw: slimmable.SlimImageNetResNet(
        int(name.removeprefix("resnet")), **kw)
    model = nnx.eval_shape(lambda: constructor(num_classes=1000, rngs=nnx.Rngs(0)))
    assert count(model) == total
    if name.startswith("mobilenet_v3"):
        kind = name.split("_")[-1]
        last = space.MOBILENET_V3_LAST[kind]
        assert mobilenet_count(16, v3_blocks(kind), last, 1280, 1000, lambda e: e // 4) == total


@pytest.mark.parametrize("name", list(NETS))
def test_the_model_has_the_convolutions_its_cost_is_counted_over(name):
    """Every conv of the lib.slim.space arch is a kernel of the model of that shape at full
    width (a depthwise kernel is [k, k, 1, C]), and the model's other kernels are exactly
    the layers the arch says it does not count."""
    model = nnx.eval_shape(lambda: build(name))
    arch = NETS[name][1](CLASSES, IMAGE)
    ch = arch.space.full_channels
    kernels = {"/".join(map(str, path[:-1])): v.value.shape
               for path, v in nnx.to_flat_state(nnx.state(model, nnx.Param))
               if path[-1] == "kernel"}
    not_counted = NOT_COUNTED[name](ch) if name in NOT_COUNTED else {}
    assert {k: kernels.pop(k, None) for k in not_counted} == not_counted
    expected = {c.name: (c.kernel, c.kernel, 1 if c.depthwise else ch[c.cin], ch[c.cout])
                for c in arch.convs}
    assert kernels == expected
    assert model.dims() == list(arch.space.names)
    assert model.channels == arch.space.bases


def statistics_of(model, x):
    """Running statistics set to the batch statistics of `x` (one train-mode pass at momentum
    0): eval mode then tests more than the init's 0 / 1, and, unlike random statistics,
    keeps a deep network's activations alive."""
    norms = [m for _, m in nnx.iter_modules(model) if isinstance(m, nnx.BatchNorm)]
    momentum = norms[0].momentum
    for m in norms:
        m.momentum = 0.0
    model(x, train=True)
    for m in norms:
        m.momentum = momentum


def running_statistics(model) -> dict[str, np.ndarray]:
    """{BN path: [2, C] running mean and variance}."""
    flat = {"/".join(map(str, p)): np.array(v.value)
            for p, v in nnx.to_flat_state(nnx.state(model, nnx.BatchStat))}
    return {k.removesuffix("/mean"): np.stack([v, flat[k.removesuffix("mean") + "var"]])
            for k, v in flat.items() if k.endswith("/mean")}


def bn_widths(model, arch, channels):
    """{BN path: active channels}: a BN follows the conv named like it ('bn2' → 'conv2',
    'dw_bn' → 'dw'), whose output is a dim (active: channels[dim]) or a fixed count."""
    convs = {c.name: c for c in arch.convs}
    out = {}
    for path, module in nnx.iter_modules(model):
        if isinstance(module, nnx.BatchNorm):
            *parent, leaf = map(str, path)
            conv = "conv" + leaf[2:] if leaf.startswith("bn") else leaf.removesuffix("_bn")
            cout = convs["/".join((*parent, conv))].cout
            out["/".join(map(str, path))] = channels.get(cout, arch.space.fixed.get(cout))
    return out


@pytest.mark.parametrize("name", SLICED)
def test_a_masked_random_sub_network_is_the_sliced_narrow_network(name):
    """At a random configuration decoded from the arch's space (the stem dim at the lower
    bound, so that MobileNetV3-Large's first add joins a narrower input onto a wider
    output), the masked full model computes the narrow network's logits in eval and in
    train mode, and training moves exactly the active channels' BN statistics."""
    arch = NETS[name][1](CLASSES, IMAGE)
    rng = np.random.default_rng(sum(map(ord, name)))
    alpha = rng.uniform(arch.space.low, arch.space.high, arch.space.size)
    alpha[0] = arch.space.low
    decoded = arch.space.decode(alpha)
    full = build(name)
    sub = {d: decoded[d] for d in full.dims()}
    assert all(sub[d] < b for d, b in full.channels.items())  # every dim is narrowed
    if name == "mobilenet_v3_large":
        assert sub["stage1/residual"] > sub["stem"]
    x, other = jnp.asarray(rng.normal(size=(2, 4, IMAGE, IMAGE, 3)), jnp.float32)
    statistics_of(full, other)
    narrow = masking.sliced(full, build(name, channels=sub, seed=7))
    m = {k: jnp.asarray(v) for k, v in masking.masks(sub, full.channels).items()}
    logits = full(x, train=False, masks=m)
    assert logits.std(axis=0).mean() > 100 * 1e-5  # the input matters far above tolerance
    np.testing.assert_allclose(logits, narrow(x, train=False), rtol=1e-5, atol=1e-5)
    before = running_statistics(full)
    # train mode: the batch statistics of every active channel are the narrow network's
    np.testing.assert_allclose(full(x, train=True, masks=m), narrow(x, train=True),
                               rtol=1e-4, atol=1e-4)
    after, widths = running_statistics(full), bn_widths(full, arch, sub)
    assert set(widths) == set(before)
    for key, width in widths.items():
        moved = (after[key] != before[key]).any(axis=0)  # a mean after a BN can stay ~0
        np.testing.assert_array_equal(moved, np.arange(moved.size) < width, err_msg=key)
    # a mutation: without the masks the full model's logits are not the narrow network's
    assert not np.allclose(full(x, train=False), narrow(x, train=False), atol=1e-3)


def test_mobilenet_v2_dropout_acts_in_training_only():
    model = slimmable.SlimMobileNetV2(num_classes=CLASSES, rngs=nnx.Rngs(0))  # the code's 0.5
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 32, 32, 3)), jnp.float32)
    logits, feats = model(x, train=False, features=True)
    np.testing.assert_allclose(logits, model.head(feats["pool"]), rtol=1e-6)
    logits, feats = model(x, train=True, features=True)
    assert not np.allclose(logits, model.head(feats["pool"]), atol=1e-3)
    assert list(feats)[:2] == ["stem", "stage1/block0"] and list(feats)[-2:] == ["last", "pool"]


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="depth must be one of 18, 34, 50; got 20"):
        slimmable.SlimImageNetResNet(20, num_classes=10, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="kind 'medium'; valid choices: large, small"):
        slimmable.SlimMobileNetV3("medium", num_classes=10, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"has no dims \['stage8/residual'\]"):
        slimmable.SlimMobileNetV2(num_classes=10, channels={"stage8/residual": 3},
                                  rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="the later width must be at least the earlier"):
        slimmable._add(jnp.zeros((1, 2, 2, 3)), jnp.zeros((1, 2, 2, 4)))


@pytest.mark.parametrize("name,overrides,arch", [
    ("slim_imagenet_resnet", {"depth": 34}, lambda: space.imagenet_resnet(34, 7, 96, 1)),
    ("slim_mobilenet_v2", {}, lambda: space.mobilenet_v2(7, 96, 1)),
    ("slim_imagenet_resnet", {"depth": 18, "stage_widths": (32, 64, 128, 256),
                              "layout": (1, 2, 1, 1)},
     lambda: space.imagenet_resnet(18, 7, 96, 1, widths=(32, 64, 128, 256),
                                   layout=(1, 2, 1, 1))),
    ("slim_mobilenet_v2", {"width_mult": 0.5, "depth_mult": 0.5},
     lambda: space.mobilenet_v2(7, 96, 1, width_mult=0.5, depth_mult=0.5)),
    ("slim_mobilenet_v3", {"mobilenet_kind": "small"},
     lambda: space.mobilenet_v3("small", 7, 96, in_channels=1)),
])
def test_models_build_and_joslim_finds_their_width_space(name, overrides, arch):
    """lib.models.build makes each by name, and experiments.joslim.task.arch_of gives the
    width space and convs at the data's image size, channels and classes."""
    config = joslim_config.get_config()
    config.model.name = name
    config.model.update(overrides)
    info = types.SimpleNamespace(image_shape=(96, 96, 1), num_classes=7)
    model = nnx.eval_shape(lambda: models.build(config.model, num_classes=7, in_channels=1,
                                                rngs=nnx.Rngs(0)))
    got, want = task.arch_of(config, info), arch()
    assert (got.space, got.convs) == (want.space, want.convs)
    assert model.dims() == list(got.space.names)
    assert model.stem.kernel.value.shape[2] == 1


# --- widened networks: counts above the bases (width_transfer's expand step) ------------------

# scaled nets small enough to run at counts up to 1.5× their bases
WIDENED = {"resnet18_deep": scaled_resnet(18, (16, 32, 64, 128), (4, 4, 4, 4)),
           "resnet50_proxy": NETS["resnet50_proxy"],
           "mobilenet_v2_deep": scaled_mobilenet_v2(0.5, 1.5),
           "mobilenet_v2_x1.4": NETS["mobilenet_v2_x1.4"]}


def run_recording_convs(model, x, train: bool):
    """The logits of one pass and {conv path: output shape} of every nnx.Conv it ran."""
    paths = {id(m): "/".join(map(str, p)) for p, m in nnx.iter_modules(model)
             if isinstance(m, nnx.Conv)}
    shapes, call = {}, nnx.Conv.__call__

    def recording(self, inputs, *args, **kwargs):
        y = call(self, inputs, *args, **kwargs)
        shapes[paths[id(self)]] = y.shape
        return y

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(nnx.Conv, "__call__", recording)
        logits = model(x, train=train)
    return logits, shapes


@pytest.mark.parametrize("name", list(WIDENED))
def test_a_widened_network_costs_what_its_convolutions_compute(name):
    """Built at random channel counts from half to 1.5× the bases (some dims below, some
    above), the model runs in train and eval mode, and lib.slim.cost's count equals, conv by
    conv, k·k·(C_in / groups)·C_out·H·W read off the model's own kernels and the output
    sides of its forward pass. The sum is over every nnx.Conv of the model: what the arch
    does not count (MobileNetV2's Linear head) is no conv, so the two lists must agree."""
    constructor, arch_of = WIDENED[name]
    image = 32
    arch = arch_of(CLASSES, image)
    rng = np.random.default_rng(sum(map(ord, name)))
    counts = {d: int(rng.integers(max(1, b // 2), 3 * b // 2 + 1))
              for d, b in arch.space.bases.items()}
    bases = arch.space.bases
    assert any(counts[d] < b for d, b in bases.items())
    assert any(counts[d] > b for d, b in bases.items())
    model = constructor(num_classes=CLASSES, channels=counts, rngs=nnx.Rngs(0))
    assert model.channels == counts
    x = jnp.asarray(rng.normal(size=(2, image, image, 3)), jnp.float32)
    kernels = {"/".join(map(str, p)): m.kernel.value.shape for p, m in nnx.iter_modules(model)
               if isinstance(m, nnx.Conv)}
    for train in (True, False):
        logits, outputs = run_recording_convs(model, x, train)
        assert logits.shape == (2, CLASSES) and np.isfinite(logits).all()
        assert set(outputs) == set(kernels)                     # every conv ran
    by_hand = {path: kh * kw * cin_per_group * cout * outputs[path][1] * outputs[path][2]
               for path, (kh, kw, cin_per_group, cout) in kernels.items()}
    channels = {**arch.space.fixed, **counts}
    per_conv = {c.name: cost.macs(space.Arch(arch.space, (c,)), channels, bounded=False)
                for c in arch.convs}
    assert per_conv == by_hand
    assert {c.name: (c.out_size, c.out_size) for c in arch.convs} == {
        path: shape[1:3] for path, shape in outputs.items()}
    assert cost.macs(arch, channels, bounded=False) == sum(by_hand.values())
    if name.startswith("mobilenet"):
        assert isinstance(model.head, nnx.Linear)


@pytest.mark.parametrize("name,overrides,arch", [
    ("slim_imagenet_resnet", {"depth": 50, "stage_widths": (32, 64, 128, 256),
                              "layout": (2, 1, 3, 1)},
     lambda: space.imagenet_resnet(50, widths=(32, 64, 128, 256), layout=(2, 1, 3, 1))),
    ("slim_imagenet_resnet", {"depth": 18}, lambda: space.imagenet_resnet(18)),
    ("slim_mobilenet_v2", {"width_mult": 1.4, "depth_mult": 0.5},
     lambda: space.mobilenet_v2(width_mult=1.4, depth_mult=0.5)),
    ("slim_mobilenet_v2", {}, space.mobilenet_v2),
])
def test_the_model_factory_builds_the_scaled_nets(name, overrides, arch):
    """model.stage_widths and model.layout (empty: the depth's net), model.width_mult and
    model.depth_mult reach the models; the config's rules refuse what no net has."""
    config = base.get_config()
    config.model.name = name
    config.model.update(overrides)
    config_lib.validate(config)
    model = nnx.eval_shape(lambda: models.build(config.model, num_classes=7, in_channels=3,
                                                rngs=nnx.Rngs(0)))
    assert model.channels == arch().space.bases
    assert model.dims() == list(arch().space.names)


@pytest.mark.parametrize("key,value", [("width_mult", 0.0), ("depth_mult", -1.0),
                                       ("stage_widths", (64, 0, 256, 512)),
                                       ("layout", (2, 2, -1, 2))])
def test_the_config_refuses_bad_scaling(key, value):
    config = base.get_config()
    config.model[key] = value
    with pytest.raises(config_lib.ConfigError, match=f"model.{key}"):
        config_lib.validate(config)


def test_bad_scaling_arguments_are_refused():
    with pytest.raises(ValueError, match=r"stage widths are four positive integers, one per "
                                         r"stage; got \(64, 128\)"):
        slimmable.SlimImageNetResNet(18, num_classes=10, widths=(64, 128), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="MobileNetV2's depth_mult must be a positive number"):
        slimmable.SlimMobileNetV2(num_classes=10, depth_mult=0.0, rngs=nnx.Rngs(0))
