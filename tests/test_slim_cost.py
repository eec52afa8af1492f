"""Width spaces and the cost counter (lib/slim/space.py, lib/slim/cost.py) against hand counts:
joslim.md §5 J5–J9 and §6 hard assertions 1 (the counter matches an analytic count on
hand-built configs) and 2 (decoding uses floor and the residual-max rule)."""

import pytest

from lib.slim import cost, space


def rel(value, target):
    return abs(value / target - 1.0)


# --- J5–J9: full-model MACs and the all-0.42 ratios -------------------------------------------

def test_resnet20_cifar100_macs_by_hand():
    hand = (3 * 16 * 32 * 32                                            # 1×1 stem 3→16
            + 6 * 9 * 16 * 16 * 32 * 32                                 # stage 1: 6 convs
            + 9 * 16 * 32 * 16 * 16 + 5 * 9 * 32 * 32 * 16 * 16         # stage 2 at 16×16
            + 9 * 32 * 64 * 8 * 8 + 5 * 9 * 64 * 64 * 8 * 8             # stage 3 at 8×8
            + 64 * 100)                                                 # 1×1-conv classifier
    assert hand == 40_163_584
    arch = space.cifar_resnet(20, 100)
    got = cost.macs(arch, arch.space.full_channels)
    assert got == hand
    assert rel(got, 40.16e6) <= 0.005                                   # J5


def test_resnet56_cifar100_macs_by_hand():
    n = 9
    hand = (3 * 16 * 32 * 32 + 2 * n * 9 * 16 * 16 * 32 * 32
            + 9 * 16 * 32 * 16 * 16 + (2 * n - 1) * 9 * 32 * 32 * 16 * 16
            + 9 * 32 * 64 * 8 * 8 + (2 * n - 1) * 9 * 64 * 64 * 8 * 8 + 64 * 100)
    arch = space.cifar_resnet(56, 100)
    got = cost.macs(arch, arch.space.full_channels)
    assert got == hand == 125_098_240
    assert rel(got, 125.10e6) <= 0.005                                  # J6


def test_resnet18_imagenet_macs_by_hand():
    stem = 7 * 7 * 3 * 64 * 112 * 112
    stage1 = 4 * 9 * 64 * 64 * 56 * 56
    later = [9 * c * 2 * c * h * h + 3 * 9 * (2 * c) ** 2 * h * h + c * 2 * c * h * h
             for c, h in ((64, 28), (128, 14), (256, 7))]               # + 1×1/2 downsample
    hand = stem + stage1 + sum(later) + 512 * 1000
    assert hand == 1_814_073_344
    arch = space.imagenet_resnet(18)
    got = cost.macs(arch, arch.space.full_channels)
    assert got == hand
    assert rel(got, 1814e6) <= 0.01                                     # J8


