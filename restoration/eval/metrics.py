"""Image-restoration metrics (PSNR, SSIM) with explicit, recordable conventions.

Published restoration numbers are notoriously hard to compare: some papers evaluate on RGB,
others on the Y channel of YCbCr; some crop a border; some round the network output to uint8
before measuring. Every function here therefore takes the three switches explicitly, and
`convention_name` turns them into a short string that results files record next to the value.

Conventions (all inputs are batched NHWC float images with values in [0, max_val]):

* Images are first divided by `max_val`, so everything below happens on [0, 1] images and the
  metrics are computed with a peak value of 1. (PSNR and SSIM are invariant to this rescaling.)
* ``quantize=True``: both images are clipped to [0, 1] and rounded to uint8 levels,
  ``round(x * 255) / 255`` (round-half-to-even, like NumPy / BasicSR's ``tensor2img``).
  It is applied before the Y conversion, i.e. it emulates saving the images as 8-bit files.
  The evaluator applies it to the restored output and the (8-bit) clean reference only: the
  corrupted input is measured as the model received it (`input_options`), as denoising papers
  do (MATLAB ``im2uint8(output)``; the noisy input stays unclipped floats). The convention
  name says so with the suffix ``_uint8out``.
* ``y_channel=True``: RGB is converted to the luma channel of YCbCr with the ITU-R BT.601
  formula used by MATLAB's ``rgb2ycbcr``::

      Y = (16 + 65.481 R + 128.553 G + 24.966 B) / 255     (R, G, B in [0, 1])

  so Y lies in [16/255, 235/255]; the metric then runs on that single channel with a peak
  value of 1. Y itself is *not* re-rounded (as in BasicSR's
  ``calculate_psnr(..., test_y_channel=True)``; KAIR's uint8 path rounds Y, which changes
  results by a few hundredths of a dB). For 1-channel inputs ``y_channel`` is a no-op (the
  image is used as is, as BasicSR does); other channel counts raise ``ValueError``.
* ``crop_border=k``: ``k`` pixels are removed from each of the four sides before the metric.
  Crop, quantisation and Y conversion are all pointwise or spatial-only, so their order does
  not matter.
* PSNR = ``10 log10(1 / MSE)`` with the MSE taken over all pixels *and channels* of each image
  (``dm_pix.psnr``). Identical images give ``MSE = 0`` and PSNR ``= +inf``; this is kept
  deliberately (it is the mathematically right answer and makes a broken pipeline that returns
  its input visible); average per-image values with care (e.g. ``jnp.mean`` of a batch with an
  ``inf`` is ``inf``).
* SSIM is the standard Wang et al. (2004) SSIM: 11x11 Gaussian window with sigma 1.5,
  ``K1 = 0.01``, ``K2 = 0.03``, 'valid' filtering (no padding), mean of the SSIM map over the
  valid region and over channels (``dm_pix.ssim``). This equals BasicSR's ``calculate_ssim``
  on float inputs (per-channel SSIM averaged) and ``skimage.metrics.structural_similarity``
  with ``gaussian_weights=True, sigma=1.5, use_sample_covariance=False``.

All functions are pure JAX and can be jitted or used inside a pmapped eval step; the keyword
switches are Python values (static), and invalid shapes raise ``ValueError`` at trace time.
"""

from __future__ import annotations

import functools

import dm_pix as pix
import jax
import jax.numpy as jnp

__all__ = ["psnr", "ssim", "rgb_to_y", "convention_name", "input_options", "SSIM_FILTER_SIZE"]

SSIM_FILTER_SIZE = 11
SSIM_FILTER_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03

# MATLAB rgb2ycbcr / ITU-R BT.601 luma, for R, G, B in [0, 1]; output in [16, 235].
_Y_OFFSET = 16.0
_Y_WEIGHTS = (65.481, 128.553, 24.966)


