"""AutoAugment operations on one uint8 HWC image with PIL's semantics, the published AutoAugment
ImageNet and SVHN policies, and the candidate transforms of the invariance paper's similarity
search (invariance.md §2.4) and per-class augmentation (§2.6).

PIL does the work (`ImageOps`, `ImageEnhance`, `Image.transform` with an affine map and a fill),
since the paper's code applies these operations to PIL images and PIL defines what they mean.
The facts below come from the paper's code (facebookresearch/grounding-inductive-biases,
`auto_augment/best_policies.py`, `auto_augment/new_policies.py`,
`per_class_augmentation/augmentations.py`):

- Ranges: shear 0–0.3, translate 0–150/331 of the width (X) or height (Y), rotate 0–30°,
  colour/contrast/brightness/sharpness factor 1 ± (0–0.9), posterize 8→4 bits (rounded),
  solarize threshold 256→0. Rescale zooms about the image centre by 1.0, 0.85, 0.70, 0.55,
  0.40, 0.25, 1.625, 2.25, 2.875, 3.5 (index 0..9).
- Index → value: the code takes `np.linspace(low, high, 10)[index]`, i.e. index i → i/9 of the
  range (`mapping="ninths"`, the default; the spec marked it a reconstruction, the code confirms
  it). The original AutoAugment code scales by level/10 (`PARAMETER_MAX = 10`); that choice is
  `mapping="tenths"`. Rescale has its own table and ignores the mapping.
- Resampling and fill: shears are bicubic about the top-left corner, translations and
  rotations nearest-neighbour, all three filled with grey (128, 128, 128). Rescale is
  torchvision's `affine` on the PIL image: nearest-neighbour about (W/2, H/2), filled with black.
- Signs: shears, translations and the four enhance ops draw the sign at random; rotation
  always turns counter-clockwise (the code passes the angle unsigned); pass `sign=-1` to turn
  the other way, or a random sign to get the spec's "signed ops pick the sign at random".

`candidates()` lists every (op, magnitude index) of the two policies plus the 10 rescale levels.
With each magnitude-free op (AutoContrast, Equalize, Invert) once, that is 50 entries; the spec's
63 is the paper's code's count, which keeps a magnitude-free op once per magnitude index it
appears with (`per_index=True`), so Equalize appears 8 times, Invert 5 and AutoContrast 3.
"""

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

OPS = (
    "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "AutoContrast", "Invert",
    "Equalize", "Solarize", "Posterize", "Contrast", "Color", "Brightness", "Sharpness",
    "Rescale",
)
NUM_LEVELS = 10
MAPPINGS = {"ninths": NUM_LEVELS - 1, "tenths": NUM_LEVELS}  # index i -> i / divisor of the range
FILL = (128, 128, 128)  # the AutoAugment ops' fill
RESCALE_FILL = (0, 0, 0)  # torchvision affine's default fill, as the paper's rescale used
MAGNITUDE_FREE = ("AutoContrast", "Equalize", "Invert")
RANDOM_SIGN = (
    "ShearX", "ShearY", "TranslateX", "TranslateY", "Contrast", "Color", "Brightness",
    "Sharpness",
)
# (value at index 0, value at the top of the range) of each op with a linear magnitude.
RANGES = {
    "ShearX": (0.0, 0.3),
    "ShearY": (0.0, 0.3),
    "TranslateX": (0.0, 150 / 331),
    "TranslateY": (0.0, 150 / 331),
    "Rotate": (0.0, 30.0),
    "Solarize": (256.0, 0.0),
    "Posterize": (8.0, 4.0),
    "Contrast": (0.0, 0.9),
    "Color": (0.0, 0.9),
    "Brightness": (0.0, 0.9),
    "Sharpness": (0.0, 0.9),
}
# Zoom out in five steps of 0.15 to 0.25, zoom in in four steps of 0.625 to 3.5.
RESCALE_LEVELS = tuple(
    [1.0 - k * 0.15 for k in range(5)] + [0.25] + [1.0 + k * 0.625 for k in range(1, 4)] + [3.5]
)
_ENHANCE = {
    "Contrast": ImageEnhance.Contrast,
    "Color": ImageEnhance.Color,
    "Brightness": ImageEnhance.Brightness,
    "Sharpness": ImageEnhance.Sharpness,
}

