"""The registry and `chain`: config specs -> one `(key, images) -> (corrupted, mask)` function."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

# Names imported explicitly: the package re-exports functions named like its modules (blur, jpeg).
from restoration.corruptions._common import ImageShape, as_key
from restoration.corruptions.blocks import CHECKS as _BLOCK_CHECKS
from restoration.corruptions.blocks import random_blocks
from restoration.corruptions.blur import CHECKS as _BLUR_CHECKS
from restoration.corruptions.blur import blur, gaussian_blur, motion_blur
from restoration.corruptions.jpeg import CHECKS as _JPEG_CHECKS
from restoration.corruptions.jpeg import jpeg
from restoration.corruptions.noise import CHECKS as _NOISE_CHECKS
from restoration.corruptions import noise_map as _noise_map
from restoration.corruptions.noise import (gaussian_noise, grayscale, low_light, poisson_noise,
                                           salt_and_pepper, speckle_noise)
from restoration.corruptions.study_blocks import CHECKS as _STUDY_CHECKS
from restoration.corruptions.study_blocks import study_blocks

CORRUPTIONS: dict[str, Callable[..., Any]] = {
    "random_blocks": random_blocks,
    "study_blocks": study_blocks,
    "gaussian_noise": gaussian_noise,
    "salt_and_pepper": salt_and_pepper,
    "poisson_noise": poisson_noise,
    "speckle_noise": speckle_noise,
    "low_light": low_light,
    "blur": blur,
    "gaussian_blur": gaussian_blur,
    "motion_blur": motion_blur,
    "grayscale": grayscale,
    "jpeg": jpeg,
    _noise_map.NAME: _noise_map.gaussian_noise_map,
}
_CHECKS = {**_BLOCK_CHECKS, **_STUDY_CHECKS, **_NOISE_CHECKS, **_BLUR_CHECKS, **_JPEG_CHECKS,
           **_noise_map.CHECKS}
assert set(_CHECKS) == set(CORRUPTIONS)

# Steps whose destroyed pixels `chain` reports in its mask (it sets return_mask=True on them).
MASKING = ("random_blocks", "study_blocks", "salt_and_pepper")
# Steps whose noise-level map `chain(..., noise_map=True)` reports (at most one per chain).
NOISE_LEVEL = ("gaussian_noise", _noise_map.NAME)

Spec = Mapping[str, Any]
Chain = Callable[[jax.Array, jax.Array], tuple[jax.Array, jax.Array]]


def _keyword_params(fn: Callable[..., Any]) -> dict[str, Any]:
  """name -> default (inspect.Parameter.empty when required) of fn's keyword-only params."""
  return {n: p.default for n, p in inspect.signature(fn).parameters.items()
          if p.kind is inspect.Parameter.KEYWORD_ONLY}


def _check_image_shape(image_shape: Any) -> ImageShape:
  if image_shape is None:
    return None
  if (not isinstance(image_shape, (list, tuple)) or len(image_shape) != 2
      or not all(isinstance(v, (int, np.integer)) and v > 0 for v in image_shape)):
    raise ValueError(f"chain: parameter 'image_shape' must be None or (H, W) positive ints, "
                     f"got {image_shape!r}")
  return int(image_shape[0]), int(image_shape[1])


def validate(specs: Sequence[Spec], image_shape: tuple[int, int] | None = None
             ) -> list[tuple[str, dict[str, Any]]]:
  """Checks a list of `{'name': ..., **params}` specs without building or compiling anything.

  Raises ValueError naming the function, the parameter and the allowed values for unknown
  names, unknown/missing parameters and invalid values. `image_shape` (H, W), when known,
  also checks sizes against the image (e.g. random_blocks' block_size). Lists are accepted
  wherever tuples are (JSON / ml_collections). Returns the normalised (name, params) steps.
  """
  if isinstance(specs, (str, Mapping)) or not isinstance(specs, Sequence):
    raise ValueError(f"chain: parameter 'specs' must be a list of {{'name': ..., **params}} "
                     f"dicts, got {specs!r}")
  image_shape = _check_image_shape(image_shape)
  steps = []
  for position, spec in enumerate(specs):
    if hasattr(spec, "to_dict"):  # ml_collections.ConfigDict
      spec = spec.to_dict()
    if not isinstance(spec, Mapping) or "name" not in spec:
      raise ValueError(f"chain: spec {position} must be a dict with a 'name' key, got {spec!r}")
    params = dict(spec)
    name = params.pop("name")
    if name not in CORRUPTIONS:
      raise ValueError(f"chain: unknown corruption name {name!r} (spec {position}); "
                       f"valid names: {sorted(CORRUPTIONS)}")
    allowed = _keyword_params(CORRUPTIONS[name])
    for flag in ("return_mask", "return_map"):
      if flag in params:
        raise ValueError(f"{name}: parameter {flag!r} is set by chain, which returns the "
                         f"mask (and the noise map when asked); remove it from the spec")
      allowed.pop(flag, None)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
      raise ValueError(f"{name}: unknown parameter(s) {unknown}; allowed parameters: "
                       f"{sorted(allowed)}")
    missing = sorted(n for n, d in allowed.items()
                     if d is inspect.Parameter.empty and n not in params)
    if missing:
      raise ValueError(f"{name}: missing required parameter(s) {missing}; allowed "
                       f"parameters: {sorted(allowed)}")
    full = {**allowed, **params}
    if name in MASKING:
      full["return_mask"] = True
    checked = _CHECKS[name](full, image_shape)
    checked.pop("return_mask", None)
    checked.pop("return_map", None)
    steps.append((name, checked))
  return steps


