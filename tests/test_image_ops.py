"""Tests for restoration.image_ops: padding, buckets, dihedral transforms, luma, channels."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from restoration import image_ops

RNG = np.random.default_rng(0)


def _rand(shape, seed=0):
  return np.random.default_rng(seed).random(shape, dtype=np.float32)


# ---------------------------------------------------------------------------- padding / buckets


@pytest.mark.parametrize("xp", [np, jnp])
def test_pad_crop_round_trip(xp):
  x = xp.asarray(_rand((2, 17, 30, 3)))
  padded, hw = image_ops.pad_to_multiple(x, 16)
  assert padded.shape == (2, 32, 32, 3) and hw == (17, 30)
  assert type(padded) is type(x)
  np.testing.assert_array_equal(np.asarray(image_ops.crop(padded, hw)), np.asarray(x))
  # reflect padding: row 17 mirrors row 15 (edge pixel not repeated)
  np.testing.assert_array_equal(np.asarray(padded[:, 17, :30]), np.asarray(x[:, 15]))
  # already a multiple: unchanged
  same, hw2 = image_ops.pad_to_multiple(x[:, :16, :16], 16)
  assert same.shape == (2, 16, 16, 3) and hw2 == (16, 16)


def test_pad_falls_back_when_image_smaller_than_pad():
  x = _rand((3, 2, 1))  # HWC, tiny
  padded, hw = image_ops.pad_to_multiple(x, 16)
  assert padded.shape == (16, 16, 1)
  np.testing.assert_array_equal(image_ops.crop(padded, hw), x)
  assert np.isfinite(padded).all()
  # pad == size uses symmetric; larger uses edge
  p = image_ops.pad_to_shape(x, (6, 2))
  np.testing.assert_array_equal(p[3:, :, 0], x[::-1, :, 0])
  p = image_ops.pad_to_shape(x, (3, 9))
  np.testing.assert_array_equal(p[:, 2:, 0], np.repeat(x[:, 1:2, 0], 7, axis=1))


def test_bucket_shape():
  assert image_ops.bucket_shape(17, 30, multiple=16) == (32, 32)
  assert image_ops.bucket_shape(32, 33, multiple=16) == (32, 48)
  assert image_ops.bucket_shape(17, 30, multiple=16, bucket=64) == (64, 64)
  assert image_ops.bucket_shape(65, 64, multiple=16, bucket=64) == (128, 64)
  assert image_ops.bucket_shape(10, 10, multiple=1, bucket=None) == (10, 10)
  assert image_ops.bucket_shape(10, 10, multiple=16, bucket=24) == (48, 48)  # lcm(16, 24) = 48


def test_centre_pad_splits_evenly_and_reflects():
  x = np.arange(12, dtype=np.uint8).reshape(3, 4, 1)
  p = image_ops.pad_to_shape(x, (6, 4), centre=True)
  assert p.shape == (6, 4, 1)
  np.testing.assert_array_equal(p[1:4], x)  # 1 row above, 2 below
  np.testing.assert_array_equal(p[0], x[1])  # reflected, edge row not repeated
  np.testing.assert_array_equal(p[4:6], x[[1, 0]])


# ---------------------------------------------------------------------------- dihedral


def _numpy_dihedral(x, t):
  """Independent definition: rot90 by t % 4 on (H, W), then flip rows if t >= 4."""
  y = np.rot90(x, t % 4, axes=(-3, -2))
  return y[..., ::-1, :, :] if t >= 4 else y


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_dihedral_numpy_jax_and_traced_agree(dtype):
  patch = (np.arange(4 * 5 * 3) % 251).astype(dtype).reshape(4, 5, 3)
  square = patch[:4, :4]
  outs = set()
  for t in range(8):
    want = _numpy_dihedral(patch, t)
    got = image_ops.dihedral(patch, t)
    np.testing.assert_array_equal(got, want)
    assert got.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(np.asarray(image_ops.dihedral(jnp.asarray(patch), t)), want)
    traced = jax.jit(image_ops.dihedral)(jnp.asarray(square), jnp.int32(t))
    np.testing.assert_array_equal(np.asarray(traced), _numpy_dihedral(square, t))
    np.testing.assert_array_equal(image_ops.dihedral_inverse(got, t), patch)
    outs.add(got.tobytes())
  assert len(outs) == 8  # eight distinct transforms


def test_dihedral_batched_nhwc():
  x = _rand((2, 3, 5, 1))
  for t in range(8):
    np.testing.assert_array_equal(image_ops.dihedral(x, t), _numpy_dihedral(x, t))


# ---------------------------------------------------------------------------- colour


def test_luma_float_and_uint8():
  rgb = RNG.random((4, 5, 3), dtype=np.float32)
  gray = image_ops.luma(rgb)
  assert gray.shape == (4, 5, 1) and gray.dtype == np.float32
  np.testing.assert_allclose(gray[..., 0], rgb @ np.array([0.299, 0.587, 0.114], np.float32),
                             rtol=1e-6)
  np.testing.assert_allclose(np.asarray(image_ops.luma(jnp.asarray(rgb))), gray, rtol=1e-6)
  u8 = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]]], np.uint8)
  # rounded half up: 0.299 * 255 = 76.245 -> 76; 10, 20, 30 -> 18.15 -> 18
  np.testing.assert_array_equal(image_ops.luma(u8)[0, :, 0], [76, 150, 29, 18])
  all_u8 = RNG.integers(0, 256, (64, 64, 3)).astype(np.uint8)
  c = all_u8.astype(np.int64)
  want = np.floor(0.299 * c[..., 0] + 0.587 * c[..., 1] + 0.114 * c[..., 2] + 0.5 + 1e-9)
  np.testing.assert_array_equal(image_ops.luma(all_u8)[..., 0], want.astype(np.uint8))


def test_to_channels():
  rgb = RNG.random((4, 5, 3), dtype=np.float32)
  gray = image_ops.to_channels(rgb, 1)
  np.testing.assert_array_equal(gray, image_ops.luma(rgb))
  back = image_ops.to_channels(gray, 3)
  assert back.shape == (4, 5, 3) and (back == gray).all()
  np.testing.assert_array_equal(image_ops.to_channels(rgb, 3), rgb)
  assert image_ops.to_channels(rgb[None], 1).shape == (1, 4, 5, 1)  # NHWC too
  white = np.ones((1, 1, 3), np.float32)
  np.testing.assert_allclose(image_ops.to_channels(white, 1), 1.0, rtol=1e-6)
  with pytest.raises(ValueError, match="1 and 3 channels"):
    image_ops.to_channels(rgb, 4)


def test_to_uint8_from_16_bit():
  np.testing.assert_array_equal(
      image_ops.to_uint8(np.array([0, 128, 129, 257, 65535, 70000]), 16),
      [0, 0, 1, 1, 255, 255])