# The published policies (Cubuk et al., AutoAugment, 2019), as in the paper's code: sub-policies of
# two (op, probability, magnitude index) steps. The ImageNet table repeats four sub-policies, as
# published; the indices of magnitude-free ops are kept since the paper's enumeration used them.
IMAGENET_POLICY = (
    (("Posterize", 0.4, 8), ("Rotate", 0.6, 9)),
    (("Solarize", 0.6, 5), ("AutoContrast", 0.6, 5)),
    (("Equalize", 0.8, 8), ("Equalize", 0.6, 3)),
    (("Posterize", 0.6, 7), ("Posterize", 0.6, 6)),
    (("Equalize", 0.4, 7), ("Solarize", 0.2, 4)),
    (("Equalize", 0.4, 4), ("Rotate", 0.8, 8)),
    (("Solarize", 0.6, 3), ("Equalize", 0.6, 7)),
    (("Posterize", 0.8, 5), ("Equalize", 1.0, 2)),
    (("Rotate", 0.2, 3), ("Solarize", 0.6, 8)),
    (("Equalize", 0.6, 8), ("Posterize", 0.4, 6)),
    (("Rotate", 0.8, 8), ("Color", 0.4, 0)),
    (("Rotate", 0.4, 9), ("Equalize", 0.6, 2)),
    (("Equalize", 0.0, 7), ("Equalize", 0.8, 8)),
    (("Invert", 0.6, 4), ("Equalize", 1.0, 8)),
    (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
    (("Rotate", 0.8, 8), ("Color", 1.0, 2)),
    (("Color", 0.8, 8), ("Solarize", 0.8, 7)),
    (("Sharpness", 0.4, 7), ("Invert", 0.6, 8)),
    (("ShearX", 0.6, 5), ("Equalize", 1.0, 9)),
    (("Color", 0.4, 0), ("Equalize", 0.6, 3)),
    (("Equalize", 0.4, 7), ("Solarize", 0.2, 4)),
    (("Solarize", 0.6, 5), ("AutoContrast", 0.6, 5)),
    (("Invert", 0.6, 4), ("Equalize", 1.0, 8)),
    (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
    (("Equalize", 0.8, 8), ("Equalize", 0.6, 3)),
)
SVHN_POLICY = (
    (("ShearX", 0.9, 4), ("Invert", 0.2, 3)),
    (("ShearY", 0.9, 8), ("Invert", 0.7, 5)),
    (("Equalize", 0.6, 5), ("Solarize", 0.6, 6)),
    (("Invert", 0.9, 3), ("Equalize", 0.6, 3)),
    (("Equalize", 0.6, 1), ("Rotate", 0.9, 3)),
    (("ShearX", 0.9, 4), ("AutoContrast", 0.8, 3)),
    (("ShearY", 0.9, 8), ("Invert", 0.4, 5)),
    (("ShearY", 0.9, 5), ("Solarize", 0.2, 6)),
    (("Invert", 0.9, 6), ("AutoContrast", 0.8, 1)),
    (("Equalize", 0.6, 3), ("Rotate", 0.9, 3)),
    (("ShearX", 0.9, 4), ("Solarize", 0.3, 3)),
    (("ShearY", 0.8, 8), ("Invert", 0.7, 4)),
    (("Equalize", 0.9, 5), ("TranslateY", 0.6, 6)),
    (("Invert", 0.9, 4), ("Equalize", 0.6, 7)),
    (("Contrast", 0.3, 3), ("Rotate", 0.8, 4)),
    (("Invert", 0.8, 5), ("TranslateY", 0.0, 2)),
    (("ShearY", 0.7, 6), ("Solarize", 0.4, 8)),
    (("Invert", 0.6, 4), ("Rotate", 0.8, 4)),
    (("ShearY", 0.3, 7), ("TranslateX", 0.9, 3)),
    (("ShearX", 0.1, 6), ("Invert", 0.6, 5)),
    (("Solarize", 0.7, 2), ("TranslateY", 0.6, 7)),
    (("ShearY", 0.8, 4), ("Invert", 0.8, 8)),
    (("ShearX", 0.7, 9), ("TranslateY", 0.8, 3)),
    (("ShearY", 0.8, 5), ("AutoContrast", 0.7, 3)),
    (("ShearX", 0.7, 2), ("Invert", 0.1, 5)),
)


def candidates(per_index: bool = False) -> list[tuple[str, int | None]]:
    """The similarity search's candidates: (op, magnitude index), in order of first appearance in
    the ImageNet then the SVHN policy, then ("Rescale", 0..9).

    A magnitude-free op appears once with index None; `per_index=True` keeps it once per index it
    appears with, as the paper's code did (63 entries instead of 50).
    """
    seen = {}
    for policy in (IMAGENET_POLICY, SVHN_POLICY):
        for sub_policy in policy:
            for op, _, index in sub_policy:
                free = op in MAGNITUDE_FREE and not per_index
                seen.setdefault((op, None if free else index))
    return list(seen) + [("Rescale", index) for index in range(NUM_LEVELS)]


def value(op: str, index: int | None, mapping: str = "ninths") -> float | int | None:
    """The unsigned magnitude of `op` at magnitude index 0..9 (None for a magnitude-free op).

    Shear: the affine coefficient; translate: a fraction of the width (X) or height (Y); rotate:
    degrees; enhance ops: v of the factor 1 ± v; posterize: bits kept (int); solarize: the
    threshold; rescale: the zoom factor.
    """
    _check_op(op)
    if mapping not in MAPPINGS:
        raise ValueError(f"unknown mapping {mapping!r}; choose one of {sorted(MAPPINGS)}")
    if op in MAGNITUDE_FREE:
        if index is not None:
            _check_index(op, index)
        return None
    _check_index(op, index)
    if op == "Rescale":
        return RESCALE_LEVELS[index]
    low, high = RANGES[op]
    v = low + (high - low) * index / MAPPINGS[mapping]
    return int(np.round(v)) if op == "Posterize" else v


def apply(
    image: np.ndarray,
    op: str,
    index: int | None,
    rng: np.random.Generator | None = None,
    sign: int | None = None,
    fill: int | Sequence[int] | None = None,
    mapping: str = "ninths",
) -> np.ndarray:
    """`op` at magnitude index `index` applied to a uint8 HWC image (1 or 3 channels).

    Ops in RANDOM_SIGN take `sign` (+1/-1) or, when it is None, draw it from `rng`. Rotate turns
    counter-clockwise unless `sign=-1`. `fill` defaults to FILL (RESCALE_FILL for Rescale).
    """
    magnitude = value(op, index, mapping)
    if op in RANDOM_SIGN:
        if sign is None:
            if rng is None:
                raise ValueError(
                    f"{op} needs a sign: pass rng (a numpy Generator) to draw it, or sign=+1/-1"
                )
            sign = 1 if rng.random() < 0.5 else -1
        magnitude = (1 if op in _ENHANCE else 0) + _check_sign(sign) * magnitude
    elif op == "Rotate":
        magnitude = (1 if sign is None else _check_sign(sign)) * magnitude
    elif sign is not None:
        raise ValueError(f"{op} has no sign; pass sign=None")
    return transform(image, op, magnitude, fill)


def transform(
    image: np.ndarray,
    op: str,
    magnitude: float | None,
    fill: int | Sequence[int] | None = None,
) -> np.ndarray:
    """`op` with its signed parameter as PIL takes it, on a uint8 HWC image (1 or 3 channels).

    The parameter: shear coefficient (the source of output pixel x is x + m·y, shearing about
    the top-left corner), translation as a fraction of the width or height (positive moves the
    content left or up), degrees counter-clockwise, enhance factor (1 = unchanged), bits kept,
    solarize threshold, zoom factor about the centre; ignored by the magnitude-free ops.
    `fill` (the geometric ops' colour outside the source) defaults as in `apply`.
    """
    _check_op(op)
    _check_image(image)
    if magnitude is None and op not in MAGNITUDE_FREE:
        raise ValueError(f"{op} needs a magnitude; only {MAGNITUDE_FREE} take None")
    channels = image.shape[2]
    pil = Image.fromarray(np.ascontiguousarray(image[..., 0] if channels == 1 else image))
    width, height = pil.size
    if op in ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Rescale"):
        default = RESCALE_FILL if op == "Rescale" else FILL
        color = _fill(default if fill is None else fill, channels)
        affine = {
            "ShearX": (1, magnitude, 0, 0, 1, 0),
            "ShearY": (1, 0, 0, magnitude, 1, 0),
            "TranslateX": (1, 0, magnitude * width, 0, 1, 0),
            "TranslateY": (1, 0, 0, 0, 1, magnitude * height),
        }
        if op in affine:
            shear = op.startswith("Shear")
            resample = Image.Resampling.BICUBIC if shear else Image.Resampling.NEAREST
            out = pil.transform(
                pil.size, Image.Transform.AFFINE, affine[op], resample, fillcolor=color
            )
        elif op == "Rotate":
            out = pil.rotate(magnitude, resample=Image.Resampling.NEAREST, fillcolor=color)
        else:
            if magnitude <= 0:
                raise ValueError(f"Rescale needs a positive zoom factor, got {magnitude}")
            cx, cy, inv = width / 2, height / 2, 1 / magnitude
            matrix = (inv, 0, cx - cx * inv, 0, inv, cy - cy * inv)
            out = pil.transform(
                pil.size, Image.Transform.AFFINE, matrix, Image.Resampling.NEAREST,
                fillcolor=color,
            )
    elif op == "AutoContrast":
        out = ImageOps.autocontrast(pil)
    elif op == "Equalize":
        out = ImageOps.equalize(pil)
    elif op == "Invert":
        out = ImageOps.invert(pil)
    elif op == "Solarize":
        out = ImageOps.solarize(pil, magnitude)
    elif op == "Posterize":
        if int(magnitude) != magnitude or not 0 <= magnitude <= 8:
            raise ValueError(f"Posterize keeps a whole number of bits 0..8, got {magnitude}")
        out = ImageOps.posterize(pil, int(magnitude))
    else:
        out = _ENHANCE[op](pil).enhance(magnitude)
    return np.array(out, dtype=np.uint8).reshape(image.shape)


def _check_op(op: str) -> None:
    if op not in OPS:
        raise ValueError(f"unknown AutoAugment op {op!r}; choose one of {', '.join(OPS)}")


def _check_index(op: str, index) -> None:
    ok = isinstance(index, int | np.integer) and not isinstance(index, bool)
    if not ok or not 0 <= index < NUM_LEVELS:
        raise ValueError(
            f"{op} needs a magnitude index, an integer 0..{NUM_LEVELS - 1}; got {index!r}"
        )


def _check_sign(sign) -> int:
    if sign not in (1, -1):
        raise ValueError(f"sign must be +1 or -1, got {sign!r}")
    return int(sign)


def _check_image(image) -> None:
    if not isinstance(image, np.ndarray):
        raise ValueError(f"expected a numpy uint8 HWC image, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(
            f"expected a uint8 image (0..255), got dtype {image.dtype}; for floats in [0, 1] "
            "pass np.clip(np.round(x * 255), 0, 255).astype(np.uint8)"
        )
    if image.ndim != 3 or image.shape[2] not in (1, 3):
        raise ValueError(
            f"expected one HWC image with 1 or 3 channels, got shape {image.shape}; add a "
            "channel axis to a greyscale image (x[..., None]) and apply ops image by image"
        )


def _fill(fill: int | Sequence[int], channels: int) -> int | tuple[int, ...]:
    """PIL's fill colour for an image with `channels` channels."""
    values = (fill,) * channels if np.isscalar(fill) else tuple(fill)
    if channels == 1 and len(set(values)) == 1:
        values = values[:1]
    if len(values) != channels or not all(
        isinstance(v, int | np.integer) and 0 <= v <= 255 for v in values
    ):
        raise ValueError(
            f"fill must be an integer 0..255 or {channels} of them (a grey triple for a "
            f"1-channel image), got {fill!r}"
        )
    return int(values[0]) if channels == 1 else tuple(int(v) for v in values)
