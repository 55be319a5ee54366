"""restoration.models.winograd: the F(4x4, 3x3) weight gradient equals the direct sum and
XLA's gradient; `conv.weight_grad_method` sends the right convs to it."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from restoration.models import conv as conv_lib
from restoration.models import winograd
from tests.test_conv import _loss, _numpy_weight_grad


def _xla_weight_grad(x, dy, kshape, pads):
  _, vjp = jax.vjp(lambda w: lax.conv_general_dilated(
      x, w, (1, 1), pads, dimension_numbers=("NHWC", "HWIO", "NHWC")), jnp.zeros(kshape))
  return vjp(dy)[0]


@pytest.mark.parametrize("chunk_bytes", [1, 3000, 40000, 10 ** 9])
@pytest.mark.parametrize("shape,cout,pads", [
    ((5, 13, 10, 3), 2, ((1, 1), (1, 1))),      # SAME, sizes not multiples of 4
    ((3, 9, 11, 1), 3, ((0, 0), (0, 0))),       # VALID, gray input
    ((2, 17, 6, 4), 1, ((2, 1), (0, 3))),       # asymmetric padding, one output channel
    ((4, 8, 8, 2), 2, ((1, 1), (1, 1))),        # whole tiles
    ((1, 1, 1, 2), 2, ((1, 1), (1, 1))),        # one pixel
])
def test_weight_grad_matches_direct_sum(shape, cout, pads, chunk_bytes):
  # chunk_bytes=1: one tile row per scan step (band path); 3000 / 40000: bands of several
  # rows or whole images with a batch remainder; 1e9: the whole batch in one step.
  rng = np.random.default_rng(0)
  x = rng.standard_normal(shape).astype(np.float32)
  kshape = (3, 3, shape[-1], cout)
  ho, wo = (shape[i + 1] + sum(pads[i]) - 2 for i in range(2))
  dy = rng.standard_normal((shape[0], ho, wo, cout)).astype(np.float32)
  got = jax.jit(lambda x, dy: winograd.weight_grad(x, dy, kshape, pads,
                                                   chunk_bytes=chunk_bytes))(x, dy)
  assert got.shape == kshape and got.dtype == jnp.float32
  want = _numpy_weight_grad(x, dy, kshape, (1, 1), pads, (1, 1))
  scale = np.abs(want).max()
  # F(4x4, 3x3)'s transforms cost about a decimal digit in float32 (see the DnCNN-scale test):
  # jax 0.10 stays under 2e-6 here, jax 0.12's XLA reaches 2.1e-6 on one entry.
  np.testing.assert_allclose(np.asarray(got) / scale, want / scale, atol=5e-6)
  np.testing.assert_allclose(got, _xla_weight_grad(x, dy, kshape, pads), rtol=1e-4,
                             atol=1e-4 * scale)


def test_weight_grad_at_dncnn_scale_is_accurate():
  """A DnCNN-like layer (many 40x40 images, 16 channels): error under 1e-5 of the largest
  entry (measured 6e-6 here, im2col 6e-7: F(4x4, 3x3)'s transforms cost about a decimal digit
  in float32, as known for it; at DnCNN's full shape both are ~2e-5, benchmarks/weight_grad.py)."""
  key = jax.random.key(0)
  x = jax.random.normal(key, (16, 40, 40, 16))
  dy = jax.random.normal(jax.random.fold_in(key, 1), (16, 40, 40, 16))
  pads = ((1, 1), (1, 1))
  want = _xla_weight_grad(x, dy, (3, 3, 16, 16), pads)
  got = winograd.weight_grad(x, dy, (3, 3, 16, 16), pads, chunk_bytes=2 ** 20)
  scale = float(jnp.abs(want).max())
  err = float(jnp.abs(got - want).max()) / scale
  assert err < 1e-5, err


def test_refuses_other_kernels():
  with pytest.raises(ValueError, match="3x3 kernels, got 5x5"):
    winograd.weight_grad(jnp.ones((1, 8, 8, 1)), jnp.ones((1, 8, 8, 1)), (5, 5, 1, 1),
                         ((2, 2), (2, 2)), chunk_bytes=2 ** 20)


def test_method_rule_and_switch(monkeypatch):
  method = conv_lib.weight_grad_method
  same = ((1, 1), (1, 1))
  f32 = lambda shape: jax.ShapeDtypeStruct(shape, jnp.float32)
  # 'auto': DnCNN's and the U-Net's maps from 16x16 up; not its 8x8 bottleneck.
  assert method(f32((128, 40, 40, 64)), (3, 3, 64, 64), (1, 1), same, (1, 1)) == "winograd"
  assert method(f32((8, 16, 16, 512)), (3, 3, 512, 512), (1, 1), same, (1, 1)) == "winograd"
  assert method(f32((8, 8, 8, 1024)), (3, 3, 1024, 1024), (1, 1), same, (1, 1)) == "im2col"
  # Not applicable: bfloat16, other kernels, strides, dilation, negative padding.
  big = (8, 32, 32, 8)
  assert method(jax.ShapeDtypeStruct(big, jnp.bfloat16), (3, 3, 8, 8), (1, 1), same,
                (1, 1)) == "im2col"
  assert method(f32(big), (5, 5, 8, 8), (1, 1), ((2, 2), (2, 2)), (1, 1)) == "im2col"
  assert method(f32(big), (3, 3, 8, 8), (2, 2), same, (1, 1)) == "im2col"
  assert method(f32(big), (3, 3, 8, 8), (1, 1), ((2, 2), (2, 2)), (2, 2)) == "im2col"
  assert method(f32(big), (3, 3, 8, 8), (1, 1), ((-1, 1), (1, 1)), (1, 1)) == "im2col"
  monkeypatch.setenv("RESTORATION_CONV_WEIGHT_GRAD", "winograd")
  assert method(f32((8, 8, 8, 1024)), (3, 3, 1024, 1024), (1, 1), same, (1, 1)) == "winograd"
  monkeypatch.setenv("RESTORATION_CONV_WEIGHT_GRAD", "im2col")
  assert method(f32((128, 40, 40, 64)), (3, 3, 64, 64), (1, 1), same, (1, 1)) == "im2col"
  monkeypatch.setenv("RESTORATION_CONV_WEIGHT_GRAD", "fft")
  with pytest.raises(ValueError, match="RESTORATION_CONV_WEIGHT_GRAD='fft'; allowed: auto, "
                     "winograd, im2col"):
    method(f32(big), (3, 3, 8, 8), (1, 1), same, (1, 1))


@pytest.mark.parametrize("padding,bias", [("SAME", False), ("VALID", True)])
def test_through_conv_matches_flax(monkeypatch, padding, bias):
  """A Conv whose weight gradient the rule sends to Winograd: loss and gradients equal flax's
  (and Winograd did run: counted)."""
  monkeypatch.setenv("RESTORATION_FAST_CPU_CONV", "1")
  calls = []
  original = winograd.weight_grad
  monkeypatch.setattr(winograd, "weight_grad", lambda *a, **k: calls.append(1) or original(
      *a, **k))
  kw = dict(features=5, kernel_size=(3, 3), padding=padding, use_bias=bias)
  x = jax.random.normal(jax.random.key(1), (3, 18, 21, 4), jnp.float32)
  params = nn.Conv(**kw).init(jax.random.key(0), x)["params"]
  (lf, (gpf, gxf)), (lr, (gpr, gxr)) = (jax.jit(_loss(m))(params, x)
                                        for m in (conv_lib.Conv(**kw), nn.Conv(**kw)))
  assert calls, "the Winograd weight gradient was not used"
  np.testing.assert_allclose(lf, lr, rtol=1e-5)
  np.testing.assert_allclose(gxf, gxr, rtol=1e-4, atol=1e-4)
  scale = float(jnp.max(jnp.abs(gpr["kernel"])))
  np.testing.assert_allclose(gpf["kernel"] / scale, gpr["kernel"] / scale, atol=1e-5)
