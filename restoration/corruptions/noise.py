"""Pointwise corruptions: additive, impulse, shot and speckle noise, low light, grayscale.

All follow the package contract (see `restoration.corruptions`): float NHWC in [0, 1], key first,
per-image randomness from `jax.random.split(key, N)[i]`, ranges drawn uniformly per image.
Noise is computed in float32 and cast back to the input dtype.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from restoration import image_ops
from restoration.corruptions._common import (ImageShape, Param, batched, check_bool,
                                             check_images, check_number, draw, from_unit,
                                             is_range, per_image_keys, to_normal, uniforms)



# ---------------------------------------------------------------------------------------------
# Parameter checks (shared with chain/validate; `image_shape` unused by these).


def _check_gaussian_noise(p: dict[str, Any], image_shape: ImageShape) -> dict[str, Any]:
  del image_shape
  f = "gaussian_noise"
  return dict(sigma=check_number(f, "sigma", p["sigma"], lo=0.0),
              clip=check_bool(f, "clip", p["clip"]))


def _check_salt_and_pepper(p: dict[str, Any], image_shape: ImageShape) -> dict[str, Any]:
  del image_shape
  f = "salt_and_pepper"
  return dict(amount=check_number(f, "amount", p["amount"], lo=0.0, hi=1.0),
              salt_ratio=check_number(f, "salt_ratio", p["salt_ratio"], lo=0.0, hi=1.0),
              return_mask=check_bool(f, "return_mask", p["return_mask"]))


def _check_poisson_noise(p: dict[str, Any], image_shape: ImageShape) -> dict[str, Any]:
  del image_shape
  return dict(peak=check_number("poisson_noise", "peak", p["peak"], lo=0.0, lo_open=True))


def _check_speckle_noise(p: dict[str, Any], image_shape: ImageShape) -> dict[str, Any]:
  del image_shape
  return dict(sigma=check_number("speckle_noise", "sigma", p["sigma"], lo=0.0))


def _check_low_light(p: dict[str, Any], image_shape: ImageShape) -> dict[str, Any]:
  del image_shape
  f = "low_light"
  return dict(brightness=check_number(f, "brightness", p["brightness"], lo=0.0, hi=1.0,
                                      lo_open=True),
              gamma=check_number(f, "gamma", p["gamma"], lo=0.0, lo_open=True))


def _check_grayscale(p: dict[str, Any], image_shape: ImageShape) -> dict[str, Any]:
  del image_shape
  return dict(keep_channels=check_bool("grayscale", "keep_channels", p["keep_channels"]))


# ---------------------------------------------------------------------------------------------
# Corruptions.


def gaussian_noise(key: jax.Array, images: jax.Array, *, sigma: Param,
                   clip: bool = True) -> jax.Array:
  """Additive white Gaussian noise, independent per pixel and channel.

  Args:
    sigma: standard deviation on the 0-255 scale (DnCNN convention: 25 means 25/255), or a
      range `(lo, hi)` drawn per image for blind denoising. 0 is the identity.
    clip: clip the result to [0, 1] (False keeps the exact Gaussian model, as in many papers).
  """
  check_images("gaussian_noise", images)
  p = _check_gaussian_noise(dict(sigma=sigma, clip=clip), None)

  def one(k: jax.Array, x: jax.Array) -> jax.Array:
    u_sigma, u_noise = uniforms(k, (), x.shape)  # one draw per image (see `uniforms`)
    s = from_unit(u_sigma, p["sigma"]) / 255.0
    y = x.astype(jnp.float32) + s * to_normal(u_noise)
    return jnp.clip(y, 0.0, 1.0) if p["clip"] else y

  return batched(one, key, images).astype(images.dtype)


def salt_and_pepper(key: jax.Array, images: jax.Array, *, amount: Param,
                    salt_ratio: Param = 0.5,
                    return_mask: bool = False) -> jax.Array | tuple[jax.Array, jax.Array]:
  """Impulse noise: a fraction `amount` of pixels (all channels together) becomes 1 or 0.

  Args:
    amount: expected fraction of corrupted pixels in [0, 1] (or a range, drawn per image).
    salt_ratio: probability that a corrupted pixel is salt (1) rather than pepper (0).
    return_mask: also return the float mask (N, H, W, 1), 1 where a pixel was replaced.
  """
  check_images("salt_and_pepper", images)
  p = _check_salt_and_pepper(dict(amount=amount, salt_ratio=salt_ratio,
                                  return_mask=return_mask), None)

  def one(k: jax.Array, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    h, w, _ = x.shape
    u_amount, u_ratio, u_where, u_salt = uniforms(k, (), (), (h, w, 1), (h, w, 1))
    hit = u_where < from_unit(u_amount, p["amount"])
    salt = u_salt < from_unit(u_ratio, p["salt_ratio"])
    y = jnp.where(hit, salt.astype(x.dtype), x)
    return y, hit.astype(x.dtype)

  out, mask = batched(one, key, images)
  return (out, mask) if p["return_mask"] else out


def poisson_noise(key: jax.Array, images: jax.Array, *, peak: Param) -> jax.Array:
  """Shot noise: out = Poisson(x * peak) / peak, clipped to [0, 1] (jax.random.poisson).

  Args:
    peak: expected photon count at intensity 1 (> 0; lower is noisier), or a range per image.
      The variance at intensity x is x / peak.
  Needs threefry keys (`jax.random.key`'s default), as jax.random.poisson does.
  """
  check_images("poisson_noise", images)
  p = _check_poisson_noise(dict(peak=peak), None)
  keys = per_image_keys(key, images.shape[0])
  if is_range(p["peak"]):
    keys, k_peak = jax.vmap(lambda k: tuple(jax.random.split(k)))(keys)
    pk = jax.vmap(lambda k: draw(k, p["peak"]))(k_peak)[:, None, None, None]
  else:
    pk = jnp.float32(p["peak"])
  lam = jnp.clip(images.astype(jnp.float32), 0.0, 1.0) * pk
  counts = jax.vmap(lambda k, l: jax.random.poisson(k, l, dtype=jnp.int32))(keys, lam)
  return jnp.clip(counts / pk, 0.0, 1.0).astype(images.dtype)


def speckle_noise(key: jax.Array, images: jax.Array, *, sigma: Param) -> jax.Array:
  """Multiplicative noise: out = x + x * n, n ~ N(0, sigma^2) per pixel and channel, clipped.

  Args:
    sigma: standard deviation of n on the 0-1 scale (>= 0), or a range drawn per image.
  """
  check_images("speckle_noise", images)
  p = _check_speckle_noise(dict(sigma=sigma), None)

  def one(k: jax.Array, x: jax.Array) -> jax.Array:
    u_sigma, u_noise = uniforms(k, (), x.shape)
    x = x.astype(jnp.float32)
    n = from_unit(u_sigma, p["sigma"]) * to_normal(u_noise)
    return jnp.clip(x + x * n, 0.0, 1.0)

  return batched(one, key, images).astype(images.dtype)


def low_light(key: jax.Array, images: jax.Array, *, brightness: Param,
              gamma: Param = 1.0) -> jax.Array:
  """Low-light capture: out = brightness * x ** gamma (no noise; chain `poisson_noise` after it).

  Args:
    brightness: exposure factor in (0, 1], or a range drawn per image.
    gamma: tone curve exponent (> 0; > 1 darkens shadows more), or a range drawn per image.
      brightness 1 with gamma 1 is the identity.
  """
  check_images("low_light", images)
  p = _check_low_light(dict(brightness=brightness, gamma=gamma), None)

  def one(k: jax.Array, x: jax.Array) -> jax.Array:
    u_b, u_g = uniforms(k, (), ()) if is_range(p["brightness"]) or is_range(p["gamma"]) else (
        0.0, 0.0)  # fixed parameters: deterministic, no random draw compiled
    x = jnp.clip(x.astype(jnp.float32), 0.0, 1.0)
    return jnp.clip(from_unit(u_b, p["brightness"]) * x ** from_unit(u_g, p["gamma"]), 0.0, 1.0)

  return batched(one, key, images).astype(images.dtype)


def grayscale(key: jax.Array, images: jax.Array, *, keep_channels: bool = True) -> jax.Array:
  """BT.601 luma (0.299 R + 0.587 G + 0.114 B). Deterministic: `key` is unused.

  Args:
    keep_channels: True returns the luma repeated over 3 channels, so the shape is unchanged.
      False returns (N, H, W, 1): the one exception to the same-shape rule.
  1-channel input is returned unchanged.
  """
  del key
  check_images("grayscale", images)
  p = _check_grayscale(dict(keep_channels=keep_channels), None)
  if images.shape[-1] == 1:
    return images
  # image_ops.luma is an elementwise weighted sum, not a dot: GPU dots may run in TF32.
  luma = image_ops.luma(images.astype(jnp.float32))
  if p["keep_channels"]:
    luma = jnp.broadcast_to(luma, images.shape)
  return luma.astype(images.dtype)


CHECKS = {
    "gaussian_noise": _check_gaussian_noise,
    "salt_and_pepper": _check_salt_and_pepper,
    "poisson_noise": _check_poisson_noise,
    "speckle_noise": _check_speckle_noise,
    "low_light": _check_low_light,
    "grayscale": _check_grayscale,
}
