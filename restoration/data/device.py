"""Device-resident training data (`config.data.on_device=True`).

A training set that fits in accelerator memory is decoded once on the host
(`load_device_data`), zero-padded to one [N, Hmax, Wmax, C] uint8 array plus the valid extent
of every image, and uploaded once by the trainer. Each step then draws its patches inside the
jitted step with `sample_patches(key, images, sizes, ...)`: images uniformly at random (with
replacement), a crop uniformly inside the valid extent (`lax.dynamic_slice`, so nothing of the
zero padding is ever returned) and, with `augment`, one of the 8 dihedral transforms (square
patches, so every transform keeps the shape). The host does nothing per step.

Images smaller than the patch raise the same error as the grain pipeline, or are reflect-padded
on the host before upload with `data.pad_small`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from restoration import image_ops
from restoration.data import pipeline


class DeviceData(NamedTuple):
  images: jax.Array | np.ndarray   # uint8 [N, Hmax, Wmax, C], zero-padded
  sizes: np.ndarray                # int32 [N, 2]: (h, w) valid extent of each image


def stack_padded(images, names=None, *, patch_size: int = 0, pad_small: bool = False,
                 spec: str = "") -> DeviceData:
  """Stacks HWC uint8 images into a zero-padded DeviceData (checking / padding small ones)."""
  out = []
  for i, image in enumerate(images):
    h, w = image.shape[:2]
    if patch_size and (h < patch_size or w < patch_size):
      if not pad_small:
        name = names[i] if names is not None else f"#{i}"
        raise pipeline.too_small_error(spec, name, (h, w), patch_size)
      image = pipeline.pad_to_min(image, patch_size)
    out.append(image)
  if not out:
    raise ValueError(f"data spec {spec!r}: no images")
  hmax = max(a.shape[0] for a in out)
  wmax = max(a.shape[1] for a in out)
  c = out[0].shape[2]
  stacked = np.zeros((len(out), hmax, wmax, c), np.uint8)
  sizes = np.zeros((len(out), 2), np.int32)
  for i, a in enumerate(out):
    stacked[i, :a.shape[0], :a.shape[1]] = a
    sizes[i] = a.shape[:2]
  return DeviceData(stacked, sizes)


def load_device_data(config, source=None) -> DeviceData:
  """Decodes the whole training set (config.data.train, or the opened `source`) for upload."""
  if source is None:
    source = pipeline.open_train_source(config)
    pipeline.check_min_size(source, config.patch_size, config.data.pad_small)
  names = [source.name(i) for i in range(len(source))]
  return stack_padded((source[i] for i in range(len(source))), names,
                      patch_size=config.patch_size, pad_small=config.data.pad_small,
                      spec=source.spec)


def sample_patches(key: jax.Array, images: jax.Array, sizes: jax.Array, *, batch_size: int,
                   patch_size: int, augment: bool) -> jax.Array:
  """uint8 [batch_size, P, P, C] random crops (+ dihedral transforms) of device images.

  Pure and jittable (batch_size, patch_size, augment are static). Every image must have a valid
  extent of at least patch_size (load_device_data guarantees it).
  """
  images = jnp.asarray(images)
  sizes = jnp.asarray(sizes, jnp.int32)
  n, _, _, c = images.shape
  p = int(patch_size)
  k_img, k_y, k_x, k_t = jax.random.split(key, 4)
  idx = jax.random.randint(k_img, (batch_size,), 0, n)
  hw = sizes[idx]
  y = jax.random.randint(k_y, (batch_size,), 0, hw[:, 0] - p + 1)
  x = jax.random.randint(k_x, (batch_size,), 0, hw[:, 1] - p + 1)

  def crop(i, yy, xx):
    zero = jnp.zeros((), jnp.int32)
    return jax.lax.dynamic_slice(images, (i, yy, xx, zero), (1, p, p, c))[0]

  patches = jax.vmap(crop)(idx.astype(jnp.int32), y.astype(jnp.int32), x.astype(jnp.int32))
  if augment:
    t = jax.random.randint(k_t, (batch_size,), 0, 8)
    patches = jax.vmap(image_ops.dihedral)(patches, t)
  return patches


__all__ = ["DeviceData", "load_device_data", "sample_patches", "stack_padded"]
