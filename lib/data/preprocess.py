"""Image operations on raw pixels (before normalisation), one HWC image at a time.

Crops pad with zeros in raw pixel space, so a padded pixel normalises to -mean/std as in the
reference implementations (lth_common.md §3). Resizing uses PIL: the runtime has no TensorFlow.
"""

import math

import numpy as np
from PIL import Image

# Per-channel mean and std of [0, 1]-scaled pixels.
NORMALIZATION = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "inception": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),  # pixels to [−1, 1]: timm's ViT weights
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    # The std of many public CIFAR repositories (kuangliu's), used by the GST code.
    "cifar10_kuangliu": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)),
}
CIFAR_PAD = 4
CROP_SCALE = (0.1, 1.0)  # area fraction of RandomResizedCrop (lth_common.md §3)
CROP_RATIO = (0.8, 1.25)  # aspect ratio w/h of RandomResizedCrop
CROP_TRIES = 10
EVAL_RESIZE_RATIO = 256 / 224  # ImageNet eval: shorter side to 256 for a 224 crop


def pool(images: np.ndarray, factor: int) -> np.ndarray:
    """Average-pools [..., H, W, C] by `factor` into float32.

    Rows/columns past the last multiple of `factor` are dropped (floor), so 28 -> 14 for 2 and
    8 -> 2 for 3.
    """
    if factor == 1:
        return images
    *lead, h, w, c = images.shape
    h2, w2 = h // factor, w // factor
    cropped = images[..., : h2 * factor, : w2 * factor, :]
    return cropped.reshape(*lead, h2, factor, w2, factor, c).mean(axis=(-4, -2), dtype=np.float32)


# The random ops take one example's spatial arrays ({'image': HWC, 'fg_mask': HWC, ...}) and
# draw their parameters once, so every array gets the same crop and flip.


def flip(arrays: dict, rng: np.random.Generator) -> dict:
    """Horizontal flip with probability 1/2."""
    return {k: v[:, ::-1] for k, v in arrays.items()} if rng.random() < 0.5 else arrays


def pad_crop(arrays: dict, rng: np.random.Generator, pad: int = CIFAR_PAD) -> dict:
    """Random crop of the native size from the arrays zero-padded by `pad` on every side."""
    top, left = rng.integers(0, 2 * pad + 1, size=2)
    out = {}
    for k, image in arrays.items():
        h, w, c = image.shape
        padded = np.zeros((h + 2 * pad, w + 2 * pad, c), image.dtype)
        padded[pad : pad + h, pad : pad + w] = image
        out[k] = padded[top : top + h, left : left + w]
    return out


def blur(image: np.ndarray, factor: int) -> np.ndarray:
    """Down- then up-sampling by `factor` (bilinear, antialiased): H → H/factor → H."""
    if factor <= 1:
        return image
    h, w, _ = image.shape
    small = resize(image, (max(1, h // factor), max(1, w // factor)))
    return resize(small, (h, w))


def resize(image: np.ndarray, size: tuple[int, int], box=None) -> np.ndarray:
    """Bilinear (antialiased) resize of the `box` region (x0, y0, x1, y1) to size (h, w).

    uint8 images (1 or 3 channels) stay uint8; anything else (a float mask) is resized per
    channel in float32."""
    resample = Image.Resampling.BILINEAR
    if image.dtype == np.uint8 and image.shape[-1] in (1, 3):
        gray = image.shape[-1] == 1
        pil = Image.fromarray(image[..., 0] if gray else image)
        out = np.asarray(pil.resize((size[1], size[0]), resample, box=box))
        return out[..., None] if gray else out
    channels = [np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c], np.float32))
                           .resize((size[1], size[0]), resample, box=box))
                for c in range(image.shape[-1])]
    return np.stack(channels, -1)


def crop_box(h: int, w: int, rng: np.random.Generator, scale=CROP_SCALE, ratio=CROP_RATIO, *,
             centred: bool = False, area=None) -> tuple[int, int, int, int]:
    """(top, left, height, width) of a random-resized-crop box (torchvision's sampling): the
    area fraction from `area(rng)` (default uniform over `scale`), the aspect w/h log-uniform
    over `ratio`, the position uniform (centred: the box's centre on the image's); after
    CROP_TRIES boxes that do not fit, the whole image with its aspect clamped to `ratio`,
    centred."""
    log_ratio = np.log(ratio)
    for _ in range(CROP_TRIES):
        fraction = rng.uniform(*scale) if area is None else area(rng)
        aspect = math.exp(rng.uniform(*log_ratio))
        cw = round(math.sqrt(h * w * fraction * aspect))
        ch = round(math.sqrt(h * w * fraction / aspect))
        if 0 < cw <= w and 0 < ch <= h:
            if centred:
                return (h - ch) // 2, (w - cw) // 2, ch, cw
            return int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1)), ch, cw
    aspect = w / h
    if aspect < ratio[0]:
        cw, ch = w, round(w / ratio[0])
    elif aspect > ratio[1]:
        ch, cw = h, round(h * ratio[1])
    else:
        ch, cw = h, w
    return (h - ch) // 2, (w - cw) // 2, ch, cw