def rgb_to_y(images: jax.Array) -> jax.Array:
  """Luma (Y of YCbCr, MATLAB ``rgb2ycbcr`` / BT.601) of RGB images in [0, 1].

  Args:
    images: array ``[..., 3]`` with RGB values in [0, 1].

  Returns:
    ``[..., 1]`` array ``(16 + 65.481 R + 128.553 G + 24.966 B) / 255``, in
    [16/255, 235/255] for inputs in [0, 1]: white -> 235/255, black -> 16/255.
  """
  images = _as_float(images)
  if images.ndim < 1 or images.shape[-1] != 3:
    raise ValueError(
        f"rgb_to_y expects RGB images with 3 channels in the last axis, "
        f"got shape {tuple(images.shape)}"
    )
  r, g, b = images[..., 0], images[..., 1], images[..., 2]
  wr, wg, wb = _Y_WEIGHTS
  y = (_Y_OFFSET + wr * r + wg * g + wb * b) / 255.0
  return y[..., None]


def convention_name(*, y_channel: bool, crop_border: int, quantize: bool) -> str:
  """Short name of an evaluation convention, e.g. 'rgb', 'y', 'rgb_crop4', 'y_crop4_uint8out'.

  'rgb' means "all channels as given" (also for grayscale data); 'y' means the BT.601 luma
  channel; ``_crop{k}`` a k-pixel border crop (omitted for k = 0); ``_uint8out`` that the
  restored output and the reference were rounded to 8-bit levels first while the corrupted
  input was measured unrounded (`input_options`). (Results named ``_uint8`` came from an
  older evaluator that also clipped and rounded the corrupted input for input_psnr/ssim.)
  """
  crop_border = _check_crop(crop_border)
  name = "y" if y_channel else "rgb"
  if crop_border:
    name += f"_crop{crop_border}"
  if quantize:
    name += "_uint8out"
  return name


def input_options(options: dict) -> dict:
  """The metric options for the corrupted INPUT, given those of the restored output.

  ``quantize`` emulates saving the restored output as an 8-bit file; the input is measured as
  the model received it (e.g. unclipped Gaussian noise, whose PSNR is 20 log10(255 / sigma)),
  so it is dropped. ``y_channel`` and ``crop_border`` apply to both.
  """
  return {**options, "quantize": False}


def psnr(
    a: jax.Array,
    b: jax.Array,
    *,
    max_val: float = 1.0,
    y_channel: bool = False,
    crop_border: int = 0,
    quantize: bool = False,
) -> jax.Array:
  """Per-image PSNR in dB between two batches of NHWC images in [0, max_val].

  See the module docstring for the exact conventions. Identical images give ``+inf``.

  Args:
    a, b: arrays ``[N, H, W, C]`` of the same shape (C = 1 or 3 when ``y_channel``).
    max_val: peak value of the inputs (1.0 for [0, 1] floats, 255.0 for [0, 255]).
    y_channel: evaluate on the BT.601 Y channel (no-op for 1-channel images).
    crop_border: pixels removed from every side first.
    quantize: round both images to uint8 levels first.

  Returns:
    float32 array ``[N]``.
  """
  a, b = _check(
      a, b, max_val=max_val, y_channel=y_channel, crop_border=crop_border, min_size=1, metric="psnr"
  )
  return _metric(
      a,
      b,
      max_val,
      metric="psnr",
      y_channel=y_channel,
      crop_border=_check_crop(crop_border),
      quantize=bool(quantize),
  )


