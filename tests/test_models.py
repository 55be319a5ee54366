"""Tests for restoration.models: registry, parameter counts, data contract, training sanity.

Full-size models are only traced (`jax.eval_shape`); everything that computes uses tiny
overrides so the file runs in well under a minute on 2 CPU cores.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from restoration.models import MODELS, get_model, model_fields
from restoration.models import unet_param_count

# Tiny overrides per restorer for anything that is computed or traced at odd sizes.
TINY = {
    "cnn": dict(depth=3, features=8),
    "study_cnn": dict(features=8),
    "dncnn": dict(depth=4, features=8),
    "unet": dict(features=8, depth=2),
    "unet512": dict(features=8, depth=2, bottleneck=16),
    "unet1024": dict(features=8, depth=2, bottleneck=32),
    "cvt": dict(embed_dim=16, depth=1, num_heads=2, window_size=4, patch_size=2),
    "vgg_unet": dict(depth=3, widths=(4, 8, 8, 16, 16)),
}
RESTORERS = sorted(TINY)


def _n_params(tree) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def _init_shapes(model, *inputs):
  init = functools.partial(model.init, train=False)
  return jax.eval_shape(init, {"params": jax.random.key(0)}, *inputs)


def _init(model, *inputs):
  """The model's real init, jitted, with an 'rbg' key: XLA:CPU takes ~10 s to compile the
  threefry PRNG of even a tiny U-Net's initialisers, rbg a fraction of that."""
  key = jax.random.key(1, impl="rbg")
  return jax.jit(functools.partial(model.init, train=False))(key, *inputs)


def _fake_init(model, *inputs, seed=0):
  """Variables with exactly init's tree, shapes and dtypes (traced with eval_shape), filled
  by numpy: kernels ~ N(0, 1/fan_in), small biases, BN scale/var 1 and mean 0. Used where
  the values do not matter, to avoid compiling initialisers."""
  rng = np.random.default_rng(seed)

  def fill(path, s):
    leaf = path[-1].key
    if leaf in ("scale", "var"):
      value = np.ones(s.shape)
    elif leaf == "mean":
      value = np.zeros(s.shape)
    elif leaf == "bias":
      value = 0.01 * rng.standard_normal(s.shape)
    else:
      value = rng.standard_normal(s.shape) / np.sqrt(np.prod(s.shape[:-1]))
    return jnp.asarray(value, s.dtype)

  return jax.tree_util.tree_map_with_path(fill, _init_shapes(model, *inputs))


@functools.lru_cache(maxsize=None)
def _jitted_apply(model, train, mutable):
  def apply(variables, *inputs, rngs=None):
    return model.apply(variables, *inputs, train=train, rngs=rngs, mutable=mutable or False)
  return jax.jit(apply)


def _apply(model, variables, *inputs, train=False, mutable=(), rngs=None):
  """Jitted model.apply, compiled once per (model, train, mutable)."""
  return _jitted_apply(model, train, tuple(mutable))(variables, *inputs, rngs=rngs)


def _param_count(name, channels=3, size=64, **kw):
  x = jax.ShapeDtypeStruct((1, size, size, channels), jnp.float32)
  inputs = (x, x) if name == "patchgan" else (x,)
  return _n_params(_init_shapes(get_model(name, **kw), *inputs)["params"])


# --- Registry --------------------------------------------------------------------------------

def test_registry_names():
  assert set(MODELS) == {"cnn", "dncnn", "unet", "unet512", "unet1024", "patchgan", "cvt",
                         "vgg_unet", "pixelcnn", "study_cnn", "ffdnet"}
  assert get_model("unet512").bottleneck == 512
  assert get_model("unet1024").bottleneck == 1024
  assert get_model("unet", features=16, depth=3).features == 16


def test_unknown_name_lists_valid_names():
  with pytest.raises(ValueError, match="unknown model 'resnet'") as e:
    get_model("resnet")
  for name in MODELS:
    assert name in str(e.value)


def test_unknown_override_names_model_and_field():
  with pytest.raises(ValueError, match=r"'dncnn'.*'widht'") as e:
    get_model("dncnn", widht=3)
  assert "features" in str(e.value)   # the valid fields are listed
  with pytest.raises(ValueError, match="'parent'"):
    get_model("cnn", parent=None)


def test_dtype_strings_and_fields():
  m = get_model("cnn", dtype="bfloat16")
  assert m.dtype == jnp.bfloat16 and m.param_dtype == jnp.float32
  assert model_fields("unet512")["bottleneck"] == 512
  assert model_fields("dncnn")["residual"] is True


