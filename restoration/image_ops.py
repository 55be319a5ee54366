"""Array helpers every part of the codebase shares: padding, dihedral transforms, luma, channels.

One helper per idea, on NumPy and JAX arrays alike (the result has the input's kind):
  pad_to_shape / pad_to_multiple / crop   spatial padding (reflect, with fallbacks) and its undo
  dihedral / dihedral_inverse             the 8 flips and 90-degree rotations
  luma / to_channels / to_uint8           BT.601 gray, gray <-> RGB, 16 -> 8 bit

Spatial axes are always (-3, -2), so HWC and NHWC both work. This module imports nothing from
`restoration`.

Why not dm-pix: `pix.rgb_to_grayscale(luma_standard='rec601')` uses TensorFlow's 0.2989 for R,
not BT.601's 0.299, so it would change every gray image by up to 0.03 levels (and the uint8
rounding of the data sources); `pix.rot90` / `pix.flip_*` take no traced transform index.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

# ITU-R BT.601 luma weights (R, G, B).
LUMA_BT601 = (0.299, 0.587, 0.114)


def _xp(x):
  return jnp if isinstance(x, jax.Array) else np


def round_up(n: int, m: int) -> int:
  m = max(int(m), 1)
  return -(-int(n) // m) * m


# ------------------------------------------------------------------------------------ padding

def _pad_mode(size: int, pad: int, mode: str) -> str:
  """Reflect needs pad < size; fall back to symmetric (pad <= size), then edge."""
  if mode != "reflect" or pad == 0 or pad < size:
    return mode
  return "symmetric" if pad <= size else "edge"


def pad_to_shape(images, hw: tuple[int, int], mode: str = "reflect", *, centre: bool = False):
  """Pads the spatial axes (-3, -2) of HWC / NHWC `images` up to `hw`.

  Bottom/right by default (undo with `crop`); `centre=True` splits the padding evenly (the
  data pipeline's small-image padding). `mode` is a NumPy pad mode; 'reflect' falls back per
  axis to 'symmetric' when the pad equals the side and to 'edge' when it is longer.
  """
  if images.ndim < 3:
    raise ValueError(f"expected HWC or NHWC images, got shape {tuple(images.shape)}")
  h, w = int(images.shape[-3]), int(images.shape[-2])
  target_h, target_w = int(hw[0]), int(hw[1])
  if target_h < h or target_w < w:
    raise ValueError(f"cannot pad {(h, w)} down to {(target_h, target_w)}")
  xp = _xp(images)
  out = images
  for axis, size, pad in ((-3, h, target_h - h), (-2, w, target_w - w)):
    if pad == 0:
      continue
    widths = [(0, 0)] * images.ndim
    widths[images.ndim + axis] = (pad // 2, pad - pad // 2) if centre else (0, pad)
    # Centred: each side pads at most ceil(pad / 2), which decides the fallback.
    out = xp.pad(out, widths, mode=_pad_mode(size, pad - pad // 2 if centre else pad, mode))
  return out


def pad_to_multiple(images, multiple: int, mode: str = "reflect"):
  """Pads bottom/right so H and W are multiples of `multiple`; returns (padded, (h, w))."""
  h, w = int(images.shape[-3]), int(images.shape[-2])
  return pad_to_shape(images, (round_up(h, multiple), round_up(w, multiple)), mode), (h, w)


def crop(images, hw: tuple[int, int]):
  """Undoes bottom/right padding: the top-left `hw` of the spatial axes."""
  return images[..., :int(hw[0]), :int(hw[1]), :]


def bucket_shape(h: int, w: int, *, multiple: int, bucket: int | None = None) -> tuple[int, int]:
  """(H, W) rounded up to multiples of `multiple`, or of lcm(multiple, bucket) with a bucket.

  Images in one bucket share a shape, so a jitted model compiles once per bucket.
  """
  step = max(int(multiple), 1)
  if bucket:
    step = math.lcm(step, int(bucket))
  return round_up(h, step), round_up(w, step)


# ----------------------------------------------------------------------------------- dihedral

def _dihedral_static(x, t: int):
  xp = _xp(x)
  out = xp.rot90(x, t % 4, axes=(-3, -2))
  return xp.flip(out, axis=-3) if t >= 4 else out


def dihedral(x, t):
  """Transform t (0..7) of the dihedral group: rot90 by t % 4, then flip rows if t >= 4.

  `t` may be a Python int (NumPy or JAX arrays) or a traced JAX integer (one image, HWC).
  A NumPy result is C-contiguous; multi-channel uint8 pixels move as single void items, which
  copies rotated patches ~1.5x faster than NumPy's strided copy (the host data pipeline's case).
  """
  if isinstance(t, jax.Array):
    branches = [lambda v, k=k: jnp.rot90(v, k, axes=(-3, -2)) for k in range(4)]
    out = jax.lax.switch(t % 4, branches, x)
    return jnp.where(t >= 4, jnp.flip(out, axis=-3), out)
  t = int(t)
  if isinstance(x, jax.Array):
    return _dihedral_static(x, t)
  c = x.shape[-1]
  if x.ndim == 3 and c > 1 and t % 4 and x.dtype == np.uint8 and x.strides[-1] == 1:
    items = np.ascontiguousarray(x).view(np.dtype((np.void, c)))[..., 0]
    out = np.rot90(items, t % 4)
    out = np.ascontiguousarray(out[::-1] if t >= 4 else out)
    return out.view(np.uint8).reshape(out.shape + (c,))
  return np.ascontiguousarray(_dihedral_static(x, t))


def dihedral_inverse(y, t: int):
  """The inverse of `dihedral(., t)` for a static t."""
  xp = _xp(y)
  t = int(t)
  if t >= 4:
    y = xp.flip(y, axis=-3)
  return xp.rot90(y, -(t % 4), axes=(-3, -2))


# ------------------------------------------------------------------------------------ colour

def luma(x):
  """BT.601 luma of RGB [..., 3] as [..., 1].

  Float input: 0.299 R + 0.587 G + 0.114 B in its dtype. uint8 input: the same rounded half up
  in integer arithmetic, (299 R + 587 G + 114 B + 500) // 1000, so decoded data is exact.
  """
  xp = _xp(x)
  if x.dtype == np.uint8:
    a = x.astype(xp.int32)
    y = (299 * a[..., 0:1] + 587 * a[..., 1:2] + 114 * a[..., 2:3] + 500) // 1000
    return y.astype(xp.uint8)
  r, g, b = LUMA_BT601
  return (x[..., 0:1] * r + x[..., 1:2] * g + x[..., 2:3] * b).astype(x.dtype)


def to_channels(x, channels: int):
  """Converts the last axis between gray (1) and RGB (3): luma, or the channel repeated."""
  have = int(x.shape[-1])
  if have == channels:
    return x
  if have == 1 and channels == 3:
    return _xp(x).repeat(x, 3, axis=-1)
  if have == 3 and channels == 1:
    return luma(x)
  raise ValueError(f"can only convert between 1 and 3 channels, got {have} -> {channels}")


def to_uint8(a: np.ndarray, bit_depth: int = 8) -> np.ndarray:
  """Integer pixels of `bit_depth` bits as uint8: 16-bit by round(v / 257) (65535 -> 255)."""
  if bit_depth == 8:
    return np.asarray(a, np.uint8)
  a = np.clip(np.asarray(a).astype(np.int64), 0, 65535)
  return ((a + 128) // 257).astype(np.uint8)
