"""restoration.models.conv: the im2col weight-gradient Conv equals flax/XLA's convolution."""

import itertools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from restoration.models import conv as conv_lib
from restoration.models import get_model
from restoration.models.conv import Conv, weight_grad

_CASES = [  # (strides, padding, kernel_dilation, kernel, hw)
    ((1, 1), "SAME", 1, (3, 3), (9, 7)),
    ((2, 2), "SAME", 1, (3, 3), (9, 7)),
    ((1, 1), "VALID", 1, (3, 3), (8, 11)),
    ((2, 1), "VALID", 1, (4, 4), (11, 9)),
    ((1, 1), ((1, 2), (0, 1)), 1, (3, 3), (7, 7)),
    ((2, 2), ((2, 0), (-1, 1)), 1, (3, 2), (10, 9)),
    ((1, 1), "SAME", 2, (3, 3), (9, 8)),
    ((2, 2), "VALID", (2, 1), (3, 3), (13, 9)),
    ((1, 1), "SAME", 1, (1, 1), (5, 6)),
]


def _pair(cin, case, bias, dtype):
  strides, padding, dil, kernel, hw = case
  kw = dict(features=4, kernel_size=kernel, strides=strides, padding=padding,
            kernel_dilation=dil, use_bias=bias, dtype=dtype)
  x = jax.random.normal(jax.random.key(1), (3,) + hw + (cin,), jnp.float32)
  return Conv(**kw), nn.Conv(**kw), x


def _loss(model):
  def f(params, x):
    y = model.apply({"params": params}, x).astype(jnp.float32)
    return jnp.sum(jnp.sin(y))     # non-constant output gradient
  return jax.value_and_grad(f, argnums=(0, 1))


@pytest.mark.parametrize("case,cin,bias", [
    (c, cin, b) for c, (cin, b) in zip(_CASES, itertools.cycle([(1, True), (3, False),
                                                                (3, True), (1, False)]))])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_matches_flax_conv(case, cin, bias, dtype):
  fast, ref, x = _pair(cin, case, bias, dtype)
  params = ref.init(jax.random.key(0), x)["params"]
  # Same parameter names, shapes and initial values as flax.linen.Conv.
  assert jax.tree.map(jnp.shape, fast.init(jax.random.key(0), x)["params"]) == \
      jax.tree.map(jnp.shape, params)
  (lf, (gpf, gxf)), (lr, (gpr, gxr)) = (jax.jit(_loss(m))(params, x) for m in (fast, ref))
  tol = 1e-4 if dtype == jnp.float32 else 3e-2
  np.testing.assert_allclose(lf, lr, rtol=tol, atol=tol)
  np.testing.assert_allclose(gxf, gxr, rtol=tol, atol=tol)
  scale = float(jnp.max(jnp.abs(gpr["kernel"])))
  np.testing.assert_allclose(gpf["kernel"] / scale, gpr["kernel"] / scale, rtol=tol, atol=tol)
  assert gpf["kernel"].dtype == jnp.float32
  if bias:
    np.testing.assert_allclose(gpf["bias"], gpr["bias"], rtol=tol, atol=tol)


def _numpy_weight_grad(x, dy, kshape, strides, pads, dil):
  """Direct sum: dW[i, j, c, o] = sum_{n, p, q} xpad[n, p*s + i*d, q*s + j*d, c] dy[n, p, q, o]."""
  kh, kw, c, o = kshape
  xp = np.zeros((x.shape[0], x.shape[1] + 60, x.shape[2] + 60, c), np.float64)
  xp[:, 30 + pads[0][0]:, 30 + pads[1][0]:][:, :x.shape[1], :x.shape[2]] = x
  xp = xp[:, 30:, 30:]    # origin at the padded top-left (negative pads crop)
  out = np.zeros(kshape, np.float64)
  ho, wo = dy.shape[1:3]
  for i in range(kh):
    for j in range(kw):
      view = xp[:, i * dil[0]:i * dil[0] + (ho - 1) * strides[0] + 1:strides[0],
                j * dil[1]:j * dil[1] + (wo - 1) * strides[1] + 1:strides[1]]
      out[i, j] = np.einsum("nhwc,nhwo->co", view, dy)
  return out


@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
@pytest.mark.parametrize("chunk_bytes", [None, 1, 2000, 10 ** 9])
@pytest.mark.parametrize("strides,pads,dil", [((1, 1), ((1, 1), (1, 1)), (1, 1)),
                                              ((2, 2), ((2, 1), (-1, 2)), (1, 2))])