# --- Parameter counts (traced only) ------------------------------------------------------------

def test_dncnn_1ch_param_count_matches_dncnn_s():
  n = _param_count("dncnn", channels=1)
  assert n == 556_097
  assert abs(n - 557_000) / 557_000 < 0.005


def test_cnn_param_count_near_84k():
  n = _param_count("cnn", channels=3)
  assert n == 83_883
  assert abs(n - 84_000) / 84_000 < 0.02
  # The low-light 16-layer variant is just an override.
  assert _param_count("cnn", depth=16) == 83_883 + 7 * (9 * 36 * 36 + 36)


def test_unet_param_counts():
  n512, n1024 = _param_count("unet512"), _param_count("unet1024")
  assert n1024 > n512
  assert n512 == unet_param_count(3, 3, bottleneck=512) == 20_545_091
  assert n1024 == unet_param_count(3, 3, bottleneck=1024) == 31_031_875
  assert _param_count("unet") == n1024
  assert _param_count("unet", batch_norm=True, features=8, depth=2) == unet_param_count(
      3, 3, features=8, depth=2, batch_norm=True)


def test_patchgan_and_cvt_param_counts():
  assert _param_count("patchgan") == 2_768_705
  n = _param_count("cvt")
  assert 1_000_000 < n < 10_000_000 and n == 2_976_675


# --- Data contract ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", RESTORERS)
@pytest.mark.parametrize("channels,out_channels", [(1, None), (3, None), (1, 3)])
def test_output_shape_odd_sizes(name, channels, out_channels):
  kw = dict(TINY[name])
  if out_channels:
    kw["out_channels"] = out_channels
  model = get_model(name, **kw)
  x = jax.ShapeDtypeStruct((2, 37, 53, channels), jnp.float32)
  variables = _init_shapes(model, x)
  y = jax.eval_shape(functools.partial(model.apply, train=False), variables, x)
  assert y.shape == (2, 37, 53, out_channels or channels)
  assert y.dtype == jnp.float32


@pytest.mark.parametrize("name", ["unet", "cvt"])
def test_padding_models_run_on_tiny_and_odd_images(name):
  # 5x7 is smaller than the pad needed (edge fallback); 19x13 reflect-pads.
  model = get_model(name, **TINY[name])
  for shape in [(1, 5, 7, 1), (1, 19, 13, 3)]:
    x = jax.random.uniform(jax.random.key(0), shape)
    variables = _fake_init(model, x)
    y = _apply(model, variables, x)
    assert y.shape == shape and bool(jnp.all(jnp.isfinite(y)))


@pytest.mark.parametrize("name", ["cnn", "dncnn", "unet", "cvt"])
def test_residual_contract_with_zero_params(name):
  # With all-zero parameters the network output is 0, so a residual model is the identity
  # (the gray input broadcast to 3 channels for 1 -> 3), a non-residual one returns 0.
  x = jax.random.uniform(jax.random.key(0), (1, 9, 11, 1))
  for out_channels, residual in [(None, True), (3, True), (3, False)]:
    model = get_model(name, out_channels=out_channels, residual=residual, **TINY[name])
    variables = _fake_init(model, x)
    zero = jax.tree.map(jnp.zeros_like, variables)
    if "batch_stats" in zero:   # keep running var at 1 so BN(0) = 0
      zero["batch_stats"] = variables["batch_stats"]
    y = _apply(model, zero, x)
    assert y.shape == (1, 9, 11, out_channels or 1)
    expected = jnp.broadcast_to(x, y.shape) if residual else jnp.zeros_like(y)
    np.testing.assert_allclose(y, expected, atol=1e-6)


@pytest.mark.parametrize("name,sign", [("cnn", 1.0), ("dncnn", -1.0), ("unet", 1.0)])
def test_residual_sign(name, sign):
  # residual=True is input + net(x), except DnCNN: input - predicted noise.
  x = jax.random.uniform(jax.random.key(0), (1, 9, 11, 1))
  model = get_model(name, **TINY[name])
  variables = _fake_init(model, x, seed=3)
  net = _apply(get_model(name, residual=False, **TINY[name]), variables, x)
  assert float(jnp.max(jnp.abs(net))) > 1e-2
  np.testing.assert_allclose(_apply(model, variables, x), x + sign * net, atol=1e-5)


def test_residual_rejects_ambiguous_channel_change():
  model = get_model("cnn", out_channels=2, **TINY["cnn"])
  x = jnp.zeros((1, 8, 8, 3))
  with pytest.raises(ValueError, match="residual"):
    _init_shapes(model, x)
  model = get_model("cnn", out_channels=1, residual=False, **TINY["cnn"])
  assert _apply(model, _fake_init(model, x), x).shape == (1, 8, 8, 1)


