"""Tests for restoration.any_size: self-ensemble, tiling, bucketing, apply()."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from restoration.any_size import (
    CompileCounter,
    apply,
    blend_window,
    jit_cache_size,
    self_ensemble,
    tile_starts,
    tiled_apply,
)


def _rand(shape, seed=0):
  return np.random.default_rng(seed).random(shape, dtype=np.float32)


# ---------------------------------------------------------------------------- a small conv net


def _conv_params(channels, hidden=8, seed=0):
  rng = np.random.default_rng(seed)  # numpy, not jax.random: threefry compiles slowly on CPU
  dims = [(channels, hidden), (hidden, hidden), (hidden, channels)]
  return [
      (
          jnp.asarray(rng.normal(size=(3, 3, cin, cout)) / np.sqrt(9 * cin), jnp.float32),
          jnp.asarray(0.1 * rng.normal(size=(cout,)), jnp.float32),
      )
      for cin, cout in dims
  ]


def _conv_net(params, x):
  """3 x (3x3 'SAME' conv): receptive-field radius 3, translation equivariant, zero padding."""
  for i, (k, b) in enumerate(params):
    x = (
        jax.lax.conv_general_dilated(
            x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        + b
    )
    if i < len(params) - 1:
      x = jnp.tanh(x)
  return x


def _make_net(channels, seed=0):
  # jit first, then bind params: closed-over params would become compile-time constants
  # (slow XLA constant folding: ~6 s per shape on CPU instead of ~0.1 s).
  return functools.partial(jax.jit(_conv_net), _conv_params(channels, seed=seed))


# ---------------------------------------------------------------------------- self-ensemble


def test_self_ensemble_equivariant_is_exact():
  x = jnp.asarray(_rand((2, 5, 7, 3)))  # non-square
  f = lambda t: jnp.sqrt(t) * 0.7 + 0.1  # noqa: E731  pointwise -> commutes with D4
  np.testing.assert_array_equal(np.asarray(self_ensemble(f, x)), np.asarray(f(x)))
  np.testing.assert_array_equal(np.asarray(self_ensemble(lambda t: t, x)), np.asarray(x))


def test_self_ensemble_matches_manual_average_and_jits():
  x = _rand((1, 6, 9, 2), seed=1)
  ramp_h = lambda n: jnp.arange(n, dtype=jnp.float32)[:, None, None]  # noqa: E731

  def f(t):  # not equivariant: depends on the row index and mixes channels
    return t * (1.0 + ramp_h(t.shape[1])) + t[..., ::-1] ** 2

  variants = []
  for flip in (False, True):
    for k in range(4):
      t = x[:, :, ::-1] if flip else x
      y = np.asarray(f(jnp.asarray(np.rot90(t, k, axes=(1, 2)))))
      y = np.rot90(y, -k, axes=(1, 2))
      variants.append(y[:, :, ::-1] if flip else y)
  expected = np.mean(variants, axis=0)
  got = np.asarray(self_ensemble(f, x))
  np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
  assert not np.allclose(got, np.asarray(f(x)), atol=1e-3)  # the ensemble did something
  jitted = jax.jit(functools.partial(self_ensemble, f))
  np.testing.assert_allclose(np.asarray(jitted(x)), expected, rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------------- tiling


def test_tile_starts_and_window():
  assert tile_starts(50, 16, 8) == [0, 8, 16, 24, 32, 34]  # last one shifted inward
  assert tile_starts(70, 24, 8) == [0, 16, 32, 46]
  assert tile_starts(16, 16, 8) == [0]
  assert tile_starts(10, 16, 8) == [0]
  w = blend_window(16, 8, low_border=False, high_border=False)
  assert (w[:4] == 0).all() and (w[-4:] == 0).all() and (w[4:12] > 0).all()
  np.testing.assert_allclose(w, w[::-1], atol=1e-7)  # both edges taper alike
  long = blend_window(32, 8, low_border=False, high_border=False)
  assert (long[8:24] == 1.0).all() and (long[4:8] < 1.0).all()  # ramps, then a plateau of 1
  w = blend_window(16, 8, low_border=True, high_border=False)
  assert (w[:8] == 1).all() and (w[-4:] == 0).all()
  assert (blend_window(16, 0, low_border=False, high_border=False) == 1).all()


@pytest.mark.parametrize("channels,tile", [(1, 16), (3, 24), (3, 20)])
def test_tiled_equals_untiled(channels, tile):
  net = _make_net(channels)
  x = _rand((50, 70, channels), seed=channels)
  full = np.asarray(net(x[None]))[0]
  tiled = tiled_apply(net, x, tile=tile, overlap=8, batch_tiles=4)
  assert tiled.shape == x.shape and tiled.dtype == np.float32
  assert np.abs(tiled - full).max() < 1e-4
  # Without overlap, tile-edge padding artefacts remain: the test can fail.
  naive = tiled_apply(net, x, tile=tile, overlap=0, batch_tiles=4)
  assert np.abs(naive - full).max() > 1e-2
  # overlap // 2 = 2 < receptive radius 3: no longer exact (the bound is tight)
  short = tiled_apply(net, x, tile=tile, overlap=4, batch_tiles=4)
  assert np.abs(short - full).max() > 1e-3


def test_tiled_batch_small_image_and_single_compile():
  net = CompileCounter(_make_net(3, seed=2))
  x = _rand((2, 50, 70, 3), seed=5)
  full = np.asarray(net.fn(x))
  out = tiled_apply(net, x, tile=16, overlap=8, batch_tiles=8)
  assert out.shape == x.shape and np.abs(out - full).max() < 1e-4
  small = _rand((9, 11, 3), seed=6)  # smaller than a tile: padded to one tile
  out_small = tiled_apply(net, small, tile=16, overlap=8, batch_tiles=8)
  assert out_small.shape == small.shape
  assert net.count == 1 and net.shapes == [((8, 16, 16, 3),)]


def test_tiled_rejects_bad_overlap():
  with pytest.raises(ValueError):
    tiled_apply(lambda t: t, _rand((20, 20, 1)), tile=16, overlap=16)


# ---------------------------------------------------------------------------- apply()


def _needs_multiple(m):
  def f(x):
    assert x.shape[1] % m == 0 and x.shape[2] % m == 0, x.shape
    return x * 2.0 - 0.5

  return f


@pytest.mark.parametrize("hw", [(17, 31), (33, 5), (16, 16), (1, 1)])
def test_restore_odd_sizes_multiple_16(hw):
  x = _rand((2, *hw, 3), seed=hw[0])
  out = apply(_needs_multiple(16), x, multiple=16)
  assert out.shape == x.shape and out.dtype == np.float32 and isinstance(out, np.ndarray)
  np.testing.assert_allclose(out, x * 2.0 - 0.5, atol=1e-6)
  out = apply(_needs_multiple(16), x[0], multiple=16, self_ensemble=True)  # HWC works too
  np.testing.assert_allclose(out, x[0] * 2.0 - 0.5, atol=1e-6)


def test_restore_tiled_and_ensemble_match_untiled():
  net = _make_net(3, seed=3)
  x = _rand((1, 45, 61, 3), seed=7)
  plain = apply(net, x, multiple=4)
  tiled = apply(net, x, multiple=4, tile=24, overlap=8)
  assert tiled.shape == x.shape and np.abs(tiled - plain).max() < 1e-4
  ens = apply(net, x, multiple=4, self_ensemble=True)
  ens_tiled = apply(net, x, multiple=4, tile=24, overlap=8, self_ensemble=True)
  assert np.abs(ens_tiled - ens).max() < 1e-4
  assert np.abs(ens - plain).max() > 1e-4  # the conv net is not rotation-equivariant
  with pytest.raises(ValueError):  # tile 16, overlap 8 -> 16 with multiple 16: no stride left
    apply(net, x, multiple=16, tile=16, overlap=8)


def test_restore_compiles_once_per_bucket():
  jitted = jax.jit(_needs_multiple(16))
  counter = CompileCounter(jitted)
  sizes = [(17, 20), (33, 47), (64, 64), (50, 3), (40, 63)]  # all in the 64 x 64 bucket
  for i, (h, w) in enumerate(sizes):
    x = _rand((1, h, w, 1), seed=i)
    out = apply(counter, x, multiple=16, bucket=64)
    assert out.shape == x.shape
    np.testing.assert_allclose(out, x * 2.0 - 0.5, atol=1e-6)
  assert counter.calls == 5 and counter.count == 1
  assert counter.shapes == [((1, 64, 64, 1),)]
  assert jit_cache_size(jitted) == 1  # jax's own cache agrees
  # without buckets each size is its own shape
  per_size = CompileCounter(jax.jit(_needs_multiple(16)))
  for i, (h, w) in enumerate(sizes):
    apply(per_size, _rand((1, h, w, 1), seed=i), multiple=16)
  assert per_size.count == 5  # (32, 32), (48, 48), (64, 64), (64, 16), (48, 64)
  # next bucket compiles once more
  apply(counter, _rand((1, 65, 10, 1)), multiple=16, bucket=64)
  assert counter.count == 2


def test_jit_cache_size_available():
  f = jax.jit(lambda x: x + 1)
  f(np.zeros(3, np.float32))
  f(np.ones(3, np.float32))
  f(np.zeros(4, np.float32))
  assert jit_cache_size(f) == 2
  assert jit_cache_size(lambda x: x) is None
  g = jax.jit(lambda p, x: x * p)
  bound = functools.partial(g, 2.0)  # jit-then-bind, as callers bind params
  bound(np.zeros(3, np.float32))
  assert jit_cache_size(bound) == 1
