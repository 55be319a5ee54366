"""JPEG compression artefacts, simulated in JAX (baseline JPEG without entropy coding).

Per image: 8-bit levels -> (RGB only) full-range JFIF YCbCr, rounded to 8 bits -> level shift
by -128 -> pad to a multiple of 8 by edge replication -> orthonormal 8x8 DCT-II per block (what
JPEG uses) -> quantise with the standard Annex K luminance (Y, and gray images) / chrominance
(Cb, Cr) tables scaled by the IJG quality formula -> dequantise -> inverse DCT -> crop -> 8-bit
YCbCr -> RGB -> clip and round to 8-bit levels like a decoder. Chroma is kept at full resolution
(4:4:4, no subsampling), so the colour bleeding of 4:2:0 files is not reproduced; blocking and
ringing are. Against Pillow/libjpeg at the same quality with 4:4:4 the PSNR loss agrees within
about 0.5 dB and the pixels agree to > 33 dB (libjpeg's integer DCT differs slightly).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from restoration import image_ops
from restoration.corruptions._common import (PRECISION, ImageShape, batched, check_images,
                                             check_number, to_int)

# ITU-T T.81 Annex K tables (quality 50).
LUMA_TABLE = np.array([
    [16, 11, 10, 16, 24, 40, 51, 61],
    [12, 12, 14, 19, 26, 58, 60, 55],
    [14, 13, 16, 24, 40, 57, 69, 56],
    [14, 17, 22, 29, 51, 87, 80, 62],
    [18, 22, 37, 56, 68, 109, 103, 77],
    [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101],
    [72, 92, 95, 98, 112, 100, 103, 99]], np.float32)
CHROMA_TABLE = np.full((8, 8), 99, np.float32)
CHROMA_TABLE[:4, :4] = [[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99]]


def dct_matrix(n: int = 8) -> np.ndarray:
  """Orthonormal DCT-II matrix D (rows are frequencies): coefficients = D @ block @ D.T."""
  k, i = np.arange(n)[:, None], np.arange(n)[None, :]
  d = np.cos((2 * i + 1) * k * math.pi / (2 * n)) * math.sqrt(2.0 / n)
  d[0] /= math.sqrt(2.0)
  return d.astype(np.float32)


def quality_table(base: jax.Array | np.ndarray, quality: jax.Array | float) -> jax.Array:
  """IJG (libjpeg) quality scaling of a base table, entries clipped to baseline's [1, 255]."""
  q = jnp.clip(jnp.asarray(quality, jnp.float32), 1.0, 100.0)
  scale = jnp.where(q < 50, 5000.0 / q, 200.0 - 2.0 * q)
  return jnp.clip(jnp.floor((jnp.asarray(base) * scale + 50.0) / 100.0), 1.0, 255.0)


def _check_jpeg(p: dict[str, Any], image_shape: ImageShape) -> dict[str, Any]:
  del image_shape
  return dict(quality=check_number("jpeg", "quality", p["quality"], lo=1, hi=100, integer=True))


def _rgb_to_ycbcr(x: jax.Array) -> jax.Array:
  r, g, b = x[..., 0], x[..., 1], x[..., 2]
  y = image_ops.luma(x)[..., 0]
  cb = -0.168736 * r - 0.331264 * g + 0.5 * b + 128.0
  cr = 0.5 * r - 0.418688 * g - 0.081312 * b + 128.0
  return jnp.stack([y, cb, cr], axis=-1)


def _ycbcr_to_rgb(x: jax.Array) -> jax.Array:
  y, cb, cr = x[..., 0], x[..., 1] - 128.0, x[..., 2] - 128.0
  r = y + 1.402 * cr
  g = y - 0.344136 * cb - 0.714136 * cr
  b = y + 1.772 * cb
  return jnp.stack([r, g, b], axis=-1)


def _compress(x: jax.Array, tables: jax.Array) -> jax.Array:
  """x: (H, W, C) level-shifted samples; tables: (C, 8, 8). Returns the decoded samples."""
  h, w, c = x.shape
  hp, wp = -(-h // 8) * 8, -(-w // 8) * 8
  x = jnp.pad(x, ((0, hp - h), (0, wp - w), (0, 0)), mode="edge")
  blocks = x.reshape(hp // 8, 8, wp // 8, 8, c)  # (a, i, b, j, c)
  d = jnp.asarray(dct_matrix())
  coef = jnp.einsum("ui,aibjc,vj->aubvc", d, blocks, d, precision=PRECISION)
  t = tables.transpose(1, 2, 0)[None, :, None]  # (1, u, 1, v, c)
  coef = jnp.round(coef / t) * t
  blocks = jnp.einsum("ui,aubvc,vj->aibjc", d, coef, d, precision=PRECISION)
  return blocks.reshape(hp, wp, c)[:h, :w]


def jpeg(key: jax.Array, images: jax.Array, *, quality: int | tuple[int, int]) -> jax.Array:
  """JPEG artefacts at IJG `quality` 1..100, or an integer range drawn per image (inclusive).

  Quality 100 (all-ones tables) is close to the identity (only rounding: ~50 dB PSNR);
  lower quality gives stronger 8x8 blocking and ringing. A fixed quality ignores `key`.
  """
  check_images("jpeg", images)
  p = _check_jpeg(dict(quality=quality), None)
  rgb = images.shape[-1] == 3
  bases = jnp.asarray(np.stack([LUMA_TABLE, CHROMA_TABLE, CHROMA_TABLE]) if rgb
                      else LUMA_TABLE[None])

  def one(k: jax.Array, x: jax.Array) -> jax.Array:
    q = p["quality"]
    if isinstance(q, tuple):
      q = to_int(jax.random.uniform(k), q[0], q[1])
    # 8-bit samples at every stage, as in libjpeg: uint8 input, uint8 YCbCr planes in and out
    # of the DCT codec, uint8 RGB output. (This rounding is what keeps quality 100 at ~50 dB.)
    to_uint8 = lambda v: jnp.round(jnp.clip(v, 0.0, 255.0))
    x = to_uint8(x.astype(jnp.float32) * 255.0)
    if rgb:
      x = to_uint8(_rgb_to_ycbcr(x))
    x = to_uint8(_compress(x - 128.0, quality_table(bases, q)) + 128.0)
    if rgb:
      x = to_uint8(_ycbcr_to_rgb(x))
    return x / 255.0

  return batched(one, key, images).astype(images.dtype)


CHECKS = {"jpeg": _check_jpeg}