def test_weight_grad_numpy(chunk_bytes, strides, pads, dil, layout):
  # chunk_bytes=1 forces one output row per step (band path), 2000 a batch remainder or
  # bands of several rows, 1e9 the whole batch at once.
  rng = np.random.default_rng(0)
  x = rng.standard_normal((5, 11, 9, 3)).astype(np.float32)
  kshape = (3, 3, 3, 2)
  ho = (11 + sum(pads[0]) - (2 * dil[0] + 1)) // strides[0] + 1
  wo = (9 + sum(pads[1]) - (2 * dil[1] + 1)) // strides[1] + 1
  dy = rng.standard_normal((5, ho, wo, 2)).astype(np.float32)
  got = weight_grad(jnp.asarray(x), jnp.asarray(dy), kshape, strides, pads, dil,
                    chunk_bytes=chunk_bytes, layout=layout)
  want = _numpy_weight_grad(x, dy, kshape, strides, pads, dil)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
  # and the same as XLA's own gradient of the convolution
  _, vjp = jax.vjp(lambda w: lax.conv_general_dilated(
      jnp.asarray(x), w, strides, pads, rhs_dilation=dil,
      dimension_numbers=("NHWC", "HWIO", "NHWC")), jnp.zeros(kshape))
  np.testing.assert_allclose(got, vjp(jnp.asarray(dy))[0], rtol=1e-4, atol=1e-4)


def _uses_custom_vjp(model, x):
  params = model.init(jax.random.key(0), x)["params"]
  jaxpr = jax.make_jaxpr(jax.grad(lambda p: model.apply({"params": p}, x).sum()))(params)
  return "custom_vjp" in str(jaxpr)


@pytest.fixture(autouse=True)
def _always_fast(monkeypatch):
  """These tests check the fast path itself, on small shapes: take it wherever it applies."""
  monkeypatch.setenv("RESTORATION_FAST_CPU_CONV", "1")