V2_TABLE = [(6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
            (6, 320, 1, 1)]


def mobilenet_v2_macs_by_hand(image=224, stem=32, first=16, table=V2_TABLE, last=1280):
    """MobileNetV2 from its paper's table, written independently of the builder."""
    h = image // 2
    total = 9 * 3 * stem * h * h + 9 * stem * h * h + stem * first * h * h  # stem, separable
    cin = first
    for t, c, n, s in table:
        for j in range(n):
            mid = cin * t
            total += cin * mid * h * h                                  # expansion, before stride
            h = h // s if j == 0 else h
            total += 9 * mid * h * h + mid * c * h * h                  # depthwise, projection
            cin = c
    return total + cin * last * h * h                                   # last 1×1 → 1280


def test_mobilenet_v2_macs_by_hand():
    arch = space.mobilenet_v2()
    got = cost.macs(arch, arch.space.full_channels)
    assert got == mobilenet_v2_macs_by_hand()
    assert rel(got, 299.5e6) <= 0.01                                    # J7


# --- width_transfer's scaled-up nets (width_transfer.md §3: width ×2, depth ×2) ------------

def test_scaled_up_resnet18_macs_by_hand():
    """Widths 128/256/512/1024, four BasicBlocks per stage, at 224 px."""
    stem = 7 * 7 * 3 * 128 * 112 * 112
    stage1 = 4 * 2 * 9 * 128 * 128 * 56 * 56                        # 4 blocks, 2 convs each
    later = [9 * c * 2 * c * h * h + 9 * (2 * c) ** 2 * h * h       # block 0: conv1 /2, conv2
             + c * 2 * c * h * h                                    # + its 1×1/2 downsample
             + 3 * 2 * 9 * (2 * c) ** 2 * h * h                     # blocks 1-3
             for c, h in ((128, 28), (256, 14), (512, 7))]
    hand = stem + stage1 + sum(later) + 1024 * 1000
    assert hand == 14_417_993_728
    arch = space.imagenet_resnet(18, widths=(128, 256, 512, 1024), layout=(4, 4, 4, 4))
    assert arch.name == "ResNet-18 (widths 128/256/512/1024, layout 4/4/4/4)"
    assert arch.space.names == tuple(f"stage{s}/{d}" for s in (1, 2, 3, 4) for d in (
        "residual", "block0", "block1", "block2", "block3"))
    assert list(arch.space.bases.values()) == [w for w in (128, 256, 512, 1024)
                                               for _ in range(5)]
    assert cost.macs(arch, arch.space.full_channels) == hand


def test_scaled_up_mobilenet_v2_by_hand():
    """Width ×2: every channel count doubled (all are multiples of 8 already), the last conv
    1280 → 2560; depth ×2: every stage's n doubled (stage 1's separable block stays one)."""
    arch = space.mobilenet_v2(width_mult=2.0, depth_mult=2.0)
    assert arch.name == "MobileNetV2 (width ×2, depth ×2)"
    table = [(6, 48, 4, 2), (6, 64, 6, 2), (6, 128, 8, 2), (6, 192, 6, 1), (6, 320, 6, 2),
             (6, 640, 2, 1)]
    assert arch.space.size == 2 + 6 + (4 + 6 + 8 + 6 + 6 + 2) == 40
    bases = arch.space.bases
    assert (bases["stem"], bases["stage1/residual"], arch.space.fixed["last"]) == (64, 32, 2560)
    assert [bases[f"stage2/block{j}"] for j in range(4)] == [32 * 6, 48 * 6, 48 * 6, 48 * 6]
    assert "stage2/block4" not in bases and "stage1/block1" not in bases
    assert (bases["stage7/residual"], bases["stage7/block0"], bases["stage7/block1"]) == (
        640, 320 * 6, 640 * 6)
    got = cost.macs(arch, arch.space.full_channels)
    assert got == mobilenet_v2_macs_by_hand(stem=64, first=32, table=table, last=2560)


@pytest.mark.parametrize("width_mult,widths", [
    # torchvision's mobilenet_v2(width_mult): stem, stage 1, stages 2-7, last conv
    (1.4, (48, 24, 32, 48, 88, 136, 224, 448, 1792)),   # 44.8→48, 22.4→24, 33.6→32, 89.6→88
    (0.35, (16, 8, 8, 16, 24, 32, 56, 112, 1280)),      # 11.2→8 is < 0.9·11.2: 16; 5.6→8
    (0.5, (16, 8, 16, 16, 32, 48, 80, 160, 1280)),      # 12→16 (halves up), 8; last stays 1280
])
def test_mobilenet_v2_width_mult_by_hand(width_mult, widths):
    arch = space.mobilenet_v2(width_mult=width_mult)
    bases = arch.space.bases
    got = (bases["stem"], bases["stage1/residual"],
           *(bases[f"stage{s}/residual"] for s in range(2, 8)), arch.space.fixed["last"])
    assert got == widths
    assert arch.space.size == 24                                        # depth unchanged


def test_mobilenet_v2_depth_mult_by_hand():
    # n = (2, 3, 4, 3, 3, 1): ×0.5 → ceil (1, 1.5, 2, 1.5, 1.5, 0.5) = (1, 2, 2, 2, 2, 1);
    # ×1.5 → ceil (3, 4.5, 6, 4.5, 4.5, 1.5) = (3, 5, 6, 5, 5, 2)
    for depth_mult, blocks in ((0.5, (1, 2, 2, 2, 2, 1)), (1.5, (3, 5, 6, 5, 5, 2))):
        names = space.mobilenet_v2(depth_mult=depth_mult).space.names
        assert tuple(sum(n.startswith(f"stage{s}/block") for n in names)
                     for s in range(2, 8)) == blocks
        assert len(names) == 2 + 6 + sum(blocks)


def test_make_divisible_on_hand_values():
    assert space.make_divisible(32 * 0.5) == 16
    assert space.make_divisible(24 * 1.4) == 32                         # 33.6 → 32 ≥ 30.24
    assert space.make_divisible(16 * 0.35) == 8                         # 5.6 → 8 (at least 8)
    assert space.make_divisible(32 * 0.35) == 16                        # 11.2 → 8 < 10.08: +8
    assert space.make_divisible(19.9) == 24                             # 16 < 17.91: +8
    assert space.make_divisible(20) == 24                               # halves round up
    assert space.make_divisible(1280 * 1.4) == 1792
    assert space.make_divisible(3) == 8
    assert space.make_divisible(100, 16) == 96                          # 96 ≥ 90


def test_scaling_arguments_at_their_defaults_are_todays_nets():
    assert space.mobilenet_v2(width_mult=1, depth_mult=1.0) == space.mobilenet_v2()
    assert space.mobilenet_v2().name == "MobileNetV2"
    for depth, layout in ((18, (2, 2, 2, 2)), (50, [3, 4, 6, 3])):
        arch = space.imagenet_resnet(depth, widths=[64, 128, 256, 512], layout=layout)
        assert arch == space.imagenet_resnet(depth) and arch.name == f"ResNet-{depth}"
    # one scaled axis names only that one
    assert space.imagenet_resnet(34, layout=(1, 1, 1, 1)).name == "ResNet-34 (layout 1/1/1/1)"


def test_scaled_resnet50_stem_follows_stage_1():
    arch = space.imagenet_resnet(50, widths=(32, 64, 128, 256), layout=(1, 2, 1, 1))
    assert list(arch.space.bases.values()) == [32, 128, 32, 256, 64, 64, 512, 128, 1024, 256]
    convs = {c.name: c for c in arch.convs}
    assert convs["stage1/block0/downsample"].cin == "stem"              # 32 → 128: projected
    assert "stage2/block1/downsample" not in convs


@pytest.mark.parametrize("arch,expected", [
    (space.cifar_resnet(20, 100), 0.156), (space.cifar_resnet(56, 100), 0.157),
    (space.mobilenet_v2(), 0.213), (space.imagenet_resnet(18), 0.187)])
def test_smallest_cost_ratio(arch, expected):
    assert abs(cost.ratio(arch, arch.space.smallest()) - expected) <= 0.005  # J9


def test_resnet20_smallest_by_hand():
    # 0.42 · (16, 32, 64) → (6, 13, 26) everywhere; the chain leaves 6 ≤ 13 ≤ 26 as it is
    small = (3 * 6 * 1024 + 6 * 9 * 6 * 6 * 1024
             + 9 * 6 * 13 * 256 + 5 * 9 * 13 * 13 * 256
             + 9 * 13 * 26 * 64 + 5 * 9 * 26 * 26 * 64 + 26 * 100)
    arch = space.cifar_resnet(20, 100)
    assert cost.macs(arch, arch.space.decode(arch.space.smallest())) == small == 6_279_848
    assert cost.ratio(arch, arch.space.smallest()) == pytest.approx(small / 40_163_584)


# --- hand counts on small hand-built configurations -------------------------------------------

TINY_ALPHA = (1.0, 0.5, 0.42, 0.75, 0.6, 0.9)


def tiny():
    """ResNet-8 ([1, 1, 1]) at widths (8, 16, 32), 8×8 input, 10 classes, 1×1 stem."""
    return space.cifar_resnet(8, 10, widths=(8, 16, 32), image=8)


def test_tiny_resnet_decode():
    # dims: stage1/residual, stage1/block0, stage2/residual, stage2/block0, stage3/...
    # floor: 8, 4, 6, 12, 19 (19.2), 28 (28.8); chain: stage2/residual 6 → 8
    assert tiny().space.decode(TINY_ALPHA) == {
        "stage1/residual": 8, "stage1/block0": 4, "stage2/residual": 8, "stage2/block0": 12,
        "stage3/residual": 19, "stage3/block0": 28, "image": 3, "classes": 10}


def test_tiny_resnet_macs_by_hand():
    hand = (3 * 8 * 8 * 8                      # stem 1×1, 3 → 8 at 8×8
            + 9 * 8 * 4 * 8 * 8                # stage 1 conv1: 8 → 4 at 8×8
            + 9 * 4 * 8 * 8 * 8                # stage 1 conv2: 4 → 8
            + 9 * 8 * 12 * 4 * 4               # stage 2 conv1 (stride 2): 8 → 12 at 4×4
            + 9 * 12 * 8 * 4 * 4               # stage 2 conv2: 12 → 8 (chain-raised residual)
            + 9 * 8 * 28 * 2 * 2               # stage 3 conv1 (stride 2): 8 → 28 at 2×2
            + 9 * 28 * 19 * 2 * 2              # stage 3 conv2: 28 → 19
            + 19 * 10)                         # classifier 1×1 at 1×1
    assert hand == 93_454
    full = (3 * 8 * 64 + 2 * 9 * 8 * 8 * 64 + 9 * 8 * 16 * 16 + 9 * 16 * 16 * 16
            + 9 * 16 * 32 * 4 + 9 * 32 * 32 * 4 + 32 * 10)
    arch = tiny()
    assert cost.macs(arch, arch.space.decode(TINY_ALPHA)) == hand
    assert cost.macs(arch, arch.space.full_channels) == full == 186_176
    assert cost.ratio(arch, TINY_ALPHA) == pytest.approx(hand / full)
    assert cost.ratio(arch, arch.space.full()) == 1.0


def test_tiny_resnet_memory_by_hand():
    # weights k·k·cin·cout plus output activations cout·H·W, per conv, at full width
    weights = (3 * 8 + 2 * 9 * 8 * 8 + 9 * 8 * 16 + 9 * 16 * 16 + 9 * 16 * 32 + 9 * 32 * 32
               + 32 * 10)
    activations = 3 * 8 * 64 + 2 * 16 * 16 + 2 * 32 * 4 + 10
    arch = tiny()
    assert cost.memory(arch, arch.space.full_channels) == weights + activations == 21_090
    small = arch.space.decode(TINY_ALPHA)
    weights_a = (3 * 8 + 9 * 8 * 4 + 9 * 4 * 8 + 9 * 8 * 12 + 9 * 12 * 8 + 9 * 8 * 28
                 + 9 * 28 * 19 + 19 * 10)
    activations_a = 8 * 64 + 4 * 64 + 8 * 64 + 12 * 16 + 8 * 16 + 28 * 4 + 19 * 4 + 10
    assert cost.memory(arch, small) == weights_a + activations_a
    assert cost.cost(arch, TINY_ALPHA, "memory") == pytest.approx(
        (weights_a + activations_a) / 21_090)


def test_depthwise_conv_has_one_group_per_active_channel():
    ws = space.WidthSpace((space.Dim("a", 8),), fixed={"out": 4}, name="toy")
    arch = space.Arch(ws, (space.Conv("dw", "a", "a", 3, 2, 4, depthwise=True),
                           space.Conv("pw", "a", "out", 1, 1, 4)))
    # α = 0.7 → floor(5.6) = 5 active channels: dw 3·3·1·5·4·4, pw 1·1·5·4·4·4
    assert cost.macs(arch, ws.decode([0.7])) == 9 * 5 * 16 + 5 * 4 * 16
    assert cost.memory(arch, ws.decode([0.7])) == (9 * 5 + 5 * 16) + (5 * 4 + 4 * 16)


def test_mobilenet_v3_reference_code_kernels():
    # the code's depthwise convs are all 3×3: Large loses (25 − 9)·mid·H·W on its 5×5 blocks
    table, code = space.mobilenet_v3("large"), space.mobilenet_v3("large", reference_code=True)
    five = 16 * (72 + 120 + 120) * 28 * 28 + 16 * (672 + 960 + 960) * 7 * 7
    assert (cost.macs(table, table.space.full_channels)
            - cost.macs(code, code.space.full_channels)) == five


def test_mobilenet_v3_se_convs_counted_at_1x1():
    arch = space.mobilenet_v3("large")
    se = {c.name: c for c in arch.convs if "/se_" in c.name}
    assert se["stage3/block0/se_reduce"] == space.Conv(
        "stage3/block0/se_reduce", "stage3/block0", "stage3/block0/se", 1, 1, 1)
    assert arch.space.fixed["stage3/block0/se"] == 72 // 4
    assert "stage2/block0/se_reduce" not in se                          # no SE in that block
    ch = arch.space.decode(arch.space.smallest())
    assert ch["stage3/block0"] == 30 and ch["stage3/block0/se"] == 18   # SE inner stays whole


# --- dims and decoding ------------------------------------------------------------------------

@pytest.mark.parametrize("arch,dims", [
    (space.cifar_resnet(20, 100), 12), (space.cifar_resnet(56, 100), 30),
    (space.imagenet_resnet(18), 12),
    # the code's channel_space and its formula 2 + Σn + len(setting) give 24; joslim.md says 25
    (space.mobilenet_v2(), 24),
    (space.mobilenet_v3("large"), 21),
    # beyond the spec, from the code's channel_space: ResNet-34, ResNet-50, MobileNetV3-Small
    (space.imagenet_resnet(34), 20), (space.imagenet_resnet(50), 21),
    (space.mobilenet_v3("small"), 16)])
def test_search_dims(arch, dims):
    assert arch.space.size == dims


def test_dim_order_follows_the_code():
    assert space.cifar_resnet(20, 10).space.names == tuple(
        f"stage{s}/{d}" for s in (1, 2, 3) for d in ("residual", "block0", "block1", "block2"))
    # the code's channel_space, flattened
    assert list(space.mobilenet_v2().space.bases.values()) == [
        32, 16, 24, 96, 144, 32, 144, 192, 192, 64, 192, 384, 384, 384,
        96, 384, 576, 576, 160, 576, 960, 960, 320, 960]
    assert list(space.mobilenet_v3("large").space.bases.values()) == [
        16, 16, 24, 64, 72, 40, 72, 120, 120, 80, 240, 200, 184, 184,
        112, 480, 672, 160, 672, 960, 960]
    assert list(space.imagenet_resnet(50).space.bases.values()) == (
        [64, 256, 64, 64, 64, 512] + [128] * 4 + [1024] + [256] * 6 + [2048] + [512] * 3)


def test_decode_floor():
    ws = space.cifar_resnet(20, 100).space
    ch = ws.decode([0.42] + [0.999] * 11)
    assert ch["stage1/residual"] == 6                                   # 6.72 → 6
    assert ch["stage1/block0"] == 15                                    # 15.984 → 15
    assert ch["stage3/block2"] == 63                                    # 63.936 → 63
    assert ws.decode(ws.full()) == ws.full_channels


def test_decode_residual_chain_running_max():
    ws = space.cifar_resnet(20, 100).space
    alpha = [1.0] + [0.5] * 3 + [0.42] + [0.5] * 3 + [0.42] + [0.5] * 3
    ch = ws.decode(alpha)
    # stage 2's 13 (0.42·32) and stage 3's 26 (0.42·64) are raised to stage 1's 16
    assert [ch[f"stage{s}/residual"] for s in (1, 2, 3)] == [16, 16, 26]
    alpha[0] = 0.42
    ch = ws.decode(alpha)
    assert [ch[f"stage{s}/residual"] for s in (1, 2, 3)] == [6, 13, 26]
    assert ch["stage2/block0"] == 16 and ch["stage3/block0"] == 32      # blocks are not chained


def test_decode_mobilenet_chains():
    v3 = space.mobilenet_v3("large").space
    alpha = [1.0, 0.5] + [1.0] * 19
    assert v3.decode(alpha)["stage1/residual"] == 16                    # raised to the stem's 16
    v2 = space.mobilenet_v2().space
    alpha = [1.0] * 24
    alpha[v2.names.index("stage3/residual")] = 0.42                     # 13 < stage 2's 24
    alpha[v2.names.index("stage1/residual")] = 0.42                     # not in the chain
    ch = v2.decode(alpha)
    assert ch["stage3/residual"] == 24 and ch["stage1/residual"] == 6


def test_fixed_counts_untouched():
    arch = space.mobilenet_v2(num_classes=7)
    ch = arch.space.decode(arch.space.smallest())
    assert (ch["image"], ch["last"], ch["classes"]) == (3, 1280, 7)
    assert ch["stem"] == 13                                             # 0.42 · 32 = 13.44


def test_uniform_configs():
    ws = space.cifar_resnet(20, 100).space
    assert ws.uniform(0.5) == (0.5,) * 12
    assert ws.full() == (1.0,) * 12 and ws.smallest() == (0.42,) * 12


def test_archs_are_hashable_values():
    assert space.cifar_resnet(20, 100) == space.cifar_resnet(20, 100)
    assert hash(space.cifar_resnet(20, 100)) == hash(space.cifar_resnet(20, 100))
    assert space.cifar_resnet(20, 100) != space.cifar_resnet(20, 10)


# --- bad input --------------------------------------------------------------------------------

def test_wrong_length_message():
    ws = space.cifar_resnet(20, 100).space
    with pytest.raises(ValueError, match=r"has 11 entries; ResNet-20's space has 12 dims: "
                                         r"stage1/residual, stage1/block0, "):
        ws.decode([0.5] * 11)
    with pytest.raises(ValueError, match=r"one multiplier per dim \(12 for ResNet-20\); "
                                         r"got an array of shape \(2, 12\)"):
        ws.decode([[0.5] * 12] * 2)
    with pytest.raises(ValueError, match="a sequence of 12 numbers"):
        ws.decode(["wide"] * 12)


def test_out_of_bounds_message():
    ws = space.cifar_resnet(20, 100).space
    alpha = [0.5] * 12
    alpha[5] = 1.2                                                      # stage2/block0
    with pytest.raises(ValueError, match=r"outside \[0.42, 1.0\] for ResNet-20: "
                                         r"stage2/block0 = 1.2"):
        ws.decode(alpha)
    alpha[5] = float("nan")
    with pytest.raises(ValueError, match="stage2/block0 = nan"):
        ws.decode(alpha)
    with pytest.raises(ValueError, match="stage1/residual = 0.2"):
        cost.ratio(space.cifar_resnet(20, 100), [0.2] + [0.5] * 11)
    with pytest.raises(ValueError, match="outside"):
        ws.uniform(0.3)


def test_bad_channels_and_kind():
    arch = tiny()
    ch = arch.space.decode(TINY_ALPHA)
    with pytest.raises(ValueError, match=r"lack \['stage3/block0'\]"):
        cost.macs(arch, {k: v for k, v in ch.items() if k != "stage3/block0"})
    with pytest.raises(ValueError, match=r"stage1/block0 = 9 \(full width 8\)"):
        cost.macs(arch, {**ch, "stage1/block0": 9})
    with pytest.raises(ValueError, match="unknown cost kind 'latency'; valid: macs, memory"):
        cost.cost(arch, TINY_ALPHA, "latency")


def test_bad_builder_arguments():
    with pytest.raises(ValueError, match="6n \\+ 2"):
        space.cifar_resnet(21, 100)
    with pytest.raises(ValueError, match="unknown CIFAR stem '5x5'"):
        space.cifar_resnet(20, 100, stem="5x5")
    with pytest.raises(ValueError, match="valid: 18, 34, 50"):
        space.imagenet_resnet(101)
    with pytest.raises(ValueError, match="unknown MobileNetV3 kind 'medium'"):
        space.mobilenet_v3("medium")
    with pytest.raises(ValueError, match="num_classes must be a positive integer"):
        space.mobilenet_v2(num_classes=0)
    with pytest.raises(ValueError, match=r"stage widths are four positive integers, one per "
                                         r"stage; got \(64, 128, 256\)"):
        space.imagenet_resnet(18, widths=(64, 128, 256))
    with pytest.raises(ValueError, match=r"layout \(blocks per stage\) are four positive "
                                         r"integers, one per stage; got \(2, 0, 2, 2\)"):
        space.imagenet_resnet(18, layout=(2, 0, 2, 2))
    with pytest.raises(ValueError, match="stage widths are four positive integers"):
        space.imagenet_resnet(18, widths=(64.0, 128, 256, 512))
    with pytest.raises(ValueError, match="stage widths are four positive integers"):
        space.imagenet_resnet(18, widths=64)
    with pytest.raises(ValueError, match=r"bases along chain .* must not decrease"):
        space.imagenet_resnet(18, widths=(128, 64, 256, 512))
    for bad in (0, -1.0, float("nan"), float("inf"), True, "2"):
        with pytest.raises(ValueError, match="MobileNetV2's width_mult must be a positive "
                                             "number"):
            space.mobilenet_v2(width_mult=bad)
    with pytest.raises(ValueError, match=r"depth_mult must be a positive number \(1.0: the "
                                         r"paper's network\); got 0"):
        space.mobilenet_v2(depth_mult=0)


def test_bad_width_spaces():
    with pytest.raises(ValueError, match="keeps no channel at the lower bound"):
        space.WidthSpace((space.Dim("a", 2),))
    with pytest.raises(ValueError, match="must not decrease"):
        space.WidthSpace((space.Dim("a", 32), space.Dim("b", 16)), chains=(("a", "b"),))
    with pytest.raises(ValueError, match=r"0 < low <= high <= 1"):
        space.WidthSpace((space.Dim("a", 16),), low=0.5, high=1.5)
    ws = space.WidthSpace((space.Dim("a", 16),))
    with pytest.raises(ValueError, match="neither a dim nor a fixed count"):
        space.Arch(ws, (space.Conv("c", "image", "a", 3, 1, 8),))
