"""Image augmentation inside the jitted train step, drawn from the step's RNG (dm-pix ops).

Resampling ops (random resized crops, multi-crop views) run on the host, in the Grain pipeline
(lib.data.pipeline.Views); the pointwise and filtering ops of the self-supervised recipes run
here, on device, where they cost a few elementwise passes instead of host time: colour jitter,
grayscale, Gaussian blur, solarisation, flips. Images are [..., H, W, C] floats in [0, 1]
pixel units, so a task that augments on device reads unnormalised batches
(data.normalization='none') and normalises afterwards with `normalize`.

Every op takes one image; `per_image` maps it over a batch (any leading axes) with one key
per image.
"""

from __future__ import annotations

import dataclasses

import dm_pix as pix
import jax
import jax.numpy as jnp


def per_image(op, key: jax.Array, images: jax.Array) -> jax.Array:
    """`op(key, image)` applied to every [H, W, C] image of `images` with its own key."""
    lead = images.shape[:-3]
    flat = images.reshape(-1, *images.shape[-3:])
    keys = jax.random.split(key, flat.shape[0])
    return jax.vmap(op)(keys, flat).reshape(*lead, *images.shape[-3:])


def with_probability(p: float, op):
    """`op` applied with probability p, else the image unchanged."""
    def apply(key, image):
        coin, key = jax.random.split(key)
        return jnp.where(jax.random.uniform(coin) < p, op(key, image), image)
    return apply


def color_jitter(key: jax.Array, image: jax.Array, brightness: float, contrast: float,
                 saturation: float, hue: float) -> jax.Array:
    """torchvision-style ColorJitter: brightness, contrast, saturation and hue changes (deltas
    U[-b, b], factors U[1-c, 1+c], U[1-s, 1+s], hue shift U[-h, h]) in a random order, each
    result clipped to [0, 1]. Single-channel images get brightness and contrast only."""
    k_order, *ks = jax.random.split(key, 5)
    colour = image.shape[-1] == 3

    def op(i, x):
        return jax.lax.switch(i, [
            lambda x: pix.random_brightness(ks[0], x, brightness),
            lambda x: pix.random_contrast(ks[1], x, 1 - contrast, 1 + contrast),
            lambda x: (pix.random_saturation(ks[2], x, max(0.0, 1 - saturation), 1 + saturation)
                       if colour else x),
            lambda x: pix.random_hue(ks[3], x, hue) if colour else x,
        ], x)

    order = jax.random.permutation(k_order, 4)
    return jax.lax.fori_loop(0, 4, lambda j, x: jnp.clip(op(order[j], x), 0.0, 1.0), image)


def grayscale(image: jax.Array) -> jax.Array:
    """Rec. 601 luma, repeated over the channels (the shape is kept)."""
    if image.shape[-1] == 1:
        return image
    return jnp.broadcast_to(pix.rgb_to_grayscale(image, keep_dims=True), image.shape)


def random_blur(key: jax.Array, image: jax.Array, sigma_min: float, sigma_max: float,
                kernel_fraction: float = 0.1) -> jax.Array:
    """Gaussian blur with σ ~ U[sigma_min, sigma_max] pixels and a kernel of about
    kernel_fraction of the image side (SimCLR: 23 px at 224)."""
    sigma = jax.random.uniform(key, (), minval=sigma_min, maxval=sigma_max)
    kernel = max(3, int(round(kernel_fraction * image.shape[-2])) | 1)
    return pix.gaussian_blur(image, sigma, kernel)


def solarize(image: jax.Array, threshold: float = 0.5) -> jax.Array:
    """Pixels at or above `threshold` inverted (x → 1 − x)."""
    return pix.solarize(image, threshold)


@dataclasses.dataclass(frozen=True)
class ViewColor:
    """The colour part of a self-supervised view recipe, applied per image: colour jitter
    (brightness, contrast, saturation, hue as in `color_jitter`) with probability p_jitter,
    grayscale with p_gray, blur (σ ∈ [0.1, 2]) with p_blur, solarise with p_solarize. The
    default is SimCLR's at strength 1 (jitter 0.8, 0.8, 0.8, 0.2)."""

    jitter: tuple = (0.8, 0.8, 0.8, 0.2)
    p_jitter: float = 0.8
    p_gray: float = 0.2
    p_blur: float = 0.5
    p_solarize: float = 0.0

    def __call__(self, key: jax.Array, images: jax.Array) -> jax.Array:
        steps = [
            with_probability(self.p_jitter, lambda k, x: color_jitter(k, x, *self.jitter)),
            with_probability(self.p_gray, lambda k, x: grayscale(x)),
            with_probability(self.p_blur, lambda k, x: random_blur(k, x, 0.1, 2.0)),
            with_probability(self.p_solarize, lambda k, x: solarize(x)),
        ]

        def one(key, image):
            for step, k in zip(steps, jax.random.split(key, len(steps))):
                image = step(k, image)
            return image

        return per_image(one, key, images)


_BYOL_JITTER = (0.4, 0.4, 0.2, 0.1)
# Each method's published colour recipe, one ViewColor per view of a record (views past the
# last take the last): BYOL's two views differ in blur (1.0 / 0.1) and solarisation (0 / 0.2).
RECIPES = {
    "simclr": (ViewColor(),),
    "mocov2": (ViewColor(jitter=(0.4, 0.4, 0.4, 0.1)),),
    "byol": (ViewColor(jitter=_BYOL_JITTER, p_blur=1.0),
             ViewColor(jitter=_BYOL_JITTER, p_blur=0.1, p_solarize=0.2)),
    "swav": (ViewColor(),),
}


def normalize(images: jax.Array, mean, std) -> jax.Array:
    """(x − mean) / std per channel: after on-device augmentation of [0, 1] pixels."""
    return (images - jnp.asarray(mean, images.dtype)) / jnp.asarray(std, images.dtype)
