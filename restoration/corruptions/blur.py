"""Blurs: arbitrary kernels (incl. real camera-shake kernels from files), Gaussian, motion.

All blurs are depthwise (each channel with the same 2-D kernel), true convolution (the kernel
is flipped, as in scipy.ndimage.convolve, whose anchor k // 2 is also used for even sizes), with
symmetric border padding (scipy mode 'reflect') so that same-size outputs keep border
brightness; computed with FFTs (see `_common.depthwise_conv`), matching scipy.ndimage.convolve
to ~1e-6. Kernel sizes are static: derived from the largest value a parameter range allows.

Kernel files (`load_kernel`): `levin09_kernels.npz` (keys k1..k8, 13x13 to 27x27) and
`kernels12.npy` (12 x 25 x 25) in a directory that defaults to DEFAULT_KERNEL_DIR, a path
../shared/data beside the repository checkout (independent of the working directory).
"""

from __future__ import annotations

import functools
import math
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from restoration.corruptions._common import (ImageShape, Param, _is_traced, check_images,
                                             check_number, depthwise_conv, draw, from_unit,
                                             param_max, per_image_keys, to_int, uniforms)

# The shared benchmark data sits beside the repository checkout (../shared/data from its root);
# resolved from this file, so it does not depend on the working directory.
_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_KERNEL_DIR = os.path.normpath(
    os.path.join(_REPO_ROOT, "..", "shared", "data", "deblur", "Levin09", "kernels"))
KERNEL_SUM_RTOL = 1e-3  # "sums to 1" tolerance: float32 files sum to 1 within ~1e-7
_SOURCES = {"levin09": ("levin09_kernels.npz", 8), "kernels12": ("kernels12.npy", 12)}
_KERNEL_NAMES = ("'levin09:k1' .. 'levin09:k8', 'levin09:random', 'kernels12:0' .. "
                 "'kernels12:11', 'kernels12:random'")


@functools.lru_cache(maxsize=8)
def _read_bank(path: str) -> tuple[np.ndarray, ...]:
  if not os.path.exists(path):
    raise FileNotFoundError(
        f"blur kernel file {path!r} not found (default directory: {DEFAULT_KERNEL_DIR!r}, "
        "../shared/data beside the repository); pass kernel_dir / data_dir to point at the "
        "directory holding levin09_kernels.npz and kernels12.npy")
  if path.endswith(".npz"):
    with np.load(path) as z:
      return tuple(np.asarray(z[f"k{i}"], np.float32) for i in range(1, 9))
  return tuple(np.asarray(k, np.float32) for k in np.load(path))


def _pad_to(k: np.ndarray, size: int) -> np.ndarray:
  # Centred zero padding keeps the kernel's anchor (odd sizes) and its sum.
  top, left = (size - k.shape[0]) // 2, (size - k.shape[1]) // 2
  return np.pad(k, ((top, size - k.shape[0] - top), (left, size - k.shape[1] - left)))


def load_kernel(name: str, data_dir: str | os.PathLike | None = None) -> np.ndarray:
  """Reads a real blur kernel by name.

  Args:
    name: 'levin09:k1' .. 'levin09:k8' (Levin et al. 2009 camera shake), 'kernels12:0' ..
      'kernels12:11' (0-based index into the IRCNN/DPIR kernels12.npy), or 'levin09:random' /
      'kernels12:random' for the whole bank, zero-padded (centred) to the largest size and
      stacked as (K, S, S); `blur` then draws one kernel per image.
    data_dir: directory with the two files; default DEFAULT_KERNEL_DIR (../shared/data/... beside
      the repository checkout).
  Returns:
    float32 (kh, kw), or (K, S, S) for a '...:random' bank.
  """
  source, _, which = str(name).partition(":")
  if source not in _SOURCES:
    raise ValueError(f"load_kernel: kernel name must be one of {_KERNEL_NAMES}, got {name!r}")
  fname, count = _SOURCES[source]
  if source == "levin09":
    index = {f"k{i}": i - 1 for i in range(1, 9)}.get(which)
  else:
    index = int(which) if which.isdigit() and int(which) < count else None
  if index is None and which != "random":
    raise ValueError(f"load_kernel: kernel name must be one of {_KERNEL_NAMES}, got {name!r}")
  bank = _read_bank(os.path.join(os.fspath(data_dir or DEFAULT_KERNEL_DIR), fname))
  if index is not None:
    return bank[index].copy()
  size = max(max(k.shape) for k in bank)
  return np.stack([_pad_to(k, size) for k in bank])


