"""Tests for restoration.corruptions' filters: blurs (identities, mean preservation, scipy
references, kernel banks), grayscale and JPEG (quality ordering, Pillow's libjpeg reference).
The contract, statistics and chain tests are in test_corruptions.py."""

import functools
import io

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage as ndi
from PIL import Image

from restoration import corruptions as C
from tests.test_corruptions import KEY, jitted, needs_kernels, rand_images, run


def psnr(a, b):
  err = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
  return 10 * np.log10(1.0 / err)



@functools.lru_cache(maxsize=None)
def natural_uint8(size=64):
  from skimage import data, transform  # bundled photo, no network
  img = transform.resize(data.astronaut()[:400, 50:450], (size, size), anti_aliasing=True)
  return np.round(img * 255).astype(np.uint8)



def scipy_blur(x, k):
  x = np.asarray(x)
  return np.stack([np.stack([ndi.convolve(x[i, ..., c], k, mode="reflect")
                             for c in range(x.shape[-1])], -1) for i in range(len(x))])



# ---------------------------------------------------------------------------------------------
# Blurs: identities, mean preservation, references.


@needs_kernels
def test_blur_delta_identity_and_scipy_reference():
  x = rand_images((2, 37, 53, 3))
  delta = np.zeros((5, 5), np.float32)
  delta[2, 2] = 1
  np.testing.assert_allclose(run(C.blur, x, kernel=delta), x, atol=1e-6)
  k = C.load_kernel("levin09:k4")  # the largest, 27x27
  np.testing.assert_allclose(run(C.blur, x, kernel=k), scipy_blur(x, k), atol=1e-5)
  even = np.random.default_rng(0).random((4, 6))
  even /= even.sum()
  np.testing.assert_allclose(run(C.blur, x, kernel=even.tolist()), scipy_blur(x, even),
                             atol=1e-5)
  kernels12 = np.load(f"{C.DEFAULT_KERNEL_DIR}/kernels12.npy")
  np.testing.assert_array_equal(C.load_kernel("kernels12:5"), kernels12[5])
  np.testing.assert_allclose(run(C.blur, x[:1, :16, :16], kernel="kernels12:5"),
                             scipy_blur(x[:1, :16, :16], kernels12[5]), atol=1e-5)


@needs_kernels
def test_blur_keeps_constant_and_interior_mean():
  const = jnp.full((1, 37, 53, 3), 0.7, jnp.float32)
  for name in ("levin09:k4", "levin09:k1"):
    np.testing.assert_allclose(run(C.blur, const, kernel=name), 0.7, atol=1e-5)
  np.testing.assert_allclose(run(C.gaussian_blur, const, sigma=2.0), 0.7, atol=1e-5)
  np.testing.assert_allclose(run(C.motion_blur, const, length=7, angle=30.0), 0.7, atol=1e-5)
  x = rand_images((4, 64, 64, 1), seed=2)
  y = run(C.blur, x, kernel="levin09:k2")  # 17x17: crop 8 px
  inner = (slice(None), slice(8, -8), slice(8, -8))
  assert abs(float(y[inner].mean() - x[inner].mean())) < 2e-3
  assert float(y.std()) < 0.5 * float(x.std())  # it does blur


@needs_kernels
def test_blur_random_levin_bank_picks_one_kernel_per_image():
  bank = C.load_kernel("levin09:random")
  assert bank.shape == (8, 27, 27)
  np.testing.assert_allclose(bank.sum((1, 2)), 1.0, atol=1e-5)
  x = jnp.broadcast_to(rand_images((1, 24, 24, 1)), (24, 24, 24, 1))
  y = np.asarray(jitted("blur")(KEY, x))
  candidates = scipy_blur(x[:1], bank[0]), *(scipy_blur(x[:1], k) for k in bank[1:])
  picked = [int(np.argmin([np.abs(y[i] - c[0]).max() for c in candidates])) for i in range(24)]
  for i, j in enumerate(picked):
    np.testing.assert_allclose(y[i], candidates[j][0], atol=1e-5)
  assert len(set(picked)) >= 5


def test_gaussian_blur_identity_reference_and_range():
  x = rand_images((2, 23, 31, 3))
  np.testing.assert_array_equal(run(C.gaussian_blur, x, sigma=0.0), x)
  ref = np.stack([np.stack([ndi.gaussian_filter(np.asarray(x)[i, ..., c], 1.5, mode="reflect",
                                                truncate=3.0) for c in range(3)], -1)
                  for i in range(2)])
  np.testing.assert_allclose(run(C.gaussian_blur, x, sigma=1.5), ref, atol=1e-5)
  xs = jnp.broadcast_to(x[:1], (8,) + x.shape[1:])
  stds = np.asarray(jitted("gaussian_blur")(KEY, xs)).std(axis=(1, 2, 3))
  assert stds.max() - stds.min() > 0.05  # different sigma per image


