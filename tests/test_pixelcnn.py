"""Tests for the conditional Gated PixelCNN and restoration.models.pixelcnn_decode.

Tiny models (3 layers, 8 features, 5x7 images) with NumPy-filled variables (no initialiser
compilation); causality is checked on the exact Jacobian of the logits.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
import scipy.stats

from configs import common
from restoration.models import pixelcnn_decode as ar
from restoration import tasks
from restoration.models import get_model
from restoration.models.pixelcnn import PixelCNN

H, W, LAYERS = 5, 7, 3


def _model(**kw):
  return PixelCNN(**{**dict(features=8, layers=LAYERS, cond_features=4), **kw})


def _variables(model, c, seed=0, cond_c=2):
  """init's exact tree filled by NumPy: kernels ~ N(0, 1/fan_in), biases ~ 0.1 N(0, 1)."""
  x = jax.ShapeDtypeStruct((1, H, W, c), jnp.float32)
  s = jax.ShapeDtypeStruct((1, H, W, cond_c), jnp.float32)
  shapes = jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0), x, s)
  rng = np.random.default_rng(seed)

  def fill(path, leaf):
    if path[-1].key == "bias":
      return jnp.asarray(0.1 * rng.standard_normal(leaf.shape), jnp.float32)
    fan_in = np.prod(leaf.shape[:-1])
    return jnp.asarray(rng.standard_normal(leaf.shape) / np.sqrt(fan_in), jnp.float32)

  return jax.tree_util.tree_map_with_path(fill, shapes)


def _context_free(model, c, bias):
  """Every parameter zero except the logit bias: logits == bias (C*256,) at every pixel."""
  v = jax.tree.map(jnp.zeros_like, _variables(model, c))
  v["params"]["head1"]["bias"] = jnp.asarray(bias, jnp.float32).reshape(-1)
  return v


def _cond(c=2, n=1, seed=1):
  return jax.random.uniform(jax.random.key(seed), (n, H, W, c))


@functools.lru_cache(maxsize=None)
def _apply_fn(model):
  """One apply_fn object per model, so the decoding loops compile once per model."""
  return functools.partial(model.apply, train=False)


@functools.lru_cache(maxsize=None)
def _logits_fn(model):
  """Jitted forward pass: one XLA compile per shape instead of one per eager op."""
  return jax.jit(_apply_fn(model))


# --- Model -------------------------------------------------------------------------------------

@pytest.mark.parametrize("c", [1, 3])
def test_causality_exact_and_no_blind_spot(c):
  model, cond = _model(), _cond()
  variables = _variables(model, c)
  x = jax.random.uniform(jax.random.key(2), (1, H, W, c))
  # The full Jacobian (every logit w.r.t. every clean sub-pixel); forward mode because the
  # input (H*W*C) is 256x smaller than the output: same matrix as jacrev, ~5x less time.
  jac = jax.jit(jax.jacfwd(lambda x: _logits_fn(model)(variables, x, cond)))(x)
  # dep[i, j, ch, i', j', ch']: total |d logits[i, j, ch, :]| / |d x[i', j', ch']|.
  dep = np.abs(np.asarray(jac)).sum(axis=4)[0, :, :, :, 0]
  n = H * W * c
  flat = dep.reshape(n, n)   # row/column index = raster-then-channel position
  assert np.all(np.triu(flat) == 0.0)        # nothing at or after the position itself
  for i in range(H):
    for j in range(W):
      for ch in range(c):
        d = dep[i, j, ch]
        assert np.all(d[i, j, :ch] > 0)        # earlier channels of the same pixel
        if j > 0:
          assert np.all(d[i, j - 1] > 0)       # left neighbour
        if i > 0:
          assert np.all(d[i - 1, j] > 0)       # above
          # No blind spot: the up-right pixels reach (i, j) out to LAYERS columns (each
          # vertical layer widens by kernel_size // 2 = 1); one further is out of range.
          assert np.all(d[i - 1, j + 1:j + LAYERS + 1] > 0)
          assert np.all(d[i - 1, j + LAYERS + 1:] == 0)
  # The corrupted image reaches even the first sub-pixel, which sees no clean context.
  jc = jax.jit(jax.jacrev(lambda s: _logits_fn(model)(variables, x, s)[0, 0, 0, 0]))(cond)
  assert float(jnp.abs(jc).sum()) > 0


