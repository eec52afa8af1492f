"""AutoAugment ops against independent numpy computations of what PIL documents them to do.

Blends (brightness, contrast, colour, sharpness) are compared to ±1 uint8 level: PIL computes
`degenerate + factor * (image - degenerate)` in single precision and truncates it to uint8, so a
value that is an integer in exact arithmetic can land one level lower there.
"""

import numpy as np
import pytest

from lib.data import autoaugment as aa

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, size=(12, 10, 3), dtype=np.uint8)
GREY = RNG.integers(0, 256, size=(12, 10, 1), dtype=np.uint8)


def luma(image):
    """ITU-R 601-2 luma, as PIL documents its greyscale conversion, rounded; HW1 int."""
    if image.shape[2] == 1:
        return image.astype(np.int64)
    r, g, b = (image[..., k].astype(np.int64) for k in range(3))
    return ((r * 299 + g * 587 + b * 114 + 500) // 1000)[..., None]


def blend(degenerate, image, factor):
    return np.clip(np.floor(degenerate + factor * (image.astype(np.float64) - degenerate)), 0, 255)


def assert_within_one(actual, expected):
    assert actual.dtype == np.uint8
    np.testing.assert_allclose(actual.astype(np.float64), expected, atol=1)


# --- magnitudes -----------------------------------------------------------------------------


def test_value_ninths_at_both_ends_and_the_middle():
    assert aa.value("ShearX", 0) == 0.0
    assert aa.value("ShearX", 9) == pytest.approx(0.3)
    assert aa.value("ShearX", 3) == pytest.approx(0.1)
    assert aa.value("TranslateY", 9) == pytest.approx(150 / 331)
    assert aa.value("Rotate", 3) == pytest.approx(10.0)
    assert aa.value("Contrast", 6) == pytest.approx(0.6)
    assert aa.value("Solarize", 0) == 256 and aa.value("Solarize", 9) == 0
    assert aa.value("Solarize", 3) == pytest.approx(256 * 6 / 9)
    assert [aa.value("Posterize", i) for i in (0, 3, 9)] == [8, 7, 4]  # round(8 - 4i/9)
    assert aa.value("Equalize", 4) is None and aa.value("Invert", None) is None


def test_value_tenths_is_the_original_autoaugment_scaling():
    assert aa.value("ShearX", 0, mapping="tenths") == 0.0
    assert aa.value("ShearX", 9, mapping="tenths") == pytest.approx(0.27)
    assert aa.value("Rotate", 5, mapping="tenths") == pytest.approx(15.0)
    assert aa.value("Solarize", 5, mapping="tenths") == pytest.approx(128.0)
    assert [aa.value("Posterize", i, mapping="tenths") for i in (0, 5, 9)] == [8, 6, 4]


def test_rescale_levels_are_the_spec_table_whatever_the_mapping():
    spec = [1.0, 0.85, 0.70, 0.55, 0.40, 0.25, 1.625, 2.25, 2.875, 3.5]
    for mapping in aa.MAPPINGS:
        np.testing.assert_allclose([aa.value("Rescale", i, mapping) for i in range(10)], spec)


# --- colour ops -----------------------------------------------------------------------------


@pytest.mark.parametrize("image", [RGB, GREY], ids=["rgb", "grey"])
def test_invert_posterize_solarize_are_bit_ops(image):
    np.testing.assert_array_equal(aa.apply(image, "Invert", None), 255 - image)
    for index, bits in [(0, 8), (3, 7), (9, 4)]:
        mask = np.uint8((0xFF << (8 - bits)) & 0xFF)
        np.testing.assert_array_equal(aa.apply(image, "Posterize", index), image & mask)
    for index in (0, 4, 9):
        threshold = 256 - 256 * index / 9
        expected = np.where(image < threshold, image, 255 - image)
        np.testing.assert_array_equal(aa.apply(image, "Solarize", index), expected)
    assert np.array_equal(aa.apply(image, "Solarize", 9), 255 - image)  # threshold 0: all


@pytest.mark.parametrize("image", [RGB, GREY], ids=["rgb", "grey"])
@pytest.mark.parametrize("index,sign", [(3, 1), (9, -1), (9, 1)])
def test_brightness_contrast_color_are_blends_with_a_degenerate_image(image, index, sign):
    factor = 1 + sign * 0.9 * index / 9
    black = np.zeros_like(image, dtype=np.float64)
    assert_within_one(aa.apply(image, "Brightness", index, sign=sign), blend(black, image, factor))
    mean = np.floor(luma(image).mean() + 0.5)
    assert_within_one(aa.apply(image, "Contrast", index, sign=sign), blend(mean, image, factor))
    grey = luma(image).astype(np.float64)
    assert_within_one(aa.apply(image, "Color", index, sign=sign), blend(grey, image, factor))


@pytest.mark.parametrize("sign", [1, -1])
def test_sharpness_blends_with_the_smoothed_image_inside(sign):
    kernel = np.array([[1, 1, 1], [1, 5, 1], [1, 1, 1]]) / 13  # PIL's SMOOTH filter
    x = RGB.astype(np.float64)
    smooth = sum(
        kernel[i, j] * x[i : i + 10, j : j + 8] for i in range(3) for j in range(3)
    )
    factor = 1 + sign * 0.9 * 7 / 9
    out = aa.apply(RGB, "Sharpness", 7, sign=sign)
    assert_within_one(out[1:-1, 1:-1], blend(np.floor(smooth + 0.5), RGB[1:-1, 1:-1], factor))


def equalize_reference(channel):
    """PIL's documented equalize: a LUT from the cumulative histogram, step (N - last) // 255."""
    hist = np.bincount(channel.ravel(), minlength=256)
    present = hist[hist > 0]
    step = (present.sum() - present[-1]) // 255
    if len(present) <= 1 or step == 0:
        return channel
    before = np.concatenate([[0], np.cumsum(hist)[:-1]])
    lut = np.minimum((step // 2 + before) // step, 255)
    return lut[channel].astype(np.uint8)


def test_equalize_matches_the_cumulative_histogram_lut():
    skewed = (RNG.random((32, 32, 3)) ** 3 * 255).astype(np.uint8)  # mostly dark
    expected = np.stack([equalize_reference(skewed[..., k]) for k in range(3)], axis=-1)
    out = aa.apply(skewed, "Equalize", None)
    np.testing.assert_array_equal(out, expected)
    assert out.mean() > skewed.mean() + 40  # it spreads the dark mass out
    np.testing.assert_array_equal(aa.apply(skewed[..., :1], "Equalize", 3), expected[..., :1])


def test_autocontrast_stretches_each_channel_to_the_full_range():
    # Ranges 160, 170, 128: 255/range is exact in binary, so PIL's float LUT has no rounding.
    lows, highs = (40, 10, 100), (200, 180, 228)
    image = np.stack(
        [RNG.integers(lo, hi + 1, size=(16, 16)) for lo, hi in zip(lows, highs)], axis=-1
    ).astype(np.uint8)
    image[0, 0], image[0, 1] = lows, highs
    expected = (image.astype(np.int64) - lows) * 255 // (np.array(highs) - lows)
    out = aa.apply(image, "AutoContrast", None)
    np.testing.assert_array_equal(out, expected)
    assert out.min() == 0 and out.max() == 255


# --- geometric ops --------------------------------------------------------------------------


def test_rotate_90_of_a_square_image_is_rot90():
    square = RNG.integers(0, 256, size=(9, 9, 3), dtype=np.uint8)
    np.testing.assert_array_equal(aa.transform(square, "Rotate", 90.0), np.rot90(square))
    np.testing.assert_array_equal(aa.transform(square, "Rotate", -90.0), np.rot90(square, -1))


def test_rotate_is_nearest_neighbour_about_the_centre_with_grey_fill():
    size, angle = 20, 30.0
    image = RNG.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    y, x = np.mgrid[0:size, 0:size] + 0.5 - size / 2  # pixel centres about the image centre
    t = np.deg2rad(angle)  # counter-clockwise on screen (y pointing down)
    src_x = np.cos(t) * x - np.sin(t) * y + size / 2
    src_y = np.sin(t) * x + np.cos(t) * y + size / 2
    col, row = np.floor(src_x).astype(int), np.floor(src_y).astype(int)
    inside = (col >= 0) & (col < size) & (row >= 0) & (row < size)
    sampled = image[np.clip(row, 0, size - 1), np.clip(col, 0, size - 1)]
    expected = np.where(inside[..., None], sampled, 128)
    clear = (np.abs(src_x - np.round(src_x)) > 1e-6) & (np.abs(src_y - np.round(src_y)) > 1e-6)
    out = aa.apply(image, "Rotate", 9)  # 30 degrees, counter-clockwise as in the paper's code
    np.testing.assert_array_equal(out[clear], expected[clear])
    assert (~inside & clear).sum() > 20  # the corners were filled
    np.testing.assert_array_equal(aa.apply(image, "Rotate", 9, sign=-1),
                                  aa.transform(image, "Rotate", -angle))


@pytest.mark.parametrize("channels", [3, 1])
def test_translate_by_whole_pixels_is_slicing_with_grey_fill(channels):
    wide = RNG.integers(0, 256, size=(4, 331, channels), dtype=np.uint8)  # 150/331 -> 150 px
    right = aa.apply(wide, "TranslateX", 3, sign=1)  # index 3: 50 px, content moves left
    np.testing.assert_array_equal(right[:, :281], wide[:, 50:])
    assert (right[:, 281:] == 128).all()
    left = aa.apply(wide, "TranslateX", 3, sign=-1)
    np.testing.assert_array_equal(left[:, 50:], wide[:, :281])
    assert (left[:, :50] == 128).all()
    tall = np.swapaxes(wide, 0, 1).copy()
    down = aa.apply(tall, "TranslateY", 9, sign=-1, fill=7)  # 150 px of the height
    np.testing.assert_array_equal(down[150:], tall[:181])
    assert (down[:150] == 7).all()
    tenths = aa.apply(wide, "TranslateX", 3, sign=1, mapping="tenths")  # 45 px
    np.testing.assert_array_equal(tenths[:, :286], wide[:, 45:])


@pytest.mark.parametrize("sign", [1, -1])
def test_shear_x_moves_rows_about_the_top_left_corner(sign):
    height, width, m = 12, 16, 0.4
    image = RNG.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    out = aa.transform(image, "ShearX", sign * m)
    # Where m * (y + 0.5) is a whole number k the source x + sign * k is a pixel centre, and the
    # bicubic kernel puts all weight on it: the row is shifted exactly.
    for y in (2, 7):
        k = round(m * (y + 0.5))
        src = np.arange(width) + sign * k
        inside = (src >= 0) & (src < width)
        np.testing.assert_array_equal(out[y, inside], image[y, src[inside]])
        assert (out[y, ~inside] == 128).all() and (~inside).sum() == k


def test_shear_interpolates_bicubically():
    # Row 1 with m = 1/3 samples half-way between pixels, where PIL's affine bicubic (cubic
    # convolution with a = -1) weighs the four neighbours -1/8, 5/8, 5/8, -1/8: an impulse rings
    # below the background, which nearest and bilinear interpolation cannot do.
    image = np.full((3, 12, 1), 100, np.uint8)
    image[:, 6] = 200
    expected = np.full(12, 100.0)
    expected[[4, 7]], expected[[5, 6]], expected[11] = 87.5, 162.5, 128  # x = 11: outside
    assert_within_one(aa.transform(image, "ShearX", 1 / 3)[1, :, 0], expected)


@pytest.mark.parametrize("op", ["ShearX", "ShearY"])
def test_shear_at_full_magnitude_fills_outside_and_keeps_constant_lines(op):
    # Rows (ShearX) or columns (ShearY) of one value each: any interpolation keeps the value, so
    # the output is that value inside the source image and the fill outside, at every pixel.
    height, width, m = 10, 14, 0.3
    lines = RNG.integers(0, 256, size=height if op == "ShearX" else width).astype(np.uint8)
    image = np.broadcast_to(
        lines[:, None, None] if op == "ShearX" else lines[None, :, None], (height, width, 1)
    ).copy()
    out = aa.apply(image, op, 9, sign=1)
    y, x = np.mgrid[0:height, 0:width] + 0.5
    src = x + m * y if op == "ShearX" else y + m * x
    inside = src < (width if op == "ShearX" else height)
    np.testing.assert_array_equal(out[inside], image[inside])
    assert (out[~inside] == 128).all() and (~inside).sum() > 10


@pytest.mark.parametrize("image", [RGB, GREY], ids=["rgb", "grey"])
def test_rescale_index_0_is_the_identity(image):
    np.testing.assert_array_equal(aa.apply(image, "Rescale", 0), image)


@pytest.mark.parametrize("zoom", [0.25, 2.0])
def test_rescale_zooms_about_the_centre_with_black_fill(zoom):
    size = 16
    image = RNG.integers(1, 256, size=(size, size, 3), dtype=np.uint8)
    src = np.floor((np.arange(size) + 0.5 - size / 2) / zoom + size / 2).astype(int)
    inside = (src >= 0) & (src < size)
    expected = np.zeros_like(image)
    expected[np.ix_(inside, inside)] = image[np.ix_(src[inside], src[inside])]
    np.testing.assert_array_equal(aa.transform(image, "Rescale", zoom), expected)
    if zoom == 0.25:
        np.testing.assert_array_equal(aa.apply(image, "Rescale", 5), expected)
        assert inside.sum() == 4  # a 4x4 image in a black frame


# --- signs ----------------------------------------------------------------------------------


def test_random_sign_draws_both_and_a_fixed_sign_is_deterministic():
    image = RNG.integers(0, 256, size=(6, 12, 3), dtype=np.uint8)
    plus = aa.apply(image, "TranslateX", 9, sign=1)
    minus = aa.apply(image, "TranslateX", 9, sign=-1)
    assert not np.array_equal(plus, minus)
    rng = np.random.default_rng(1)
    draws = [aa.apply(image, "TranslateX", 9, rng=rng) for _ in range(30)]
    is_plus = [np.array_equal(d, plus) for d in draws]
    assert all(p or np.array_equal(d, minus) for p, d in zip(is_plus, draws))
    assert 0 < sum(is_plus) < 30
    again = np.random.default_rng(1)
    assert all(np.array_equal(d, aa.apply(image, "TranslateX", 9, rng=again)) for d in draws)
    brighter = aa.apply(image, "Brightness", 9, sign=1, rng=np.random.default_rng(2))
    assert np.array_equal(brighter, aa.apply(image, "Brightness", 9, sign=1))


# --- candidates -----------------------------------------------------------------------------


def test_policies_are_the_published_tables():
    assert len(aa.IMAGENET_POLICY) == len(aa.SVHN_POLICY) == 25
    for sub_policy in aa.IMAGENET_POLICY + aa.SVHN_POLICY:
        assert len(sub_policy) == 2
        for op, probability, index in sub_policy:
            assert op in aa.OPS and 0 <= probability <= 1 and 0 <= index <= 9
    assert aa.IMAGENET_POLICY[0] == (("Posterize", 0.4, 8), ("Rotate", 0.6, 9))
    assert aa.SVHN_POLICY[-1] == (("ShearX", 0.7, 2), ("Invert", 0.1, 5))


def test_candidates_count_and_uniqueness():
    once = aa.candidates()
    assert len(once) == len(set(once)) == 50
    per_index = aa.candidates(per_index=True)
    assert len(per_index) == len(set(per_index)) == 63  # the spec's count: the paper's code's
    assert once[-10:] == per_index[-10:] == [("Rescale", i) for i in range(10)]
    assert [op for op, _ in per_index].count("Equalize") == 8
    assert {(op, i) for op, i in per_index if op not in aa.MAGNITUDE_FREE} == {
        (op, i) for op, i in once if op not in aa.MAGNITUDE_FREE
    }
    assert sorted(op for op, i in once if i is None) == sorted(aa.MAGNITUDE_FREE)
    assert once[:3] == [("Posterize", 8), ("Rotate", 9), ("Solarize", 5)]
    tiny = RGB[:4, :4]
    for op, index in per_index:
        sign = 1 if op in aa.RANDOM_SIGN else None
        assert aa.apply(tiny, op, index, sign=sign).shape == (4, 4, 3)


# --- bad input ------------------------------------------------------------------------------


def test_bad_inputs_say_what_is_wrong():
    with pytest.raises(ValueError, match="unknown AutoAugment op 'Shear'.*ShearX"):
        aa.apply(RGB, "Shear", 3, sign=1)
    for index in (10, -1, 2.5, True):
        with pytest.raises(ValueError, match="integer 0..9"):
            aa.value("Rotate", index)
    with pytest.raises(ValueError, match="Rotate needs a magnitude index"):
        aa.apply(RGB, "Rotate", None)
    with pytest.raises(ValueError, match="unknown mapping"):
        aa.value("Rotate", 3, mapping="linear")
    with pytest.raises(ValueError, match="uint8.*np.clip"):
        aa.apply(RGB / 255.0, "Invert", None)
    with pytest.raises(ValueError, match=r"1 or 3 channels, got shape \(12, 10\)"):
        aa.apply(RGB[..., 0], "Invert", None)
    with pytest.raises(ValueError, match="1 or 3 channels"):
        aa.apply(np.zeros((4, 4, 4), np.uint8), "Invert", None)
    with pytest.raises(ValueError, match="needs a sign: pass rng"):
        aa.apply(RGB, "ShearX", 3)
    with pytest.raises(ValueError, match="sign must be"):
        aa.apply(RGB, "ShearX", 3, sign=0)
    with pytest.raises(ValueError, match="Posterize has no sign"):
        aa.apply(RGB, "Posterize", 3, sign=1)
    with pytest.raises(ValueError, match="fill must be"):
        aa.apply(GREY, "TranslateX", 3, sign=1, fill=(0, 128, 255))
    with pytest.raises(ValueError, match="fill must be"):
        aa.apply(RGB, "TranslateX", 3, sign=1, fill=300)
