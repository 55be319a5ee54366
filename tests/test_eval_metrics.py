"""Tests for restoration.eval.metrics against independent NumPy/SciPy implementations."""

import functools

import jax
import numpy as np
import pytest
from scipy import signal
from skimage.metrics import structural_similarity

from restoration.eval import metrics

# ------------------------------------------------------------------ NumPy reference formulas


def np_psnr(a, b, max_val=1.0):
  a = np.asarray(a, np.float64)
  b = np.asarray(b, np.float64)
  mse = np.mean((a - b) ** 2, axis=(1, 2, 3))
  return 10.0 * np.log10(max_val**2 / mse)


def np_gaussian_window(size=11, sigma=1.5):
  x = np.arange(size) - (size - 1) / 2.0
  g = np.exp(-0.5 * (x / sigma) ** 2)
  g /= g.sum()
  return np.outer(g, g)


def np_ssim(a, b, max_val=1.0):
  """Wang et al. SSIM, Gaussian 11/1.5 window, 'valid' mode, mean over map and channels."""
  a = np.asarray(a, np.float64)
  b = np.asarray(b, np.float64)
  win = np_gaussian_window()
  c1 = (0.01 * max_val) ** 2
  c2 = (0.03 * max_val) ** 2
  out = []
  for x, y in zip(a, b):
    maps = []
    for ch in range(x.shape[-1]):
      xc, yc = x[..., ch], y[..., ch]
      f = lambda z: signal.convolve2d(z, win, mode="valid")  # noqa: E731 (symmetric win)
      mx, my = f(xc), f(yc)
      sxx = f(xc * xc) - mx * mx
      syy = f(yc * yc) - my * my
      sxy = f(xc * yc) - mx * my
      maps.append(((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2)))
    out.append(np.mean(maps))
  return np.array(out)


def np_y(rgb):
  rgb = np.asarray(rgb, np.float64)
  return ((16.0 + rgb @ np.array([65.481, 128.553, 24.966])) / 255.0)[..., None]


# ------------------------------------------------------------------ fixtures


def _pair(shape, seed=0, noise=0.1):
  rng = np.random.default_rng(seed)
  clean = rng.uniform(0.0, 1.0, size=shape).astype(np.float32)
  noisy = np.clip(clean + noise * rng.standard_normal(shape), 0.0, 1.0).astype(np.float32)
  return clean, noisy


def _structured(n, h, w, c):
  yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
  base = []
  for i in range(n):
    chans = [
        0.5 + 0.5 * np.sin(2 * np.pi * (k + 1 + i) * xx) * np.cos(2 * np.pi * yy * (k + 2))
        for k in range(c)
    ]
    base.append(np.stack(chans, -1))
  clean = np.asarray(base, np.float32) * 0.9 + 0.05
  blurred = (clean + np.roll(clean, 1, axis=1) + np.roll(clean, 1, axis=2)) / 3.0
  return clean, blurred.astype(np.float32)


# ------------------------------------------------------------------ PSNR


@pytest.mark.parametrize("channels", [1, 3])
def test_psnr_matches_numpy_random(channels):
  a, b = _pair((3, 20, 17, channels))
  got = metrics.psnr(a, b)
  assert got.shape == (3,)
  np.testing.assert_allclose(np.asarray(got), np_psnr(a, b), rtol=1e-5)


@pytest.mark.parametrize("channels", [1, 3])
def test_psnr_matches_numpy_structured(channels):
  a, b = _structured(2, 24, 30, channels)
  np.testing.assert_allclose(np.asarray(metrics.psnr(a, b)), np_psnr(a, b), rtol=1e-5)


def test_psnr_constant_offset_is_20db():
  a = np.full((2, 8, 8, 3), 0.5, np.float32)
  b = np.full((2, 8, 8, 3), 0.6, np.float32)
  np.testing.assert_allclose(np.asarray(metrics.psnr(a, b)), [20.0, 20.0], atol=1e-4)
  # Same offset on a [0, 255] scale.
  np.testing.assert_allclose(
      np.asarray(metrics.psnr(a * 255, b * 255, max_val=255.0)), [20.0, 20.0], atol=1e-4
  )


