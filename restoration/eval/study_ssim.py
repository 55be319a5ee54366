"""The CIFAR-10 block study's SSIM: old scikit-image defaults on float images (data_range 2).

The study scored `skimage.metrics.structural_similarity(clean, restored, multichannel=True)`
on float64 images in [0, 1] without `data_range`. That scikit-image took the range from the
dtype, `dtype_range[float] = (-1, 1)`, so data_range = 2 (modern versions refuse floats
without data_range; `structural_similarity(a, b, channel_axis=-1, data_range=2.0)` is the same
computation). With its other defaults:

* a 7x7 uniform window (no Gaussian weights), statistics over the window with the sample
  covariance (ddof=1: variances and covariance times 49/48);
* K1 = 0.01, K2 = 0.03, so C1 = (0.01 * 2)^2 and C2 = (0.03 * 2)^2, 4x the [0, 1] convention's:
  the study's numbers are higher than standard SSIM (metrics.ssim: 11x11 Gaussian, sigma 1.5,
  data range 1, population covariance), most where the images are dark or flat;
* the SSIM map filtered with 'reflect' borders and then cropped by (7 - 1) // 2 = 3 pixels on
  every side: exactly the map of the fully-inside ('valid') windows, averaged;
* multichannel: that mean per channel, then the mean over channels (all channels have the
  same number of windows, so it is the mean over all of them).

`ssim` here is that, in JAX (float32; one difference from float64: variances are computed
from images shifted by their mean, which keeps the E[x^2] - E[x]^2 cancellation small) with
the same y_channel / crop_border / quantize / max_val switches as `metrics.ssim`.
`config.eval.ssim_convention = 'study'` makes the evaluator report it (the convention name
gains `CONVENTION_SUFFIX`); 'standard' (the default) is `metrics.ssim`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from restoration.eval import metrics

CONVENTIONS = ("standard", "study")
CONVENTION_SUFFIX = "_ssimstudy"
WINDOW = 7
DATA_RANGE = 2.0  # skimage's dtype_range[float]: (-1, 1)
K1, K2 = 0.01, 0.03


def check_convention(value) -> str:
  if value not in CONVENTIONS:
    raise ValueError(f"config.eval.ssim_convention must be one of {list(CONVENTIONS)}, got "
                     f"{value!r}")
  return value


def ssim_fn(convention: str):
  """The per-image SSIM function of a convention: metrics.ssim or this module's `ssim`."""
  return ssim if check_convention(convention) == "study" else metrics.ssim


def ssim(a: jax.Array, b: jax.Array, *, max_val: float = 1.0, y_channel: bool = False,
         crop_border: int = 0, quantize: bool = False) -> jax.Array:
  """Per-image study SSIM (see the module docstring) of NHWC batches in [0, max_val] -> [N].

  The (cropped) images must be at least 7x7 pixels (ValueError otherwise).
  """
  # metrics.ssim's own checks (shapes, switches, window fit), with the 7x7 window.
  a, b = metrics._check(  # pylint: disable=protected-access
      a, b, max_val=max_val, y_channel=y_channel, crop_border=crop_border, min_size=WINDOW,
      metric="ssim (study)")
  return _ssim(a, b, max_val, y_channel=bool(y_channel), crop_border=int(crop_border),
               quantize=bool(quantize))


@functools.partial(jax.jit, static_argnames=("y_channel", "crop_border", "quantize"))
def _ssim(a, b, max_val, *, y_channel, crop_border, quantize):
  _, h, w, c = a.shape
  k = crop_border
  a = a[:, k:h - k, k:w - k, :].astype(jnp.float32) / max_val
  b = b[:, k:h - k, k:w - k, :].astype(jnp.float32) / max_val
  if quantize:  # as metrics.ssim: 8-bit levels before the Y conversion
    a = jnp.round(jnp.clip(a, 0.0, 1.0) * 255.0) / 255.0
    b = jnp.round(jnp.clip(b, 0.0, 1.0) * 255.0) / 255.0
  if y_channel and c == 3:
    a, b = metrics.rgb_to_y(a), metrics.rgb_to_y(b)
  # Shift by the per-image, per-channel means: (co)variances are unchanged, and float32 keeps
  # more of them than of E[x^2] - E[x]^2 on raw values near 1.
  ma = jnp.mean(a, axis=(1, 2), keepdims=True)
  mb = jnp.mean(b, axis=(1, 2), keepdims=True)
  a, b = a - ma, b - mb

  def mean(x):  # 7x7 box mean over the fully-inside windows
    s = jax.lax.reduce_window(x, 0.0, jax.lax.add, (1, WINDOW, WINDOW, 1), (1, 1, 1, 1),
                              "VALID")
    return s / WINDOW ** 2

  ua, ub = mean(a), mean(b)
  n = WINDOW ** 2
  cov_norm = n / (n - 1)  # sample covariance (ddof=1), skimage's use_sample_covariance
  va = cov_norm * (mean(a * a) - ua * ua)
  vb = cov_norm * (mean(b * b) - ub * ub)
  vab = cov_norm * (mean(a * b) - ua * ub)
  ua, ub = ua + ma, ub + mb
  c1, c2 = (K1 * DATA_RANGE) ** 2, (K2 * DATA_RANGE) ** 2
  s = ((2 * ua * ub + c1) * (2 * vab + c2)) / ((ua ** 2 + ub ** 2 + c1) * (va + vb + c2))
  return jnp.mean(s, axis=(1, 2, 3))
