"""Gaussian noise together with its noise-level map: what FFDNet is told about its input.

`gaussian_noise_map(key, images, *, sigma, clip, spatial, map_sigma, return_map)` adds
Gaussian noise whose standard deviation is a per-pixel map and can return that map
(N, H, W, 1, on the 0-1 scale: sigma / 255). Without `spatial` it draws exactly what
`gaussian_noise` draws from the same key (same sigma, same noise): the two are
interchangeable in a chain, and `chain(..., noise_map=True)` reports the map of either.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from restoration.corruptions._common import (ImageShape, Param, batched, check_bool,
                                             check_images, check_number, from_unit, to_normal,
                                             uniforms)

NAME = "gaussian_noise_map"
# The smooth field is a GRID x GRID lattice of uniform values, bilinearly upsampled: a few
# broad bumps per image, like the authors' spatially variant demo (a `peaks` surface).
GRID = 4


def check_params(p: dict[str, Any], image_shape: ImageShape) -> dict[str, Any]:
  del image_shape
  map_sigma = p["map_sigma"]
  return dict(sigma=check_number(NAME, "sigma", p["sigma"], lo=0.0),
              clip=check_bool(NAME, "clip", p["clip"]),
              spatial=check_bool(NAME, "spatial", p["spatial"]),
              map_sigma=None if map_sigma is None else check_number(
                  NAME, "map_sigma", map_sigma, lo=0.0, allow_range=False),
              return_map=check_bool(NAME, "return_map", p.get("return_map", False)))


def smooth_field(u: jax.Array, height: int, width: int) -> jax.Array:
  """A GRID x GRID lattice `u` upsampled to [height, width, 1], stretched to span [0, 1]."""
  field = jax.image.resize(u[..., None], (height, width, 1), "linear")
  lo, hi = jnp.min(field), jnp.max(field)
  return (field - lo) / jnp.maximum(hi - lo, 1e-6)


def gaussian_noise_map(key: jax.Array, images: jax.Array, *, sigma: Param, clip: bool = True,
                       spatial: bool = False, map_sigma: float | None = None,
                       return_map: bool = False) -> jax.Array | tuple[jax.Array, jax.Array]:
  """Additive Gaussian noise of a per-pixel level; optionally returns the level map.

  Args:
    sigma: standard deviation on the 0-255 scale, or a range `(lo, hi)` drawn per image.
    clip: clip the noisy result to [0, 1] (as gaussian_noise; False: the exact Gaussian
      model, the paper's).
    spatial: the level varies smoothly over the image: two values a, b drawn from `sigma`'s
      range per image, level = a + (b - a) * field, field a smooth random surface in [0, 1].
      False: one level per image, exactly `gaussian_noise`'s draws.
    map_sigma: the level the returned map claims (0-255, constant), instead of the true one:
      evaluates a denoiser told the wrong noise level. None: the true map.
    return_map: also return the map, float (N, H, W, 1) on the 0-1 scale.
  """
  check_images(NAME, images)
  p = check_params(dict(sigma=sigma, clip=clip, spatial=spatial, map_sigma=map_sigma,
                        return_map=return_map), None)

  def one(k: jax.Array, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    h, w, _ = x.shape
    if p["spatial"]:
      u_a, u_b, u_field, u_noise = uniforms(k, (), (), (GRID, GRID), x.shape)
      a, b = from_unit(u_a, p["sigma"]), from_unit(u_b, p["sigma"])
      level = a + (b - a) * smooth_field(u_field, h, w)
    else:  # the same single draw as gaussian_noise: (sigma, noise) from one key
      u_sigma, u_noise = uniforms(k, (), x.shape)
      level = jnp.broadcast_to(from_unit(u_sigma, p["sigma"]), (h, w, 1))
    level = level / 255.0
    y = x.astype(jnp.float32) + level * to_normal(u_noise)
    y = jnp.clip(y, 0.0, 1.0) if p["clip"] else y
    told = level if p["map_sigma"] is None else jnp.full((h, w, 1), p["map_sigma"] / 255.0)
    return y, told.astype(jnp.float32)

  out, level = batched(one, key, images)
  out = out.astype(images.dtype)
  return (out, level.astype(images.dtype)) if p["return_map"] else out


def as_map_step(name: str, params: dict[str, Any]) -> dict[str, Any]:
  """The `gaussian_noise_map` parameters of a checked chain step of either noise name."""
  if name == NAME:
    return dict(params)
  return dict(sigma=params["sigma"], clip=params["clip"], spatial=False, map_sigma=None)


CHECKS = {NAME: check_params}
