"""The CIFAR-10 block-inpainting study's corruption, reproduced exactly in distribution.

The study (a Keras notebook this project grew from) corrupted each 32x32 image, once, with

    for _ in range(max_no_blocks):
      xc, yc = np.random.randint(1, 31), np.random.randint(1, 31)   # 1..30, upper exclusive
      img[xc - 3 // 2:xc + 3 // 2, yc - 3 // 2:yc + 3 // 2, :] = 0

Its `block_size=3` is misleading: the slice `xc - 1:xc + 1` is 2 pixels wide, so each block is
2x2, covering rows xc-1..xc and columns yc-1..yc, zero in every channel, overlaps allowed.
Centres 1..30 mean rows/columns 0..30 can be hit and row/column 31 NEVER is; rows 0 and 30 are
hit half as often as rows 1..29 (one centre covers them, not two).

`random_blocks(block_size=2)` differs: its corners are uniform over 0..30, so it does reach row
31. Hence a corruption of its own rather than a parameter of random_blocks' corner law.

On other image sizes the centres are uniform over 1..H-2 (rows) and 1..W-2 (columns): the same
rule, for 32x32 exactly the study's `randint(1, 31)`.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from restoration.corruptions._common import (PRECISION, ImageShape, batched, check_bool,
                                             check_images, check_number, per_image_keys,
                                             to_int, uniforms)

BLOCK = 2  # the side the study's slice really cuts (see the module docstring)


def _check_study_blocks(p: dict[str, Any], image_shape: ImageShape) -> dict[str, Any]:
  f = "study_blocks"
  num_blocks = check_number(f, "num_blocks", p["num_blocks"], lo=0, integer=True,
                            allow_range=False)
  if image_shape is not None and min(image_shape) < 3:
    raise ValueError(f"{f}: images must be at least 3x3 (block centres lie in 1..H-2), got "
                     f"{image_shape[0]}x{image_shape[1]}")
  return dict(num_blocks=num_blocks, return_mask=check_bool(f, "return_mask", p["return_mask"]))


def _centres(key: jax.Array, nb: int, h: int, w: int) -> jax.Array:
  """(nb, 2) int32 (row, column) centres of one image, uniform over [1, H-2] x [1, W-2]."""
  u_row, u_col = uniforms(key, (nb,), (nb,))
  return jnp.stack([to_int(u_row, 1, h - 2), to_int(u_col, 1, w - 2)], axis=-1)


def study_block_centres(key: jax.Array, images_shape: tuple[int, ...], *, num_blocks: int
                        ) -> jax.Array:
  """The (N, num_blocks, 2) block centres `study_blocks(key, images, ...)` draws: for tests
  and for comparing with the study's loop (block b of image i covers rows c-1..c, columns
  d-1..d, (c, d) = centres[i, b])."""
  n, h, w = images_shape[:3]
  keys = per_image_keys(key, n)
  return jax.vmap(lambda k: _centres(k, int(num_blocks), h, w))(keys)


def study_blocks(key: jax.Array, images: jax.Array, *, num_blocks: int,
                 return_mask: bool = False) -> jax.Array | tuple[jax.Array, jax.Array]:
  """Zeroes `num_blocks` 2x2 blocks per image, placed as the study's loop placed them.

  Args:
    num_blocks: blocks per image (static: Python int >= 0); the study used 10, 50 and 100.
    return_mask: also return the float mask (N, H, W, 1), 1 where a block zeroed the pixel.

  Each image draws its centres from `jax.random.split(key, N)[i]` (or key[i] for N keys), as
  every corruption does; `study_block_centres` returns them. To draw them once per image as
  the study did, key them by the image (config.corruption_fixed_per_image).
  """
  _, h, w, _ = check_images("study_blocks", images)
  p = _check_study_blocks(dict(num_blocks=num_blocks, return_mask=return_mask), (h, w))
  nb = p["num_blocks"]

  def one(k: jax.Array, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    c = _centres(k, nb, h, w)
    top, left = c[:, 0] - 1, c[:, 1] - 1
    rows, cols = jnp.arange(h), jnp.arange(w)
    in_y = ((rows >= top[:, None]) & (rows < (top + BLOCK)[:, None])).astype(jnp.float32)
    in_x = ((cols >= left[:, None]) & (cols < (left + BLOCK)[:, None])).astype(jnp.float32)
    # (H x nb) @ (nb x W) counts the blocks over each pixel without an (H, W) plane per block.
    mask = (jnp.dot(in_y.T, in_x, precision=PRECISION) > 0.5)[..., None]
    return jnp.where(mask, jnp.zeros((), x.dtype), x), mask.astype(x.dtype)

  out, mask = batched(one, key, images)
  return (out, mask) if p["return_mask"] else out


CHECKS = {"study_blocks": _check_study_blocks}
