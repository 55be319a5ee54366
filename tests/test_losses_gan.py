"""Tests for restoration.losses.gan: every loss against a NumPy hand computation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from restoration.losses import gan

REAL = np.array([[2.0, -0.5], [0.3, 1.5]], np.float32)   # D logits on real images
FAKE = np.array([[-1.0, 0.25], [3.0, -2.5]], np.float32)  # D logits on restored images


def _softplus(x):
  return np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0)   # stable log(1 + e^x)


def _expected(kind):
  r, f = REAL.astype(np.float64), FAKE.astype(np.float64)
  if kind == "vanilla":   # -log sigmoid(r), -log(1 - sigmoid(f)), -log sigmoid(f)
    return _softplus(-r).mean() + _softplus(f).mean(), _softplus(-f).mean()
  if kind == "lsgan":
    return ((r - 1) ** 2).mean() + (f ** 2).mean(), ((f - 1) ** 2).mean()
  return np.maximum(0, 1 - r).mean() + np.maximum(0, 1 + f).mean(), -f.mean()


@pytest.mark.parametrize("kind", gan.KINDS)
def test_losses_match_hand_computation(kind):
  d_expected, g_expected = _expected(kind)
  d = gan.discriminator_loss(kind, jnp.asarray(REAL), jnp.asarray(FAKE))
  g = gan.generator_loss(kind, jnp.asarray(FAKE))
  assert d.shape == g.shape == () and d.dtype == g.dtype == jnp.float32
  np.testing.assert_allclose(float(d), d_expected, rtol=1e-6)
  np.testing.assert_allclose(float(g), g_expected, rtol=1e-6)
  # bfloat16 logits give float32 losses, equal to the f32 loss of the rounded logits.
  bf = lambda x: jnp.asarray(x, jnp.bfloat16)
  d16 = gan.discriminator_loss(kind, bf(REAL), bf(FAKE))
  assert d16.dtype == jnp.float32
  np.testing.assert_allclose(
      float(d16), float(gan.discriminator_loss(kind, bf(REAL).astype(jnp.float32),
                                                       bf(FAKE).astype(jnp.float32))),
      rtol=1e-6)


def test_exact_values_at_simple_logits():
  zeros = jnp.zeros((3,))
  np.testing.assert_allclose(gan.discriminator_loss("vanilla", zeros, zeros),
                             2 * np.log(2), rtol=1e-6)
  np.testing.assert_allclose(gan.discriminator_loss("lsgan", jnp.ones(3), zeros), 0.0)
  # Hinge D is 0 once real >= 1 and fake <= -1, whatever the margin beyond.
  np.testing.assert_allclose(
      gan.discriminator_loss("hinge", jnp.array([1.0, 5.0]), jnp.array([-1.0, -7.0])), 0)


def test_unknown_kind_raises():
  with pytest.raises(ValueError, match=r"gan loss kind='wgan'; allowed: vanilla, lsgan, hinge"):
    gan.generator_loss("wgan", jnp.zeros(2))
  with pytest.raises(ValueError, match=r"config.gan.loss='x'"):
    gan.validate_kind("x", "config.gan.loss")


def test_r1_penalty_linear_and_quadratic_discriminators():
  rng = np.random.default_rng(0)
  real = rng.standard_normal((3, 4, 5, 2)).astype(np.float32)
  w = rng.standard_normal((4, 5, 2)).astype(np.float32)
  # D(x) = <w, x> per example: gradient w for every example -> gamma/2 * ||w||^2.
  linear = lambda x: jnp.sum(x * w, axis=(1, 2, 3))
  np.testing.assert_allclose(gan.r1_penalty(linear, jnp.asarray(real), gamma=4.0),
                             2.0 * np.sum(w.astype(np.float64) ** 2), rtol=1e-5)
  # Patch logits D(x) = x^2 (N, H, W, C): gradient of the sum is 2x -> mean_n sum 4x^2.
  quad = lambda x: jnp.square(x)
  expected = 0.5 * 10.0 * np.mean(np.sum(4 * real.astype(np.float64) ** 2, axis=(1, 2, 3)))
  np.testing.assert_allclose(gan.r1_penalty(quad, jnp.asarray(real)), expected, rtol=1e-5)


def test_r1_penalty_is_differentiable_wrt_discriminator_params():
  real = jnp.asarray(np.random.default_rng(1).standard_normal((2, 3)), jnp.float32)

  def penalty(scale):   # D(x) = scale * sum(x^2): R1 = gamma/2 * mean ||2 scale x||^2
    return gan.r1_penalty(lambda x: scale * jnp.sum(x ** 2, axis=1), real, gamma=1.0)

  expected_grad = 0.5 * np.mean(np.sum(8 * 1.5 * np.asarray(real, np.float64) ** 2, axis=1))
  np.testing.assert_allclose(jax.grad(penalty)(1.5), expected_grad, rtol=1e-5)