def _check_kernel(kernel: Any) -> None:
  f = "blur"
  k = np.asarray(kernel)
  if k.ndim != 2 or k.size == 0 or not np.issubdtype(k.dtype, np.number):
    raise ValueError(f"{f}: parameter 'kernel' must be a non-empty 2-D numeric array (nested "
                     f"list) or a kernel name ({_KERNEL_NAMES}), got shape {k.shape}")
  k = k.astype(np.float64)
  total = k.sum()
  if not np.all(np.isfinite(k)) or abs(total - 1.0) > KERNEL_SUM_RTOL:
    raise ValueError(f"{f}: parameter 'kernel' must be finite and sum to 1 (within "
                     f"{KERNEL_SUM_RTOL}), got sum {total!r}")


def _check_blur(p: dict[str, Any], image_shape: ImageShape) -> dict[str, Any]:
  del image_shape  # kernels larger than the image are fine: padding reflects repeatedly
  kernel, kernel_dir = p["kernel"], p["kernel_dir"]
  if kernel_dir is not None and not isinstance(kernel_dir, (str, os.PathLike)):
    raise ValueError(f"blur: parameter 'kernel_dir' must be None or a path, got {kernel_dir!r}")
  if isinstance(kernel, str):
    try:
      bank = load_kernel(kernel, kernel_dir)
    except ValueError:
      raise ValueError(f"blur: parameter 'kernel' must be a 2-D array or one of "
                       f"{_KERNEL_NAMES}, got {kernel!r}") from None
    for k in (bank if bank.ndim == 3 else [bank]):
      _check_kernel(k)
    return dict(kernel=kernel, kernel_dir=kernel_dir)
  if _is_traced(kernel):
    if kernel.ndim != 2:
      raise ValueError(f"blur: parameter 'kernel' must be 2-D, got shape {kernel.shape}")
    return dict(kernel=kernel, kernel_dir=kernel_dir)
  _check_kernel(kernel)
  return dict(kernel=np.asarray(kernel, np.float32), kernel_dir=kernel_dir)


def _check_gaussian_blur(p: dict[str, Any], image_shape: ImageShape) -> dict[str, Any]:
  del image_shape
  return dict(sigma=check_number("gaussian_blur", "sigma", p["sigma"], lo=0.0))


def _check_motion_blur(p: dict[str, Any], image_shape: ImageShape) -> dict[str, Any]:
  del image_shape
  f = "motion_blur"
  angle = p["angle"]
  if angle is not None:
    angle = check_number(f, "angle", angle)
  return dict(length=check_number(f, "length", p["length"], lo=1.0), angle=angle)


def blur(key: jax.Array, images: jax.Array, *, kernel: Any,
         kernel_dir: str | os.PathLike | None = None) -> jax.Array:
  """Convolves every channel with a normalised 2-D kernel (same size, symmetric borders).

  Args:
    kernel: 2-D array or nested list summing to 1 (within KERNEL_SUM_RTOL), or a name for
      `load_kernel` ('levin09:k3', 'kernels12:5', ...). 'levin09:random' / 'kernels12:random'
      draw one kernel of the bank per image (uniformly, from the image's key), which is how a
      deblurring model is trained on real camera shake.
    kernel_dir: directory of the kernel files for names (default DEFAULT_KERNEL_DIR).
  A fixed kernel is deterministic and ignores `key`.
  """
  check_images("blur", images)
  p = _check_blur(dict(kernel=kernel, kernel_dir=kernel_dir), None)
  kernel = p["kernel"]
  if isinstance(kernel, str):
    kernel = load_kernel(kernel, p["kernel_dir"])
  x = images.astype(jnp.float32)
  if kernel.ndim == 3:
    keys = per_image_keys(key, images.shape[0])
    idx = jax.vmap(lambda k: to_int(jax.random.uniform(k), 0, kernel.shape[0] - 1))(keys)
    kernel = jnp.asarray(kernel)[idx]
  return depthwise_conv(x, jnp.asarray(kernel, jnp.float32)).astype(images.dtype)


