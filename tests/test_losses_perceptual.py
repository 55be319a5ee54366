"""Tests for restoration.losses.perceptual: config validation, values and gradients of the loss.

A narrow random-weight VGG19 (.npz written by the test) at 16x16 keeps this fast.
"""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import default
from restoration.models.vgg import VGG19
from restoration.losses.perceptual import make_perceptual
from tests.vgg_helpers import WIDTHS, random_arrays

LAYERS = ("relu1_2", "conv2_1", "relu3_4")


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
  path = tmp_path_factory.mktemp("perceptual") / "vgg19.npz"
  np.savez(path, **random_arrays(seed=5))
  return str(path)


def _cfg(path, **overrides) -> ml_collections.ConfigDict:
  cfg = default.get_config().perceptual
  cfg.weights_path = path
  cfg.layers = LAYERS
  cfg.layer_weights = (0.5, 1.0, 2.0)
  for k, v in overrides.items():
    cfg[k] = v
  return cfg


def _images(seed, shape=(2, 16, 16, 3)):
  return jax.random.uniform(jax.random.key(seed), shape)


def test_default_block_is_valid_but_unconfigured():
  cfg = default.get_config().perceptual
  assert cfg.weights_path == "" and len(cfg.layers) == len(cfg.layer_weights) == 5
  with pytest.raises(ValueError, match=r"config.perceptual.weights_path is not set"):
    make_perceptual(cfg)


@pytest.mark.parametrize("overrides,match", [
    (dict(layers=("relu1_2", "relu9_9", "relu3_4")), r"config.perceptual.layers: unknown.*relu9_9"),
    (dict(layers=()), r"config.perceptual.layers must be a non-empty tuple"),
    (dict(layer_weights=(1.0, 1.0)), r"config.perceptual.layer_weights=.*one number per layer"),
    (dict(layer_weights=(1.0, -1.0, 1.0)), r"config.perceptual.layer_weights=.*>= 0"),
    (dict(layer_weights=(0, 0, 0)), r"config.perceptual.layer_weights=.*not all 0"),
    (dict(distance="cosine"), r"config.perceptual.distance='cosine'; allowed: \['l1', 'l2'\]"),
])
def test_bad_fields_raise_before_reading_the_file(overrides, match):
  # The path does not exist: the field errors must come first.
  with pytest.raises(ValueError, match=match):
    make_perceptual(_cfg("/does/not/exist.npz", **overrides), widths=WIDTHS)


@pytest.mark.parametrize("distance", ["l1", "l2"])
def test_value_matches_direct_feature_computation(npz, distance):
  loss_fn, variables = make_perceptual(_cfg(npz, distance=distance), widths=WIDTHS)
  assert "conv4_1" not in variables["params"]   # trimmed to what relu3_4 needs
  a, b = _images(0), _images(1)
  got = float(jax.jit(loss_fn)(a, b, variables))
  feats = VGG19(layers=LAYERS, widths=WIDTHS).apply(variables, jnp.concatenate([a, b]))
  expected = 0.0
  for name, w in zip(LAYERS, (0.5, 1.0, 2.0)):
    d = np.asarray(feats[name][:2], np.float64) - np.asarray(feats[name][2:], np.float64)
    expected += w * (np.mean(np.abs(d)) if distance == "l1" else np.mean(d ** 2))
  np.testing.assert_allclose(got, expected, rtol=1e-5)
  assert got > 0
  np.testing.assert_allclose(float(loss_fn(a, a, variables)), 0.0, atol=1e-7)


def test_gray_images_and_zero_weight_layers(npz):
  loss_fn, variables = make_perceptual(_cfg(npz, layer_weights=(0.0, 1.0, 0.0)), widths=WIDTHS)
  only_conv21, _ = make_perceptual(_cfg(npz, layers=("conv2_1",), layer_weights=(1.0,)),
                                   widths=WIDTHS)
  a, b = _images(2, (2, 16, 16, 1)), _images(3, (2, 16, 16, 1))
  np.testing.assert_allclose(loss_fn(a, b, variables), only_conv21(a, b, variables), rtol=1e-6)
  rgb = lambda x: jnp.repeat(x, 3, axis=-1)
  np.testing.assert_allclose(loss_fn(a, b, variables), loss_fn(rgb(a), rgb(b), variables),
                             rtol=1e-6)


def test_gradients_reach_restored_only(npz):
  loss_fn, variables = make_perceptual(_cfg(npz), widths=WIDTHS)
  a, b = _images(4), _images(5)
  g_restored, g_vgg, g_clean = jax.grad(loss_fn, argnums=(0, 2, 1))(a, b, variables)
  assert float(jnp.max(jnp.abs(g_restored))) > 0
  assert all(float(jnp.max(jnp.abs(g))) == 0.0 for g in jax.tree.leaves(g_vgg))
  assert float(jnp.max(jnp.abs(g_clean))) == 0.0
  # And the gradient is the true one: a finite difference along it lowers the loss.
  before = float(loss_fn(a, b, variables))
  after = float(loss_fn(a - 1e-2 * g_restored / jnp.max(jnp.abs(g_restored)), b, variables))
  assert after < before


def test_shape_mismatch_raises(npz):
  loss_fn, variables = make_perceptual(_cfg(npz), widths=WIDTHS)
  with pytest.raises(ValueError, match=r"restored \(2, 16, 16, 3\) != clean \(2, 8, 8, 3\)"):
    loss_fn(_images(0), _images(1, (2, 8, 8, 3)), variables)