def chain(specs: Sequence[Spec], image_shape: tuple[int, int] | None = None, *,
          noise_map: bool = False) -> Chain:
  """Builds `(key, images) -> (corrupted, mask)` applying the specs in order.

  noise_map=True: `(key, images) -> (corrupted, mask, level)`, level (N, H, W, 1) the map of
  the chain's one gaussian_noise / gaussian_noise_map step (0-1 scale, what FFDNet is fed; its
  `map_sigma` when set), zeros without one; the corrupted images are the same as without it.
  ValueError when the chain has more than one such step. The returned function's `specs`
  attribute holds `specs`, so a chain can be rebuilt with the map (`with_noise_map`).

  All checks (see `validate`) run here, before anything is traced. The mask is float
  (N, H, W, 1) in the images' dtype: 1 where a step destroyed content (random_blocks,
  study_blocks and salt_and_pepper; the max over those steps), 0 elsewhere, all zeros without
  such steps.

  Keys: step s gets `jax.random.fold_in(key, s)` and splits it per image like a direct call,
  so image i in step s uses `jax.random.split(jax.random.fold_in(key, s), N)[i]`. `key` may
  also be N per-image keys: then image i in step s uses `jax.random.fold_in(key[i], s)`, and a
  loop `chain_fn(keys[i:i + 1], images[i:i + 1])` reproduces the batch call.
  """
  steps = validate(specs, image_shape)
  if noise_map and sum(name in NOISE_LEVEL for name, _ in steps) > 1:
    raise ValueError(f"chain: a noise-level map needs at most one of {NOISE_LEVEL} steps, "
                     f"got {[name for name, _ in steps]}")

  def apply(key: jax.Array, images: jax.Array) -> tuple[jax.Array, ...]:
    key = as_key(key)
    mask = jnp.zeros(images.shape[:3] + (1,), images.dtype)
    level = mask
    for s, (name, params) in enumerate(steps):
      if key.ndim == 0:
        step_key = jax.random.fold_in(key, s)
      else:
        step_key = jax.vmap(jax.random.fold_in, in_axes=(0, None))(key, s)
      if name in MASKING:
        images, step_mask = CORRUPTIONS[name](step_key, images, **params, return_mask=True)
        mask = jnp.maximum(mask, step_mask.astype(mask.dtype))
      elif noise_map and name in NOISE_LEVEL:
        images, level = _noise_map.gaussian_noise_map(
            step_key, images, **_noise_map.as_map_step(name, params), return_map=True)
      else:
        images = CORRUPTIONS[name](step_key, images, **params)
    return (images, mask, level) if noise_map else (images, mask)

  apply.specs = list(specs)
  apply.image_shape = image_shape
  return apply


def with_noise_map(corrupt: Chain) -> Chain:
  """The same chain as `corrupt` (built by `chain`), also returning the noise-level map."""
  return chain(corrupt.specs, corrupt.image_shape, noise_map=True)


def per_example(corrupt: Chain, key: jax.Array, images: jax.Array,
                index: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Applies a `chain` to each image with its own key, fold_in(key, index[i]).

  Image i's corruption then depends only on (key, index[i]), not on the batch it sits in or
  on how a global batch is split over devices and hosts: the trainer passes global example
  indices, the evaluator dataset indices.
  """
  keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(index)
  return jax.vmap(lambda k, x: jax.tree.map(lambda a: a[0], corrupt(k, x[None])))(keys, images)