def _gaussian_1d(sigma: jax.Array, radius: int) -> jax.Array:
  t = jnp.arange(-radius, radius + 1, dtype=jnp.float32)
  # sigma -> 0 gives a delta (exp(-t^2 / tiny) underflows to 0 off-centre): identity blur.
  g = jnp.exp(-0.5 * (t / jnp.maximum(sigma, 1e-6)) ** 2)
  return g / g.sum()


def gaussian_blur(key: jax.Array, images: jax.Array, *, sigma: Param) -> jax.Array:
  """Isotropic Gaussian blur; sigma in pixels (>= 0) or a range drawn per image.

  The kernel size is static, 2 * ceil(3 * sigma_max) + 1, with sigma_max the range's upper
  end; each image's kernel is its own sigma sampled on that support and normalised.
  """
  check_images("gaussian_blur", images)
  p = _check_gaussian_blur(dict(sigma=sigma), None)
  radius = int(math.ceil(3.0 * param_max(p["sigma"])))
  if isinstance(p["sigma"], tuple):
    keys = per_image_keys(key, images.shape[0])
    g = jax.vmap(lambda k: _gaussian_1d(draw(k, p["sigma"]), radius))(keys)  # (N, K)
    kernels = g[:, :, None] * g[:, None, :]
  else:
    g = _gaussian_1d(jnp.float32(p["sigma"]), radius)
    kernels = g[:, None] * g[None, :]
  # One 2-D (outer product) kernel: with FFT convolution separability saves nothing.
  return depthwise_conv(images.astype(jnp.float32), kernels).astype(images.dtype)


def line_kernel(length: jax.Array | float, angle: jax.Array | float, size: int) -> jax.Array:
  """Anti-aliased line of `length` pixels through the centre of a (size, size) kernel.

  Weight max(0, 1 - distance to the segment) per pixel, normalised: length 1 is a delta, and
  a horizontal length-3 line is [1, 1, 1] / 3. Angle in degrees, counter-clockwise as
  displayed (rows grow downwards), 0 = horizontal.
  """
  r = size // 2
  yy, xx = jnp.meshgrid(jnp.arange(-r, r + 1, dtype=jnp.float32),
                        jnp.arange(-r, r + 1, dtype=jnp.float32), indexing="ij")
  theta = jnp.deg2rad(jnp.asarray(angle, jnp.float32))
  dx, dy = jnp.cos(theta), -jnp.sin(theta)
  half = (jnp.asarray(length, jnp.float32) - 1.0) / 2.0
  t = jnp.clip(xx * dx + yy * dy, -half, half)  # closest point on the segment
  dist = jnp.sqrt((xx - t * dx) ** 2 + (yy - t * dy) ** 2)
  w = jnp.maximum(0.0, 1.0 - dist)
  return w / w.sum()


def motion_blur(key: jax.Array, images: jax.Array, *, length: Param,
                angle: Param | None = None) -> jax.Array:
  """Linear motion blur: a normalised line kernel (see `line_kernel`).

  Args:
    length: line length in pixels (>= 1; 1 is the identity), or a range drawn per image.
    angle: degrees (counter-clockwise, 0 = horizontal), a range drawn per image, or None for
      uniform in [0, 180) per image.
  Kernel size is static: 2 * ceil((length_max - 1) / 2) + 1.
  """
  check_images("motion_blur", images)
  p = _check_motion_blur(dict(length=length, angle=angle), None)
  size = 2 * int(math.ceil((param_max(p["length"]) - 1.0) / 2.0)) + 1
  x = images.astype(jnp.float32)
  angle = (0.0, 180.0) if p["angle"] is None else p["angle"]
  if not isinstance(p["length"], tuple) and not isinstance(angle, tuple):
    return depthwise_conv(x, line_kernel(p["length"], angle, size)).astype(images.dtype)

  def one(k: jax.Array) -> jax.Array:
    u_len, u_angle = uniforms(k, (), ())
    return line_kernel(from_unit(u_len, p["length"]), from_unit(u_angle, angle), size)

  kernels = jax.vmap(one)(per_image_keys(key, images.shape[0]))
  return depthwise_conv(x, kernels).astype(images.dtype)


CHECKS = {
    "blur": _check_blur,
    "gaussian_blur": _check_gaussian_blur,
    "motion_blur": _check_motion_blur,
}
