"""Shared plumbing for the corruptions: keys, parameter checks, per-image draws, convolution.

Parameter checks run in Python on concrete values, at trace time when a corruption is called
directly and at build time inside `chain`/`validate`, so a bad config fails before anything is
compiled. Every check raises `ValueError('<function>: parameter <name> must be <allowed>, got
<value>')`, so a message names the function, the parameter and the allowed values.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np

# A scalar parameter, or a `(lo, hi)` range drawn uniformly per image.
Param = float | tuple[float, float]
# Image height and width, known when a chain is built for a fixed crop size.
ImageShape = tuple[int, int] | None

# Matmuls (JPEG DCT, block masks) run at full float32 precision: on GPUs the default may be TF32,
# whose ~1e-3 relative error would show up as artefacts in blur identities and JPEG quality 100.
PRECISION = jax.lax.Precision.HIGHEST


# ---------------------------------------------------------------------------------------------
# Keys and images.


def as_key(key: jax.Array) -> jax.Array:
  """New-style typed key(s); legacy raw uint32 keys (shape (..., 2)) are wrapped."""
  key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
  if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
    return key
  if key.dtype == jnp.uint32 and key.ndim >= 1 and key.shape[-1] == 2:
    return jax.random.wrap_key_data(key)
  raise ValueError(
      "key must be a jax.random.key (or a legacy uint32 PRNGKey), "
      f"got dtype {key.dtype} shape {key.shape}")


def per_image_keys(key: jax.Array, n: int) -> jax.Array:
  """The N per-image keys used by every corruption.

  A single key is split with `jax.random.split(key, n)`: image i of the batch uses
  `jax.random.split(key, n)[i]`. An array of n keys is used as is (one per image), which is how a
  loop over single images reproduces a batch call: `fn(keys[i:i + 1], images[i:i + 1])`.
  """
  key = as_key(key)
  if key.ndim == 0:
    return jax.random.split(key, n)
  if key.shape == (n,):
    return key
  raise ValueError(f"key must be a single key or {n} per-image keys, got key shape {key.shape}")


def check_images(fn: str, images: jax.Array) -> tuple[int, int, int, int]:
  """Asserts the data contract (float NHWC, 1 or 3 channels); returns the static shape."""
  chex.assert_rank(images, 4)
  chex.assert_type(images, float)
  if images.shape[-1] not in (1, 3):
    raise ValueError(f"{fn}: images must have 1 or 3 channels (NHWC), got shape {images.shape}")
  return tuple(images.shape)  # type: ignore[return-value]


def batched(fn: Callable[..., Any], key: jax.Array, images: jax.Array, *args: Any) -> Any:
  """vmaps a per-image function `fn(key_i, image_i, *args)` over the batch with per-image keys."""
  keys = per_image_keys(key, images.shape[0])
  return jax.vmap(fn, in_axes=(0, 0) + (None,) * len(args))(keys, images, *args)


def uniforms(key: jax.Array, *shapes: tuple[int, ...]) -> list[jax.Array]:
  """Uniform [0, 1) float32 arrays of the given shapes from ONE draw of `key`.

  Every jax.random call inlines its own copy of the threefry hash, and each copy costs ~0.2-3 s
  of XLA compile time on CPU, growing with the rank of the drawn shape; one flat draw sliced
  into pieces keeps compile times low.
  """
  sizes = [math.prod(s) for s in shapes]
  flat = jax.random.uniform(key, (sum(sizes),), jnp.float32)
  out, start = [], 0
  for shape, size in zip(shapes, sizes):
    out.append(flat[start:start + size].reshape(shape))
    start += size
  return out


def is_range(value: Any) -> bool:
  return isinstance(value, tuple)


def from_unit(u: jax.Array, value: Param | jax.Array) -> jax.Array:
  """Maps u ~ U[0, 1) to a parameter: the value itself, or uniform in [lo, hi) for a range."""
  if is_range(value):
    lo, hi = value
    return lo + (hi - lo) * u
  return jnp.asarray(value, jnp.float32)


def draw(key: jax.Array, value: Param | jax.Array) -> jax.Array:
  """One float32 draw: the value itself (no randomness used), or uniform in [lo, hi)."""
  if is_range(value):
    return from_unit(jax.random.uniform(key, (), jnp.float32), value)
  return jnp.asarray(value, jnp.float32)


def to_int(u: jax.Array, lo: int, hi: int) -> jax.Array:
  """Maps u ~ U[0, 1) to an integer uniform in [lo, hi] (inclusive), int32."""
  return jnp.minimum(lo + jnp.floor(u * (hi - lo + 1)), hi).astype(jnp.int32)


def to_normal(u: jax.Array) -> jax.Array:
  """Maps u ~ U[0, 1) to N(0, 1) by the inverse CDF (what jax.random.normal does)."""
  lo = np.nextafter(np.float32(-1.0), np.float32(0.0))
  return np.sqrt(2.0).astype(np.float32) * jax.lax.erf_inv(jnp.clip(2.0 * u - 1.0, lo, -lo))


def param_max(value: Param) -> float:
  """Largest value a parameter can take (sizes static kernels for ranges)."""
  return float(value[1]) if isinstance(value, tuple) else float(value)


# ---------------------------------------------------------------------------------------------
# Parameter checks.


def _fmt_interval(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
  left = "(" if lo_open or lo is None else "["
  right = ")" if hi_open or hi is None else "]"
  return f"{left}{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}{right}"


def _is_traced(value: Any) -> bool:
  # A traced array (e.g. a scheduled sigma passed inside jit) cannot be checked in Python.
  return isinstance(value, jax.core.Tracer)


def check_number(fn: str, name: str, value: Any, *, lo: float | None = None,
                 hi: float | None = None, lo_open: bool = False, hi_open: bool = False,
                 integer: bool = False, allow_range: bool = True) -> Any:
  """Checks a number, or a `(lo, hi)` range (list or tuple) of numbers, against an interval.

  Returns a Python float/int, or a tuple for ranges (lists from JSON/ml_collections become
  tuples, so ranges are hashable and recognisable by `draw`).
  """
  kind = "an integer" if integer else "a number"
  allowed = f"{kind} in {_fmt_interval(lo, hi, lo_open, hi_open)}"
  if allow_range:
    allowed += " or a range [lo, hi] of those with lo <= hi"

  def one(v: Any) -> Any:
    if _is_traced(v):
      return v
    if isinstance(v, (np.ndarray, jax.Array)) and np.ndim(v) == 0:
      v = v.item()
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
      raise ValueError(f"{fn}: parameter '{name}' must be {allowed}, got {v!r}")
    v = float(v)
    bad = (not math.isfinite(v) or (integer and not v.is_integer())
           or (lo is not None and (v < lo or (lo_open and v == lo)))
           or (hi is not None and (v > hi or (hi_open and v == hi))))
    if bad:
      raise ValueError(f"{fn}: parameter '{name}' must be {allowed}, got {v!r}")
    return int(v) if integer else v

  if isinstance(value, (list, tuple)):
    if not allow_range or len(value) != 2:
      raise ValueError(f"{fn}: parameter '{name}' must be {allowed}, got {value!r}")
    a, b = one(value[0]), one(value[1])
    if not (_is_traced(a) or _is_traced(b)) and a > b:
      raise ValueError(f"{fn}: parameter '{name}' must be {allowed}; range has lo > hi: {value!r}")
    return (a, b)
  return one(value)


def check_bool(fn: str, name: str, value: Any) -> bool:
  if not isinstance(value, (bool, np.bool_)):
    raise ValueError(f"{fn}: parameter '{name}' must be True or False, got {value!r}")
  return bool(value)


def check_choice(fn: str, name: str, value: Any, choices: Sequence[str]) -> str:
  if value not in choices:
    raise ValueError(f"{fn}: parameter '{name}' must be one of {list(choices)}, got {value!r}")
  return value


# ---------------------------------------------------------------------------------------------
# Depthwise convolution shared by the blurs.


def _padding(k: int) -> tuple[int, int]:
  # Same anchor as scipy.ndimage.convolve: centre index k // 2 (matters for even sizes only).
  return k - 1 - k // 2, k // 2


def depthwise_conv(x: jax.Array, kernels: jax.Array) -> jax.Array:
  """True convolution of each channel with a 2-D kernel; same-size output.

  x: (N, H, W, C) float32. kernels: (kh, kw) shared by the batch, or (N, kh, kw) one per image.
  Borders use symmetric padding (scipy.ndimage mode 'reflect'), so a normalised kernel keeps a
  constant image constant instead of darkening the borders the way zero padding would.

  Computed with FFTs: after padding by the kernel size, the circular convolution's valid part
  is exactly the linear one, and it is 10-30x faster on CPU than XLA's direct convolution for
  these kernel sizes (13-27 px camera-shake kernels; per-image kernels would need a grouped
  convolution with N * C groups). float32 round-off is ~1e-6.
  """
  n, h, w, c = x.shape
  kh, kw = kernels.shape[-2:]
  if kh == kw == 1:  # e.g. gaussian_blur with sigma 0: exact, no FFT round-off
    return x * (kernels.reshape(-1, 1, 1, 1) if kernels.ndim == 3 else kernels.reshape(()))
  hp, wp = h + kh - 1, w + kw - 1
  xp = jnp.pad(x, ((0, 0), _padding(kh), _padding(kw), (0, 0)), mode="symmetric")
  fx = jnp.fft.rfft2(xp, axes=(1, 2))
  fk = jnp.fft.rfft2(kernels.astype(jnp.float32), s=(hp, wp), axes=(-2, -1))
  fk = fk[None, :, :, None] if kernels.ndim == 2 else fk[:, :, :, None]
  z = jnp.fft.irfft2(fx * fk, s=(hp, wp), axes=(1, 2))
  # z[i] = sum_j k[j] xp[i - j]: output pixel y sits at i = y + k - 1 (no wrap-around there).
  return z[:, kh - 1:kh - 1 + h, kw - 1:kw - 1 + w]