def ssim(
    a: jax.Array,
    b: jax.Array,
    *,
    max_val: float = 1.0,
    y_channel: bool = False,
    crop_border: int = 0,
    quantize: bool = False,
) -> jax.Array:
  """Per-image SSIM (Gaussian 11x11, sigma 1.5, 'valid') between batches of NHWC images.

  See the module docstring for the exact conventions. The (cropped) images must be at least
  11x11 pixels; smaller ones raise ``ValueError``.

  Args:
    a, b: arrays ``[N, H, W, C]`` of the same shape (C = 1 or 3 when ``y_channel``).
    max_val: peak value of the inputs.
    y_channel: evaluate on the BT.601 Y channel (no-op for 1-channel images).
    crop_border: pixels removed from every side first.
    quantize: round both images to uint8 levels first.

  Returns:
    float32 array ``[N]``.
  """
  a, b = _check(
      a,
      b,
      max_val=max_val,
      y_channel=y_channel,
      crop_border=crop_border,
      min_size=SSIM_FILTER_SIZE,
      metric="ssim",
  )
  return _metric(
      a,
      b,
      max_val,
      metric="ssim",
      y_channel=y_channel,
      crop_border=_check_crop(crop_border),
      quantize=bool(quantize),
  )


# ----------------------------------------------------------------------------------------------


def _as_float(x) -> jax.Array:
  x = jnp.asarray(x)
  if not jnp.issubdtype(x.dtype, jnp.floating):
    x = x.astype(jnp.float32)
  return x


def _check_crop(crop_border) -> int:
  if isinstance(crop_border, bool) or int(crop_border) != crop_border or crop_border < 0:
    raise ValueError(f"crop_border must be a non-negative integer, got {crop_border!r}")
  return int(crop_border)


def _check(a, b, *, max_val, y_channel, crop_border, min_size, metric):
  """Validates shapes and switches statically (at trace time); returns float arrays."""
  a = _as_float(a)
  b = _as_float(b)
  if a.ndim != 4 or b.ndim != 4:
    raise ValueError(
        f"{metric}: expected batched NHWC images (rank 4), got shapes "
        f"{tuple(a.shape)} and {tuple(b.shape)}"
    )
  if a.shape != b.shape:
    raise ValueError(f"{metric}: image shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
  crop_border = _check_crop(crop_border)
  if isinstance(max_val, (int, float)) and not max_val > 0:
    raise ValueError(f"{metric}: max_val must be positive, got {max_val!r}")
  _, h, w, c = a.shape
  if y_channel and c not in (1, 3):
    raise ValueError(f"{metric}: y_channel=True needs 1 or 3 channels, got {c}")
  hc, wc = h - 2 * crop_border, w - 2 * crop_border
  if hc < 1 or wc < 1:
    raise ValueError(
        f"{metric}: crop_border={crop_border} leaves no pixels of a {h}x{w} " f"image ({hc}x{wc})"
    )
  if hc < min_size or wc < min_size:
    raise ValueError(
        f"{metric}: image is {hc}x{wc} (HxW, {h}x{w} before "
        f"crop_border={crop_border}), smaller than the {min_size}x{min_size} "
        f"SSIM window"
    )
  return a, b


# Jitted so that eager calls (e.g. from notebooks or NumPy-side evaluation) run as one compiled
# computation per shape instead of op by op; inside an outer jit/pmap it is simply inlined.
@functools.partial(jax.jit, static_argnames=("metric", "y_channel", "crop_border", "quantize"))
def _metric(a, b, max_val, *, metric, y_channel, crop_border, quantize):
  _, h, w, c = a.shape
  if crop_border:
    a = a[:, crop_border : h - crop_border, crop_border : w - crop_border, :]
    b = b[:, crop_border : h - crop_border, crop_border : w - crop_border, :]
  a = a / max_val
  b = b / max_val
  if quantize:
    a = jnp.round(jnp.clip(a, 0.0, 1.0) * 255.0) / 255.0
    b = jnp.round(jnp.clip(b, 0.0, 1.0) * 255.0) / 255.0
  if y_channel and c == 3:
    a = rgb_to_y(a)
    b = rgb_to_y(b)
  if metric == "psnr":
    return pix.psnr(a, b)
  return pix.ssim(
      a,
      b,
      max_val=1.0,
      filter_size=SSIM_FILTER_SIZE,
      filter_sigma=SSIM_FILTER_SIGMA,
      k1=SSIM_K1,
      k2=SSIM_K2,
  )