@pytest.mark.parametrize("c,h,w", [(1, 5, 7), (3, 5, 7), (3, 1, 1)])
def test_shapes_and_normalised_distribution(c, h, w):
  model = _model()
  variables = _variables(model, c)
  u8 = jax.random.randint(jax.random.key(0), (2, h, w, c), 0, 256).astype(jnp.uint8)
  cond = jax.random.uniform(jax.random.key(1), (2, h, w, 2))
  logits = _logits_fn(model)(variables, u8, cond)
  assert logits.shape == (2, h, w, c, 256) and logits.dtype == jnp.float32
  np.testing.assert_allclose(jax.nn.softmax(logits, axis=-1).sum(-1), 1.0, atol=1e-5)
  # uint8 v and float v / 255 are the same input.
  as_float = _logits_fn(model)(variables, u8.astype(jnp.float32) / 255, cond)
  np.testing.assert_allclose(as_float, logits, atol=1e-5)


def test_bfloat16_compute_float32_params():
  model, cond = _model(dtype=jnp.bfloat16), _cond()
  variables = _variables(model, 3)
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(variables))
  x = jax.random.uniform(jax.random.key(2), (1, H, W, 3))
  y16 = _logits_fn(model)(variables, x, cond)
  y32 = _logits_fn(_model())(variables, x, cond)
  assert y16.dtype == jnp.float32
  np.testing.assert_allclose(y16, y32, atol=0.1)


def test_bad_inputs_raise_value_error():
  model = _model()
  variables = _variables(model, 1)
  with pytest.raises(ValueError, match="same N, H, W"):
    model.apply(variables, jnp.zeros((1, H, W, 1)), jnp.zeros((1, H, W + 1, 2)), train=False)
  with pytest.raises(ValueError, match="features >= channels"):
    _model(features=2).init(jax.random.key(0), jnp.zeros((1, H, W, 3)),
                            jnp.zeros((1, H, W, 3)), train=False)
  with pytest.raises(ValueError, match="kernel_size"):
    _model(kernel_size=4).init(jax.random.key(0), jnp.zeros((1, H, W, 1)),
                               jnp.zeros((1, H, W, 1)), train=False)


def test_registered_as_pixelcnn():
  model = get_model("pixelcnn", features=8, layers=2, dtype="bfloat16")
  assert isinstance(model, PixelCNN) and model.layers == 2 and model.dtype == jnp.bfloat16


# --- Likelihood --------------------------------------------------------------------------------

def test_nll_equals_numpy_log_softmax():
  model, cond = _model(), _cond(n=2)
  variables = _variables(model, 3)
  clean = jax.random.randint(jax.random.key(3), (2, H, W, 3), 0, 256).astype(jnp.uint8)
  logits = _logits_fn(model)(variables, clean, cond)
  nats, bpd = ar.nll(logits, clean)
  logp = scipy.special.log_softmax(np.asarray(logits, np.float64), axis=-1)
  ref = -np.take_along_axis(logp, np.asarray(clean)[..., None].astype(int), -1)
  ref = ref.reshape(2, -1).sum(1)
  np.testing.assert_allclose(nats, ref, rtol=1e-5)
  np.testing.assert_allclose(bpd, ref / (H * W * 3 * np.log(2)), rtol=1e-5)


def test_uniform_logits_are_8_bits_per_dim():
  clean = jax.random.randint(jax.random.key(0), (3, H, W, 3), 0, 256).astype(jnp.uint8)
  nats, bpd = ar.nll(jnp.zeros(clean.shape + (256,)), clean)
  np.testing.assert_allclose(bpd, 8.0, rtol=1e-6)
  np.testing.assert_allclose(nats, H * W * 3 * np.log(256), rtol=1e-6)