def test_patch_layout_rule_and_channels_last_through_conv():
  # The rule: NHWC patches for >= 256 channels on 16x16..32x32 maps (the U-Net's deep convs),
  # channel-major for DnCNN's 64 channels, the U-Net's top levels and its 8x8 bottleneck.
  assert conv_lib.channels_last(256, 32, 32) and conv_lib.channels_last(1024, 16, 16)
  assert not conv_lib.channels_last(64, 40, 40) and not conv_lib.channels_last(128, 64, 64)
  assert not conv_lib.channels_last(1024, 8, 8) and not conv_lib.channels_last(256, 64, 64)
  with pytest.raises(ValueError, match="layout='nchw'; allowed: channels_first, "
                     "channels_last"):
    weight_grad(jnp.ones((1, 4, 4, 2)), jnp.ones((1, 4, 4, 2)), (3, 3, 2, 2), (1, 1),
                ((1, 1), (1, 1)), (1, 1), layout="nchw")
  # A conv the rule sends down the NHWC path: gradients equal flax's.
  kw = dict(features=8, kernel_size=(3, 3), padding="SAME")
  x = jax.random.normal(jax.random.key(1), (2, 16, 16, 256), jnp.float32)
  params = nn.Conv(**kw).init(jax.random.key(0), x)["params"]
  (_, (gpf, gxf)), (_, (gpr, gxr)) = (jax.jit(_loss(m))(params, x)
                                      for m in (Conv(**kw), nn.Conv(**kw)))
  np.testing.assert_allclose(gxf, gxr, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(gpf["kernel"], gpr["kernel"], rtol=1e-4, atol=1e-3)


def test_auto_takes_the_fast_path_only_for_big_weight_gradients(monkeypatch):
  monkeypatch.setenv("RESTORATION_FAST_CPU_CONV", "auto")
  assert not _uses_custom_vjp(Conv(8, (3, 3)), jnp.ones((2, 16, 16, 8)))  # 0.6 MFLOP
  # DnCNN's 64->64 layer at batch 128 of 40x40 is 15 GFLOP; this one is 0.6 GFLOP.
  big = jax.ShapeDtypeStruct((32, 32, 32, 32), jnp.float32)
  assert conv_lib._worth_it(big.shape, (3, 3, 32, 32), (1, 1))  # pylint: disable=protected-access
  assert not conv_lib._worth_it(big.shape, (3, 3, 32, 32), (2, 2))  # pylint: disable=protected-access


def test_switch_and_fallbacks(monkeypatch):
  x = jnp.ones((2, 8, 8, 3))
  assert jax.default_backend() != "cpu" or _uses_custom_vjp(Conv(4, (3, 3)), x)
  # Grouped (depthwise) and input-dilated convs take XLA's path.
  assert not _uses_custom_vjp(Conv(3, (3, 3), feature_group_count=3), x)
  assert not _uses_custom_vjp(Conv(4, (3, 3), input_dilation=2, padding=((1, 1), (1, 1))), x)
  monkeypatch.setenv("RESTORATION_FAST_CPU_CONV", "0")
  assert not conv_lib.fast_path_enabled()
  assert not _uses_custom_vjp(Conv(4, (3, 3)), x)
  monkeypatch.setenv("RESTORATION_FAST_CPU_CONV", "maybe")
  with pytest.raises(ValueError, match="RESTORATION_FAST_CPU_CONV"):
    Conv(4, (3, 3)).init(jax.random.key(0), x)
  monkeypatch.setenv("RESTORATION_FAST_CPU_CONV", "1")
  monkeypatch.setenv("RESTORATION_CONV_CHUNK_MB", "-2")
  with pytest.raises(ValueError, match="RESTORATION_CONV_CHUNK_MB"):
    Conv(4, (3, 3)).init(jax.random.key(0), x)


# ------------------------------------------------- the mosaic of narrow images (forward, dx)

def test_mosaic_rule(monkeypatch):
  """Which convs are run as a mosaic: 'SAME' stride-1 undilated only; in 'auto' only the
  measured-slow shapes (many narrow images, <= 64 channels), never the U-Net's batch of 8."""
  tiles = conv_lib.mosaic_tiles
  same3 = ((1, 1), (1, 1))
  monkeypatch.setenv("RESTORATION_FAST_CPU_CONV", "auto")
  assert tiles((128, 40, 40, 64), (3, 3, 64, 64), (1, 1), same3, (1, 1)) == 32  # 32*42 <= 2048
  assert tiles((8, 128, 128, 64), (3, 3, 64, 64), (1, 1), same3, (1, 1)) == 1
  assert tiles((32, 40, 40, 128), (3, 3, 128, 128), (1, 1), same3, (1, 1)) == 1
  monkeypatch.setenv("RESTORATION_FAST_CPU_CONV", "1")
  assert tiles((6, 5, 7, 3), (3, 3, 3, 4), (1, 1), same3, (1, 1)) == 6
  assert tiles((6, 5, 7, 3), (5, 3, 3, 4), (1, 1), ((2, 2), (1, 1)), (1, 1)) == 6
  assert tiles((7, 5, 700, 3), (3, 3, 3, 4), (1, 1), same3, (1, 1)) == 1   # 7 * 702 > 2048
  assert tiles((6, 5, 7, 3), (3, 3, 3, 4), (2, 2), same3, (1, 1)) == 1      # strided
  assert tiles((6, 5, 7, 3), (3, 3, 3, 4), (1, 1), ((1, 2), (1, 1)), (1, 1)) == 1  # not SAME
  assert tiles((6, 5, 7, 3), (3, 3, 3, 4), (1, 1), ((2, 2), (2, 2)), (2, 2)) == 1  # dilated
  assert tiles((1, 5, 7, 3), (3, 3, 3, 4), (1, 1), same3, (1, 1)) == 1      # one image


@pytest.mark.parametrize("n,hw,kernel,cin", [(6, (5, 7), (3, 3), 3), (4, (6, 4), (5, 3), 2),
                                             (8, (3, 3), (1, 1), 1)])
def test_mosaic_equals_per_image_conv(n, hw, kernel, cin):
  """Images side by side in one conv: outputs and both gradients equal XLA's per-image conv;
  the rule above takes the mosaic here ('1' mode), so this is the path under test."""
  x = jax.random.normal(jax.random.key(4), (n,) + hw + (cin,), jnp.float32)
  w = jax.random.normal(jax.random.key(5), kernel + (cin, 3), jnp.float32)
  pads = tuple(((k - 1) // 2,) * 2 for k in kernel)
  assert conv_lib.mosaic_tiles(x.shape, w.shape, (1, 1), pads, (1, 1)) > 1
  dn = ("NHWC", "HWIO", "NHWC")
  loss = lambda f: jax.jit(jax.value_and_grad(
      lambda x, w: jnp.sum(jnp.sin(f(x, w, (1, 1), "SAME", dimension_numbers=dn))),
      argnums=(0, 1)))
  (l, (gx, gw)) = loss(conv_lib.conv_general_dilated)(x, w)
  (lr, (gxr, gwr)) = loss(lax.conv_general_dilated)(x, w)
  np.testing.assert_allclose(l, lr, rtol=1e-5)
  np.testing.assert_allclose(gx, gxr, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(gw, gwr, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name,kw,count", [
    ("dncnn", dict(depth=4, features=8), 9 * 8 + 8 + 2 * (9 * 64 + 16) + 9 * 8 + 1),
    ("cnn", dict(depth=3, features=8), 9 * 8 + 8 + 9 * 64 + 8 + 9 * 8 + 1)])
def test_zoo_grads_unchanged(monkeypatch, name, kw, count):
  """A zoo model's params and gradients are the same with and without the fast path."""
  model = get_model(name, **kw)
  x = jax.random.uniform(jax.random.key(2), (2, 10, 9, 1))
  variables = model.init(jax.random.key(0), x, train=False)
  assert sum(p.size for p in jax.tree.leaves(variables["params"])) == count

  def grads():
    def loss(p):
      y, _ = model.apply({**variables, "params": p}, x, train=True, mutable=["batch_stats"])
      return jnp.mean((y - 0.5) ** 2)
    return jax.jit(jax.grad(loss))(variables["params"])

  fast = grads()
  monkeypatch.setenv("RESTORATION_FAST_CPU_CONV", "0")
  plain = grads()
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), fast, plain)


# ------------------------------------------- up-sampling and pooling as GEMM / reshape forms

@pytest.mark.parametrize("switch", ["auto", "0"])     # einsum form on CPU; lax.conv_transpose
@pytest.mark.parametrize("stride,hw,bias,dtype", [
    (2, (5, 7), True, jnp.float32), (3, (4, 3), False, jnp.float32),
    (2, (6, 6), True, jnp.bfloat16)])
def test_conv_transpose_matches_flax(monkeypatch, switch, stride, hw, bias, dtype):
  """Same params (tree, shapes, init), outputs and gradients (params and input) as flax's."""
  monkeypatch.setenv("RESTORATION_FAST_CPU_CONV", switch)
  kw = dict(features=5, kernel_size=(stride, stride), strides=(stride, stride),
            padding="SAME", use_bias=bias, dtype=dtype)
  ours, ref = conv_lib.ConvTranspose(**kw), nn.ConvTranspose(**kw)
  x = jax.random.normal(jax.random.key(2), (2,) + hw + (3,), jnp.float32)
  params = ours.init(jax.random.key(0), x)["params"]
  ref_params = ref.init(jax.random.key(0), x)["params"]
  assert jax.tree.structure(params) == jax.tree.structure(ref_params)
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(ref_params), strict=True):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  y, y_ref = ours.apply({"params": params}, x), ref.apply({"params": params}, x)
  assert y.shape == y_ref.shape == (2, hw[0] * stride, hw[1] * stride, 5) and y.dtype == dtype
  tol = 2e-2 if dtype == jnp.bfloat16 else 1e-5
  np.testing.assert_allclose(np.asarray(y, np.float32), np.asarray(y_ref, np.float32),
                             atol=tol, rtol=tol)
  g = _loss(ours)(params, x)        # (loss, (param grads, input grad))
  g_ref = _loss(ref)(params, x)
  for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g_ref), strict=True):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=20 * tol, rtol=tol)