def test_motion_blur_kernels():
  line = jax.jit(C.line_kernel, static_argnums=2)  # one small compile per size
  np.testing.assert_allclose(line(3, 0.0, 3), [[0, 0, 0], [1 / 3] * 3, [0, 0, 0]], atol=1e-6)
  np.testing.assert_allclose(line(5, 90.0, 5), np.asarray(line(5, 0.0, 5)).T, atol=1e-6)
  k = np.asarray(line(9, 45.0, 9))
  assert abs(k.sum() - 1) < 1e-6 and np.allclose(k, k.T[::-1, ::-1], atol=1e-6)
  assert k[1, 7] == k[7, 1] > 0.05 and k[1, 1] == 0 and k[4, 4] == k.max()  # up-right
  x = rand_images((2, 19, 27, 3))
  np.testing.assert_allclose(run(C.motion_blur, x, length=1, angle=10.0), x, atol=1e-6)
  np.testing.assert_allclose(run(C.motion_blur, x, length=7, angle=0.0),
                             scipy_blur(x, np.asarray(line(7, 0.0, 7))), atol=1e-5)


def test_grayscale():
  x = rand_images((2, 9, 11, 3))
  y = C.grayscale(KEY, x)
  luma = 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]
  for c in range(3):
    np.testing.assert_allclose(y[..., c], luma, atol=1e-6)
  one = C.grayscale(KEY, x, keep_channels=False)
  assert one.shape == (2, 9, 11, 1)
  np.testing.assert_allclose(one[..., 0], luma, atol=1e-6)
  g = x[..., :1]
  assert C.grayscale(KEY, g) is g


# ---------------------------------------------------------------------------------------------
# JPEG.


def pil_jpeg(img_uint8, quality):
  buf = io.BytesIO()
  Image.fromarray(img_uint8).save(buf, "JPEG", quality=quality, subsampling=0)  # 4:4:4
  return np.asarray(Image.open(buf), np.float32) / 255


@pytest.mark.parametrize("channels", [3, 1])
def test_jpeg_quality_ordering_and_libjpeg_reference(channels):
  img = natural_uint8()
  if channels == 1:
    img = np.round(img @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)[..., None]
  x = jnp.asarray(img[None] / 255.0, jnp.float32)
  clean = img / 255.0
  psnrs = []
  fn = jax.jit(lambda q: C.jpeg(KEY, x, quality=q)[0])  # traced quality: one compile
  for q in (5, 20, 50, 80, 95, 100):
    y = np.asarray(fn(q))
    psnrs.append(psnr(y, clean))
    ref = pil_jpeg(img if channels == 3 else img[..., 0], q).reshape(img.shape)
    # Same quality loss as Pillow's libjpeg (its integer DCT differs slightly) ...
    assert abs(psnrs[-1] - psnr(ref, clean)) < 0.3 + 0.01 * psnrs[-1], (q, psnrs[-1])
    assert psnr(y, ref) > 33, q  # ... and nearly the same pixels
    np.testing.assert_allclose(np.round(y * 255), y * 255, atol=1e-4)  # 8-bit levels
  assert all(a < b for a, b in zip(psnrs, psnrs[1:])), psnrs
  assert psnrs[-1] > 40


def test_jpeg_blocking_and_odd_sizes():
  img = natural_uint8()[:45, :59]  # not multiples of 8
  x = jnp.asarray(img[None] / 255.0, jnp.float32)
  err = np.asarray(run(C.jpeg, x, quality=10))[0] - img / 255.0
  jumps = np.abs(np.diff(err, axis=1)).mean(axis=(0, 2))  # between column j and j + 1
  at_edges = jumps[7::8].mean()
  inside = np.delete(jumps, np.s_[7::8]).mean()
  assert at_edges > 1.3 * inside, (at_edges, inside)


def test_jpeg_quality_range_draws_integer_quality_per_image():
  x = jnp.broadcast_to(jnp.asarray(natural_uint8()[None, :32, :32] / 255.0, jnp.float32),
                       (4, 32, 32, 3))
  y = np.asarray(jitted("jpeg")(KEY, x))  # quality range (5, 60)
  # A traced quality compiles once for all fixed qualities.
  fixed = jax.jit(lambda q: run(C.jpeg, x[:1], quality=q)[0])
  outputs = {q: np.asarray(fixed(q)) for q in range(1, 101)}
  found = []
  for i in range(4):
    errors = {q: np.abs(out - y[i]).max() for q, out in outputs.items()}
    found.append(min(errors, key=errors.get))
    assert errors[found[-1]] < 1.01 / 255 and 5 <= found[-1] <= 60
  assert len(set(found)) > 1, found