def test_nll_rejects_bad_arguments():
  clean = jnp.zeros((1, H, W, 1), jnp.uint8)
  with pytest.raises(ValueError, match="clean.shape"):
    ar.nll(jnp.zeros((1, H, W, 1, 255)), clean)
  with pytest.raises(ValueError, match="integer"):
    ar.nll(jnp.zeros((1, H, W, 1, 256)), clean.astype(jnp.float32))


# --- Sampling and decoding ---------------------------------------------------------------------

def test_sampling_reproducible_per_key():
  model, cond = _model(), _cond(n=2)
  variables = _variables(model, 1)
  fn = _apply_fn(model)
  a = ar.sample(fn, variables, cond, jax.random.key(5), channels=1)
  b = ar.sample(fn, variables, cond, jax.random.key(5), channels=1)
  c = ar.sample(fn, variables, cond, jax.random.key(6), channels=1)
  assert a.shape == (2, H, W, 1) and a.dtype == jnp.uint8
  np.testing.assert_array_equal(a, b)
  assert np.mean(np.asarray(a) != np.asarray(c)) > 0.5   # ~all 256-way draws differ
  with pytest.raises(ValueError, match="temperature"):
    ar.sample(fn, variables, cond, jax.random.key(5), temperature=0.0)


def test_decode_follows_the_model():
  # With a context-dependent model, the decoded image is a fixed point of its own greedy
  # rule: every sub-pixel is the argmax (or rounded mean) of the logits given the image.
  model, cond = _model(), _cond(n=2)
  variables = _variables(model, 3, seed=4)
  fn = _apply_fn(model)
  x = ar.decode_mode(fn, variables, cond, channels=3)
  logits = _logits_fn(model)(variables, x, cond)
  np.testing.assert_array_equal(x, jnp.argmax(logits, -1))
  assert len(np.unique(np.asarray(x))) > 1
  m = ar.decode_mean(fn, variables, cond, channels=3)
  p = jax.nn.softmax(_logits_fn(model)(variables, m, cond), -1)
  np.testing.assert_array_equal(m, jnp.round(p @ jnp.arange(256.0)))


def test_context_free_model_decodes_to_argmax_and_samples_its_softmax():
  model = _model()
  rng = np.random.default_rng(0)
  bias = rng.standard_normal((3, 256))
  variables = _context_free(model, 3, bias)
  cond, fn = _cond(n=2), _apply_fn(model)
  x = ar.decode_mode(fn, variables, cond, channels=3)
  np.testing.assert_array_equal(x, np.broadcast_to(bias.argmax(-1), (2, H, W, 3)))
  mean = scipy.special.softmax(bias, -1) @ np.arange(256)
  np.testing.assert_array_equal(ar.decode_mean(fn, variables, cond, channels=3),
                                np.broadcast_to(np.round(mean), (2, H, W, 3)))
  # Gray sampling from 4 allowed values with probabilities 0.1, 0.2, 0.3, 0.4: chi-square.
  logp = np.full(256, -1e4)
  values = np.array([3, 50, 128, 255])
  probs = np.array([0.1, 0.2, 0.3, 0.4])
  logp[values] = np.log(probs)
  gray = _context_free(model, 1, logp)
  s = np.asarray(ar.sample(fn, gray, _cond(n=16), jax.random.key(7), channels=1)).ravel()
  assert set(np.unique(s)) <= set(values)
  counts = np.array([(s == v).sum() for v in values])
  assert scipy.stats.chisquare(counts, probs * s.size).pvalue > 1e-3
  # A tiny temperature concentrates every draw on the mode.
  cold = ar.sample(fn, gray, _cond(n=16), jax.random.key(7), temperature=1e-3, channels=1)
  np.testing.assert_array_equal(cold, 255)


def test_trainer_refuses_pixelcnn_as_a_restorer():
  c = common.base()
  c.model.name = "pixelcnn"
  with pytest.raises(ValueError, match="autoregressive model, not a restorer"):
    tasks.build_restorer(c.model)