def random_resized_crop(arrays: dict, rng: np.random.Generator, size: int,
                        scale: tuple[float, float] = CROP_SCALE,
                        ratio: tuple[float, float] = CROP_RATIO, *, centred: bool = False,
                        area=None) -> dict:
    """A crop_box (area fraction in `scale`, aspect in `ratio`) resized to size x size."""
    top, left, ch, cw = crop_box(*arrays["image"].shape[:2], rng, scale, ratio,
                                 centred=centred, area=area)
    return {k: resize(v, (size, size), box=(left, top, left + cw, top + ch))
            for k, v in arrays.items()}


def random_crop(arrays: dict, rng: np.random.Generator, size: int) -> dict:
    """A size x size crop at a uniform position (torchvision's RandomCrop, no padding)."""
    h, w = arrays["image"].shape[:2]
    if size > min(h, w):
        raise ValueError(f"random crop of {size} px from a {h}x{w} image")
    top, left = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
    return {k: v[top:top + size, left:left + size] for k, v in arrays.items()}


def shift(images: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """[..., H, W, C] images moved right by dx and down by dy whole pixels (negative: left,
    up), zero where nothing comes in."""
    out = np.zeros_like(images)
    h, w = images.shape[-3:-1]
    if abs(dx) < w and abs(dy) < h:
        out[..., max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0), :] = \
            images[..., max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0), :]
    return out


def random_translate(arrays: dict, rng: np.random.Generator, fraction: float) -> dict:
    """torchvision's RandomAffine(0, translate=(f, f)) with zero fill: shifts by
    round(U(−f·W, f·W)) and round(U(−f·H, f·H)) whole pixels (it rounds them, so the bilinear
    warp is an exact pixel shift)."""
    h, w = arrays["image"].shape[:2]
    dx = round(rng.uniform(-fraction * w, fraction * w))
    dy = round(rng.uniform(-fraction * h, fraction * h))
    return {k: shift(v, dx, dy) for k, v in arrays.items()}


def resize_shorter(image: np.ndarray, side: int) -> np.ndarray:
    """torchvision's Resize(side): the shorter side to `side`, the longer one in proportion
    (truncated)."""
    h, w = image.shape[:2]
    if h <= w:
        return resize(image, (side, int(side * w / h)))
    return resize(image, (int(side * h / w), side))


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
    """The central size x size (torchvision's rounding of the offsets)."""
    h, w = image.shape[:2]
    if size > min(h, w):
        raise ValueError(f"center crop of {size} px from a {h}x{w} image")
    top, left = round((h - size) / 2), round((w - size) / 2)
    return image[top:top + size, left:left + size]


def resize_center_crop(image: np.ndarray, size: int) -> np.ndarray:
    """ImageNet eval, torchvision's Resize(round(size · 256/224)) then CenterCrop(size)."""
    return center_crop(resize_shorter(image, round(size * EVAL_RESIZE_RATIO)), size)


# AlexNet's PCA of ImageNet's RGB pixels in [0, 1] (eigenvalues, eigenvectors as columns), as
# the ImageNet recipes with "PCA lighting" use them.
LIGHTING_EIGVAL = np.array([0.2175, 0.0188, 0.0045])
LIGHTING_EIGVEC = np.array([[-0.5675, 0.7192, 0.4009],
                            [-0.5808, -0.0045, -0.8140],
                            [-0.5836, -0.6948, 0.4203]])


def color_jitter(image: np.ndarray, rng: np.random.Generator, brightness: float,
                 contrast: float, saturation: float) -> np.ndarray:
    """torchvision's ColorJitter on an 8-bit image (PIL's enhancers, as torchvision applies
    them to PIL images): factors U[max(0, 1 − s), 1 + s] for brightness (blend with black),
    contrast (with the mean grey level) and saturation (with the greyscale image), in a random
    order. A one-channel image's saturation is a no-op, as in PIL."""
    from PIL import ImageEnhance

    gray = image.shape[-1] == 1
    pixels = image if image.dtype == np.uint8 else np.clip(np.rint(image), 0, 255).astype(
        np.uint8)
    pil = Image.fromarray(pixels[..., 0] if gray else pixels)
    enhancers = [(ImageEnhance.Brightness, brightness), (ImageEnhance.Contrast, contrast),
                 (ImageEnhance.Color, saturation)]
    for i in rng.permutation(len(enhancers)):
        enhancer, strength = enhancers[i]
        if strength > 0:
            pil = enhancer(pil).enhance(rng.uniform(max(0.0, 1 - strength), 1 + strength))
    out = np.asarray(pil)
    return out[..., None] if gray else out


def pca_lighting(image: np.ndarray, rng: np.random.Generator, std: float,
                 max_value: float = 255.0) -> np.ndarray:
    """AlexNet's PCA lighting noise: α ~ N(0, std²) per principal component, and the offset
    Σ_j α_j λ_j v_j (in [0, 1] units, times max_value) added to every pixel of an RGB image;
    float32, not clipped (the recipes add it to the tensor before normalising)."""
    if image.shape[-1] != 3:
        raise ValueError(f"PCA lighting needs RGB images; this one has {image.shape[-1]} "
                         "channel(s)")
    alpha = rng.normal(0.0, std, 3)
    offset = LIGHTING_EIGVEC @ (alpha * LIGHTING_EIGVAL) * max_value
    return image.astype(np.float32) + offset.astype(np.float32)


def normalizer(scale: float, mean, std):
    """(a, b) float32 per channel so that a * raw + b = (raw / scale - mean) / std."""
    mean, std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
    return (1.0 / (scale * std)).astype(np.float32), (-mean / std).astype(np.float32)