def test_psnr_max_val_255_matches_unit_scale():
  a, b = _pair((2, 16, 16, 3))
  np.testing.assert_allclose(
      np.asarray(metrics.psnr(a * 255.0, b * 255.0, max_val=255.0)),
      np.asarray(metrics.psnr(a, b)),
      rtol=1e-5,
  )
  np.testing.assert_allclose(
      np.asarray(metrics.ssim(a * 255.0, b * 255.0, max_val=255.0)),
      np.asarray(metrics.ssim(a, b)),
      rtol=1e-5,
  )


def test_psnr_identical_is_inf():
  a, _ = _pair((2, 8, 8, 3))
  got = np.asarray(metrics.psnr(a, a))
  assert np.all(np.isinf(got)) and np.all(got > 0)


def test_psnr_per_image_independent():
  a, b = _pair((3, 12, 12, 3))
  full = np.asarray(metrics.psnr(a, b))
  for i in range(3):
    np.testing.assert_allclose(
        np.asarray(metrics.psnr(a[i : i + 1], b[i : i + 1]))[0], full[i], rtol=1e-6
    )


# ------------------------------------------------------------------ SSIM


@pytest.mark.parametrize("channels", [1, 3])
def test_ssim_matches_numpy_random(channels):
  a, b = _pair((2, 23, 19, channels))
  got = metrics.ssim(a, b)
  assert got.shape == (2,)
  np.testing.assert_allclose(np.asarray(got), np_ssim(a, b), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("channels", [1, 3])
def test_ssim_matches_numpy_structured(channels):
  a, b = _structured(2, 32, 28, channels)
  np.testing.assert_allclose(np.asarray(metrics.ssim(a, b)), np_ssim(a, b), rtol=1e-4, atol=1e-5)


def test_ssim_matches_skimage():
  # skimage with Gaussian weights (truncate 3.5 -> 11 taps at sigma 1.5), population
  # covariance, crops the 5-px border from the map == 'valid' filtering.
  a, b = _pair((2, 32, 32, 3), seed=3)
  ref = [
      structural_similarity(
          x.astype(np.float64),
          y.astype(np.float64),
          data_range=1.0,
          channel_axis=-1,
          gaussian_weights=True,
          sigma=1.5,
          use_sample_covariance=False,
      )
      for x, y in zip(a, b)
  ]
  np.testing.assert_allclose(np.asarray(metrics.ssim(a, b)), ref, rtol=1e-4, atol=1e-5)


def test_ssim_identical_is_one_and_min_size_ok():
  a, _ = _pair((2, 11, 11, 3))
  np.testing.assert_allclose(np.asarray(metrics.ssim(a, a)), [1.0, 1.0], atol=1e-5)


# ------------------------------------------------------------------ Y channel


def test_rgb_to_y_explicit_values():
  rgb = np.array(
      [[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
      np.float32,
  )
  y = np.asarray(metrics.rgb_to_y(rgb))
  assert y.shape == (5, 1)
  np.testing.assert_allclose(
      y[:, 0], np.array([235.0, 16.0, 16 + 65.481, 16 + 128.553, 16 + 24.966]) / 255.0, atol=1e-6
  )


def test_rgb_to_y_rejects_non_rgb():
  with pytest.raises(ValueError, match="3 channels"):
    metrics.rgb_to_y(np.zeros((2, 4, 4, 1), np.float32))


def test_y_channel_metrics_match_numpy():
  a, b = _pair((2, 24, 24, 3), seed=1)
  np.testing.assert_allclose(
      np.asarray(metrics.psnr(a, b, y_channel=True)), np_psnr(np_y(a), np_y(b)), rtol=1e-5
  )
  np.testing.assert_allclose(
      np.asarray(metrics.ssim(a, b, y_channel=True)),
      np_ssim(np_y(a), np_y(b)),
      rtol=1e-4,
      atol=1e-5,
  )
  assert not np.allclose(
      np.asarray(metrics.psnr(a, b, y_channel=True)), np.asarray(metrics.psnr(a, b))
  )


def test_y_channel_noop_for_gray():
  a, b = _pair((2, 16, 16, 1))
  for fn in (metrics.psnr, metrics.ssim):
    np.testing.assert_array_equal(np.asarray(fn(a, b, y_channel=True)), np.asarray(fn(a, b)))


def test_y_channel_rejects_other_channel_counts():
  a, b = _pair((1, 16, 16, 4))
  with pytest.raises(ValueError, match="1 or 3 channels"):
    metrics.psnr(a, b, y_channel=True)
  metrics.psnr(a, b)  # fine without y_channel


# ------------------------------------------------------------------ quantize


def test_quantize_changes_off_grid_values():
  a, b = _pair((2, 16, 16, 3), seed=2, noise=0.02)
  q = lambda x: np.round(np.clip(x, 0, 1) * 255.0) / 255.0  # noqa: E731
  got_q = np.asarray(metrics.psnr(a, b, quantize=True))
  assert not np.allclose(got_q, np.asarray(metrics.psnr(a, b)), rtol=1e-6, atol=0)
  np.testing.assert_allclose(got_q, np_psnr(q(a), q(b)), rtol=1e-5)
  np.testing.assert_allclose(
      np.asarray(metrics.ssim(a, b, quantize=True)), np_ssim(q(a), q(b)), rtol=1e-4, atol=1e-5
  )


def test_quantize_noop_on_grid():
  rng = np.random.default_rng(5)
  a = (rng.integers(0, 256, size=(2, 16, 16, 3)) / 255.0).astype(np.float32)
  b = (rng.integers(0, 256, size=(2, 16, 16, 3)) / 255.0).astype(np.float32)
  for fn in (metrics.psnr, metrics.ssim):
    np.testing.assert_allclose(np.asarray(fn(a, b, quantize=True)), np.asarray(fn(a, b)), rtol=1e-6)


def test_quantize_clips_out_of_range():
  a = np.full((1, 4, 4, 1), 1.3, np.float32)  # clips to 1.0
  b = np.full((1, 4, 4, 1), 0.9, np.float32)  # -> round(229.5) = 230 (half to even)
  expected = np_psnr(np.ones((1, 4, 4, 1)), np.full((1, 4, 4, 1), 230 / 255.0))
  np.testing.assert_allclose(np.asarray(metrics.psnr(a, b, quantize=True)), expected, rtol=1e-5)


# ------------------------------------------------------------------ crop_border


@pytest.mark.parametrize("k", [1, 4])
def test_crop_border_equals_manual_crop(k):
  a, b = _pair((2, 30, 26, 3), seed=4)
  ac, bc = a[:, k:-k, k:-k], b[:, k:-k, k:-k]
  for fn in (metrics.psnr, metrics.ssim):
    np.testing.assert_allclose(
        np.asarray(fn(a, b, crop_border=k)), np.asarray(fn(ac, bc)), rtol=1e-6
    )
  np.testing.assert_allclose(
      np.asarray(metrics.psnr(a, b, crop_border=k, y_channel=True, quantize=True)),
      np.asarray(metrics.psnr(ac, bc, y_channel=True, quantize=True)),
      rtol=1e-6,
  )


def test_crop_border_only_affects_border():
  a, b = _pair((1, 12, 12, 3))
  b2 = b.copy()
  b2[:, :2] = 0.0
  b2[:, :, -2:] = 1.0
  np.testing.assert_array_equal(
      np.asarray(metrics.psnr(a, b2, crop_border=2)), np.asarray(metrics.psnr(a, b, crop_border=2))
  )


# ------------------------------------------------------------------ convention names


def test_convention_name():
  cn = metrics.convention_name
  assert cn(y_channel=False, crop_border=0, quantize=False) == "rgb"
  assert cn(y_channel=True, crop_border=0, quantize=False) == "y"
  assert cn(y_channel=True, crop_border=4, quantize=True) == "y_crop4_uint8out"
  assert cn(y_channel=False, crop_border=2, quantize=False) == "rgb_crop2"
  assert cn(y_channel=False, crop_border=0, quantize=True) == "rgb_uint8out"
  with pytest.raises(ValueError):
    cn(y_channel=False, crop_border=-1, quantize=False)


# ------------------------------------------------------------------ jit / pmap


def test_jit_matches_eager():
  a, b = _pair((2, 20, 20, 3), seed=6)
  for fn in (metrics.psnr, metrics.ssim):
    for kw in ({}, dict(y_channel=True, crop_border=2, quantize=True)):
      eager = np.asarray(fn(a, b, **kw))
      jitted = np.asarray(jax.jit(functools.partial(fn, **kw))(a, b))
      np.testing.assert_allclose(jitted, eager, rtol=1e-5)


def test_inside_pmap():
  n = min(2, jax.local_device_count())
  a, b = _pair((n, 2, 16, 16, 3), seed=7)

  def step(x, y):
    return (
        metrics.psnr(x, y, y_channel=True, crop_border=1),
        metrics.ssim(x, y, y_channel=True, crop_border=1),
    )

  p, s = jax.pmap(step, devices=jax.local_devices()[:n])(a, b)
  assert p.shape == (n, 2) and s.shape == (n, 2)
  flat_a, flat_b = a.reshape(-1, 16, 16, 3), b.reshape(-1, 16, 16, 3)
  np.testing.assert_allclose(
      np.asarray(p).ravel(),
      np.asarray(metrics.psnr(flat_a, flat_b, y_channel=True, crop_border=1)),
      rtol=1e-5,
  )
  np.testing.assert_allclose(
      np.asarray(s).ravel(),
      np.asarray(metrics.ssim(flat_a, flat_b, y_channel=True, crop_border=1)),
      rtol=1e-5,
  )


def test_uint8_input_with_max_val_255():
  rng = np.random.default_rng(8)
  a = rng.integers(0, 256, size=(2, 16, 16, 3), dtype=np.uint8)
  b = rng.integers(0, 256, size=(2, 16, 16, 3), dtype=np.uint8)
  np.testing.assert_allclose(
      np.asarray(metrics.psnr(a, b, max_val=255.0)), np_psnr(a / 255.0, b / 255.0), rtol=1e-5
  )


# ------------------------------------------------------------------ errors


def test_shape_mismatch_raises():
  a = np.zeros((2, 16, 16, 3), np.float32)
  for fn in (metrics.psnr, metrics.ssim):
    with pytest.raises(ValueError, match="shapes differ"):
      fn(a, np.zeros((2, 16, 15, 3), np.float32))
    with pytest.raises(ValueError, match="rank 4"):
      fn(a[0], a[0])


def test_crop_too_large_raises():
  a = np.zeros((1, 10, 12, 3), np.float32)
  with pytest.raises(ValueError, match="crop_border=5"):
    metrics.psnr(a, a, crop_border=5)
  metrics.psnr(a, a + 0.1, crop_border=4)  # leaves 2x4: fine for PSNR
  with pytest.raises(ValueError, match="non-negative"):
    metrics.psnr(a, a, crop_border=-1)


def test_ssim_too_small_raises_with_sizes():
  a = np.zeros((1, 10, 40, 1), np.float32)
  with pytest.raises(ValueError, match=r"10x40.*11x11"):
    metrics.ssim(a, a)
  b = np.zeros((1, 16, 16, 1), np.float32)
  with pytest.raises(ValueError, match=r"10x10 .*16x16 before crop_border=3"):
    metrics.ssim(b, b, crop_border=3)
  # Raised at trace time under jit too.
  with pytest.raises(ValueError, match="SSIM window"):
    jax.jit(metrics.ssim)(a, a)