@pytest.mark.parametrize("name", ["cnn", "dncnn", "unet", "cvt", "patchgan"])
def test_bfloat16_forward(name):
  model = get_model(name, dtype="bfloat16", **TINY.get(name, dict(features=8)))
  x = jax.random.uniform(jax.random.key(0), (2, 19, 21, 3))
  if name == "patchgan":
    x = jax.random.uniform(jax.random.key(0), (2, 32, 32, 3))
  inputs = (x, x) if name == "patchgan" else (x,)
  variables = _fake_init(model, *inputs)
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(variables))
  y = _apply(model, variables, *inputs)
  assert y.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(y)))
  if name != "patchgan":
    # bf16 and f32 compute agree to bf16 precision.
    y32 = _apply(get_model(name, **TINY[name]), variables, x)
    np.testing.assert_allclose(y, y32, atol=0.1)


# --- Train/eval behaviour ----------------------------------------------------------------------

def test_batchnorm_follows_train():
  model = get_model("dncnn", **TINY["dncnn"])
  x = jax.random.uniform(jax.random.key(0), (2, 12, 12, 1))
  variables = _fake_init(model, x)
  assert set(variables) == {"params", "batch_stats"}
  y_eval = _apply(model, variables, x)
  y_train, updates = _apply(model, variables, x, train=True, mutable=["batch_stats"])
  assert float(jnp.max(jnp.abs(y_train - y_eval))) > 1e-3
  changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), variables["batch_stats"],
                         updates["batch_stats"])
  assert all(jax.tree.leaves(changed))
  with pytest.raises(Exception):   # train=True must be allowed to mutate batch_stats
    _apply(model, variables, x, train=True)


@pytest.mark.parametrize("name", ["unet", "cvt"])
def test_dropout_follows_train(name):
  model = get_model(name, dropout_rate=0.5, **TINY[name])
  x = jax.random.uniform(jax.random.key(0), (1, 16, 16, 1))
  variables = _fake_init(model, x)
  y_eval = _apply(model, variables, x)
  np.testing.assert_array_equal(y_eval, _apply(model, variables, x))
  y1 = _apply(model, variables, x, train=True, rngs={"dropout": jax.random.key(2)})
  y2 = _apply(model, variables, x, train=True, rngs={"dropout": jax.random.key(3)})
  assert float(jnp.max(jnp.abs(y1 - y2))) > 1e-4
  assert float(jnp.max(jnp.abs(y1 - y_eval))) > 1e-4


def _denoise_batch():
  """4x16x16x1 smooth clean images (random sinusoids) and noisy = clean + N(0, 0.2^2)."""
  k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
  yy, xx = jnp.meshgrid(jnp.linspace(0, 1, 16), jnp.linspace(0, 1, 16), indexing="ij")
  freq = jax.random.uniform(k1, (4, 1, 1, 2), minval=3, maxval=9)
  phase = jax.random.uniform(k2, (4, 1, 1, 1), maxval=2 * np.pi)
  clean = 0.5 + 0.4 * jnp.sin(freq[..., :1] * xx[None, ..., None]
                              + freq[..., 1:] * yy[None, ..., None] + phase)
  return clean + 0.2 * jax.random.normal(k3, clean.shape), clean


@pytest.mark.parametrize("name", ["cnn", "dncnn", "unet", "cvt"])
def test_overfits_one_batch(name):
  noisy, clean = _denoise_batch()
  noise_mse = float(jnp.mean((noisy - clean) ** 2))   # ~0.04: the identity's loss
  model = get_model(name, **TINY[name])
  variables = _init(model, noisy)
  params, stats = variables["params"], variables.get("batch_stats", {})
  tx = optax.adam(1e-2)

  def loss_fn(p, s):
    out, upd = model.apply({"params": p, "batch_stats": s}, noisy, train=True,
                           mutable=["batch_stats"])
    return jnp.mean((out - clean) ** 2), upd.get("batch_stats", {})

  @jax.jit
  def step(p, o, s):
    (loss, s), g = jax.value_and_grad(loss_fn, has_aux=True)(p, s)
    u, o = tx.update(g, o, p)
    return optax.apply_updates(p, u), o, s, loss

  opt = tx.init(params)
  losses = []
  for _ in range(100):
    params, opt, stats, loss = step(params, opt, stats)
    losses.append(float(loss))
  assert np.all(np.isfinite(losses))
  assert losses[-1] < losses[0] / 10, losses
  # It genuinely denoises: well below the loss of returning the noisy input.
  assert losses[-1] < 0.5 * noise_mse, (losses[-1], noise_mse)