def test_conv_transpose_refuses_overlapping_kernels():
  x = jnp.zeros((1, 4, 4, 2))
  with pytest.raises(ValueError, match="kernel_size == strides"):
    conv_lib.ConvTranspose(3, (3, 3), strides=(2, 2)).init(jax.random.key(0), x)


@pytest.mark.parametrize("window,hw", [(2, (8, 6)), (2, (7, 9)), (3, (10, 7))])
def test_max_pool_matches_flax(window, hw):
  """Values and (tie-free) gradients equal nn.max_pool's, odd sizes cropped as VALID."""
  x = jax.random.normal(jax.random.key(3), (2,) + hw + (3,), jnp.float32)
  ref = lambda x: nn.max_pool(x, (window, window), strides=(window, window))
  ours = lambda x: conv_lib.max_pool(x, window)
  np.testing.assert_array_equal(np.asarray(ours(x)), np.asarray(ref(x)))
  grad = lambda f: jax.grad(lambda x: jnp.sum(jnp.sin(3.0 * f(x))))(x)
  np.testing.assert_allclose(np.asarray(grad(ours)), np.asarray(grad(ref)), atol=1e-6)


def test_max_pool_splits_ties():
  x = jnp.zeros((1, 2, 2, 1)).at[0, 0, 0, 0].set(1.0).at[0, 1, 1, 0].set(1.0)
  g = jax.grad(lambda x: jnp.sum(conv_lib.max_pool(x)))(x)
  np.testing.assert_allclose(np.asarray(g)[0, :, :, 0], [[0.5, 0.0], [0.0, 0.5]])