# --- PatchGAN ----------------------------------------------------------------------------------

def test_patchgan_logit_map_shapes():
  model = get_model("patchgan")
  for size, out in [(256, 30), (128, 14)]:
    x = jax.ShapeDtypeStruct((2, size, size, 3), jnp.float32)
    variables = _init_shapes(model, x, x)
    y = jax.eval_shape(functools.partial(model.apply, train=False), variables, x, x)
    assert y.shape == (2, out, out, 1) and y.dtype == jnp.float32
  x1 = jax.ShapeDtypeStruct((1, 64, 64, 1), jnp.float32)   # gray condition, RGB candidate
  x3 = jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32)
  variables = _init_shapes(model, x1, x3)
  assert jax.eval_shape(functools.partial(model.apply, train=False), variables, x1,
                        x3).shape == (1, 6, 6, 1)


def test_patchgan_receptive_field_70_and_depends_on_both_inputs():
  model = get_model("patchgan", features=4)   # RF does not depend on the width
  a = jax.random.uniform(jax.random.key(0), (1, 96, 96, 1))
  b = jax.random.uniform(jax.random.key(1), (1, 96, 96, 1))
  variables = _init(model, a, b)   # the real N(0, 0.02) init
  logits = _apply(model, variables, a, b)
  assert logits.shape == (1, 10, 10, 1)
  logit = lambda a, b: model.apply(variables, a, b, train=False)[0, 4, 4, 0]
  ga, gb = jax.jit(jax.grad(logit, argnums=(0, 1)))(a, b)
  for g in (ga, gb):
    rows = np.nonzero(np.any(np.asarray(g[0, ..., 0]) != 0, axis=1))[0]
    cols = np.nonzero(np.any(np.asarray(g[0, ..., 0]) != 0, axis=0))[0]
    assert (rows.min(), rows.max()) == (9, 78)   # 8*4 - 23 .. 8*4 + 46: 70 pixels
    assert (cols.min(), cols.max()) == (9, 78)
  # Changing either input changes the logits (relative to their scale; init is N(0, 0.02)).
  scale = float(jnp.max(jnp.abs(logits)))
  assert float(jnp.max(jnp.abs(_apply(model, variables, a, a) - logits))) > 0.01 * scale
  assert float(jnp.max(jnp.abs(_apply(model, variables, b, b) - logits))) > 0.01 * scale
  # BatchNorm follows train.
  y_train, upd = _apply(model, variables, a, b, train=True, mutable=["batch_stats"])
  assert y_train.shape == logits.shape and "batch_stats" in upd


# --- DnCNN initialisations ---------------------------------------------------------------------

def test_dncnn_orthogonal_init_gives_orthogonal_filters_and_uniform_bn_scales():
  """weight_init='orthogonal' is KAIR's recipe: each conv's filters orthogonal with the gain
  (torch's orthogonal_ on the (out, in*k*k) matrix), BN scales drawn from U(0.1, 1)."""
  model = get_model("dncnn", depth=4, features=16, weight_init="orthogonal", init_gain=0.2)
  params = model.init(jax.random.key(3), jnp.zeros((1, 8, 8, 1)), train=False)["params"]
  mid = np.asarray(params["conv1"]["kernel"]).reshape(-1, 16)  # (9 * 16, 16): tall
  np.testing.assert_allclose(mid.T @ mid, 0.04 * np.eye(16), atol=1e-6)
  first = np.asarray(params["conv0"]["kernel"]).reshape(-1, 16)  # (9, 16): wide
  np.testing.assert_allclose(first @ first.T, 0.04 * np.eye(9), atol=1e-6)
  scales = np.concatenate([np.asarray(params[f"bn{i}"]["scale"]) for i in (1, 2)])
  assert scales.min() >= 0.1 and scales.max() <= 1.0 and scales.std() > 0.1
  he = get_model("dncnn", depth=4, features=16).init(
      jax.random.key(3), jnp.zeros((1, 8, 8, 1)), train=False)["params"]
  np.testing.assert_array_equal(he["bn1"]["scale"], np.ones(16))  # the default is unchanged


def test_dncnn_unknown_weight_init_names_the_allowed_values():
  model = get_model("dncnn", depth=3, features=4, weight_init="xavier")
  with pytest.raises(ValueError, match="weight_init='xavier'; allowed: 'he', 'orthogonal'"):
    model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)), train=False)
