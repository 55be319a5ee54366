"""Tests for the VGG19 feature extractor, its weights files and the VGG-encoder U-Net.

Everything uses a narrow VGG19 (the real 16-layer layout with 4-16 channels per block) and
random weights written in the Keras HDF5 layouts of three Keras versions and as .npz.
"""

import functools
import subprocess
import sys

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import ndimage

from restoration.weights import vgg
from restoration.models import get_model
from restoration.models.vgg import VGG19, conv_names, convs_needed, layer_names, trim_variables
from restoration.models.vgg_unet import freeze_mask, load_encoder
from tests.vgg_helpers import WIDTHS, random_arrays, write_keras_h5

@pytest.fixture(scope="module")
def arrays():
  return random_arrays()


@pytest.fixture(scope="module")
def h5_file(tmp_path_factory, arrays):
  path = str(tmp_path_factory.mktemp("vgg") / "vgg19_notop.h5")
  write_keras_h5(path, arrays, "keras2")
  return path


@functools.lru_cache(maxsize=None)
def _apply_fn(layers):
  return jax.jit(VGG19(layers=layers, widths=WIDTHS).apply)


# --- Layer names and the forward pass -----------------------------------------------------------

def test_layer_names_and_needed_convs():
  assert len(conv_names()) == 16 and conv_names()[0] == "conv1_1"
  assert conv_names()[-1] == "conv5_4"
  assert layer_names()[:5] == ("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1")
  assert convs_needed(("relu2_2", "conv1_1")) == ("conv1_1", "conv1_2", "conv2_1", "conv2_2")
  assert convs_needed(("pool3",))[-1] == "conv3_4"


def test_forward_shapes_and_only_needed_layers_built():
  x = jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32)
  layers = ("conv1_1", "relu2_2", "pool3", "relu5_4", "pool5")
  model = VGG19(layers=layers, widths=WIDTHS)
  variables = jax.eval_shape(model.init, jax.random.key(0), x)
  assert set(variables["params"]) == set(conv_names()) | {"input_mean", "input_std"}
  out = jax.eval_shape(model.apply, variables, x)
  assert {k: v.shape for k, v in out.items()} == {
      "conv1_1": (2, 32, 32, 4), "relu2_2": (2, 16, 16, 8), "pool3": (2, 4, 4, 8),
      "relu5_4": (2, 2, 2, 16), "pool5": (2, 1, 1, 16)}
  shallow = VGG19(layers=("relu2_1",), widths=WIDTHS)
  params = jax.eval_shape(shallow.init, jax.random.key(0), x)["params"]
  assert set(params) == {"conv1_1", "conv1_2", "conv2_1", "input_mean", "input_std"}
  # Full VGG19 width: the standard 20,024,384 conv parameters (+ 6 for mean/std).
  full = jax.eval_shape(VGG19(layers=("relu5_4",)).init, jax.random.key(0), x)
  assert sum(p.size for p in jax.tree.leaves(full)) == 20_024_384 + 6


def test_bad_layer_names_and_channels_raise():
  x = jnp.zeros((1, 16, 16, 3))
  with pytest.raises(ValueError, match=r"unknown VGG19 layer.*relu1_3"):
    VGG19(layers=("relu1_3",), widths=WIDTHS).init(jax.random.key(0), x)
  with pytest.raises(ValueError, match="1 or 3 channels"):
    VGG19(layers=("relu1_1",), widths=WIDTHS).init(jax.random.key(0), jnp.zeros((1, 8, 8, 2)))


def _conv_numpy(x, kernel, bias):
  """'SAME' 3x3 cross-correlation NHWC x (H, W, I, O) kernel, via scipy, zero padded."""
  n, h, w, _ = x.shape
  out = np.zeros((n, h, w, kernel.shape[-1]))
  for o in range(kernel.shape[-1]):
    for i in range(kernel.shape[2]):
      for b in range(n):
        out[b, :, :, o] += ndimage.correlate(x[b, :, :, i], kernel[:, :, i, o],
                                             mode="constant")
  return out + bias


def test_forward_matches_numpy_and_gray_is_repeated(arrays):
  variables = vgg.to_variables(arrays)   # ImageNet mean/std (no entries in arrays)
  x = np.random.default_rng(1).uniform(size=(2, 16, 16, 3)).astype(np.float32)
  out = _apply_fn(("conv1_1", "relu1_2", "pool1"))(variables, x)
  mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
  h = _conv_numpy((x - mean) / std, arrays["conv1_1/kernel"], arrays["conv1_1/bias"])
  np.testing.assert_allclose(out["conv1_1"], h, atol=1e-4)
  h = np.maximum(_conv_numpy(np.maximum(h, 0), arrays["conv1_2/kernel"],
                             arrays["conv1_2/bias"]), 0)
  np.testing.assert_allclose(out["relu1_2"], h, atol=1e-4)
  pooled = h.reshape(2, 8, 2, 8, 2, 4).max(axis=(2, 4))
  np.testing.assert_allclose(out["pool1"], pooled, atol=1e-4)
  gray = x[..., :1]
  out_gray = _apply_fn(("relu1_2",))(variables, gray)
  np.testing.assert_allclose(out_gray["relu1_2"],
                             _apply_fn(("relu1_2",))(variables, np.repeat(gray, 3, -1))["relu1_2"],
                             atol=1e-6)


# --- Weights files ----------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["keras1", "keras2", "keras3", "no_attrs"])
def test_keras_h5_layouts_load_the_same_arrays(tmp_path, arrays, layout):
  path = str(tmp_path / "w.h5")
  write_keras_h5(path, arrays, layout)
  loaded = vgg.read_arrays(path, widths=WIDTHS)
  for key, value in arrays.items():
    expected = value[:, :, ::-1] if key == "conv1_1/kernel" else value   # BGR -> RGB
    np.testing.assert_array_equal(loaded[key], expected, err_msg=key)
  np.testing.assert_allclose(loaded["input_mean"] * 255, [123.68, 116.779, 103.939], rtol=1e-6)
  np.testing.assert_allclose(loaded["input_std"] * 255, 1.0, rtol=1e-6)


def test_keras_weights_reproduce_caffe_preprocessing(h5_file, arrays):
  # The Keras file expects BGR * 255 - BGR mean; loaded, VGG19 takes [0, 1] RGB and must
  # give the same first-layer features (exact: the conversion is a channel permutation).
  variables = vgg.load_vgg19(h5_file, widths=WIDTHS)
  x = np.random.default_rng(2).uniform(size=(1, 16, 16, 3)).astype(np.float32)
  caffe = x[..., ::-1] * 255.0 - np.array([103.939, 116.779, 123.68])
  expected = _conv_numpy(caffe, arrays["conv1_1/kernel"], arrays["conv1_1/bias"])
  got = _apply_fn(("conv1_1",))(variables, x)["conv1_1"]
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3)


def test_h5_to_npz_round_trip_and_cli(tmp_path, h5_file):
  from_h5 = vgg.load_vgg19(h5_file, widths=WIDTHS)
  npz = str(tmp_path / "vgg19.npz")
  vgg.h5_to_npz(h5_file, npz, widths=WIDTHS)
  with np.load(npz) as data:
    assert set(data.files) == {f"{c}/{leaf}" for c in conv_names() for leaf in ("kernel", "bias")
                               } | {"input_mean", "input_std"}
  from_npz = vgg.load_vgg19(npz, widths=WIDTHS)
  jax.tree.map(np.testing.assert_array_equal, from_h5, from_npz)
  # The CLI checks real VGG19 shapes, so a narrow file is rejected with the layer named.
  result = subprocess.run([sys.executable, "-m", "restoration.weights.vgg", h5_file,
                           str(tmp_path / "o.npz")], capture_output=True, text=True)
  assert result.returncode != 0 and "conv1_1/kernel has shape (3, 3, 3, 4)" in result.stderr


def test_missing_or_bad_files_give_clear_errors(tmp_path, arrays):
  with pytest.raises(ValueError, match=r"config.perceptual.weights_path is not set.*"
                                       r"vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"):
    vgg.load_vgg19("")
  with pytest.raises(ValueError, match=r"config.perceptual.weights_path='/nope.h5': no such"):
    vgg.load_vgg19("/nope.h5")
  bad = tmp_path / "w.pt"
  bad.write_bytes(b"x")
  with pytest.raises(ValueError, match=r"extension '.pt'; allowed: .h5, .hdf5, .npz"):
    vgg.load_vgg19(str(bad))
  partial = {k: v for k, v in arrays.items() if not k.startswith("conv4_3")}
  np.savez(tmp_path / "p.npz", **partial)
  with pytest.raises(ValueError, match=r"p.npz: VGG19 layer conv4_3 has no kernel"):
    vgg.load_vgg19(str(tmp_path / "p.npz"), widths=WIDTHS)
  wrong = dict(arrays, **{"conv3_2/bias": np.zeros(5, np.float32)})
  np.savez(tmp_path / "s.npz", **wrong)
  with pytest.raises(ValueError, match=r"conv3_2/bias has shape \(5,\), expected \(8,\)"):
    vgg.load_vgg19(str(tmp_path / "s.npz"), widths=WIDTHS)
  h5_missing = str(tmp_path / "m.h5")
  write_keras_h5(h5_missing, arrays, "keras2")
  with h5py.File(h5_missing, "a") as f:
    del f["block5_conv4"]
  with pytest.raises(ValueError, match=r"layer conv5_4 \(Keras group 'block5_conv4'\) missing"):
    vgg.load_vgg19(h5_missing, widths=WIDTHS)


def test_trim_variables_keeps_only_needed_convs(arrays):
  trimmed = trim_variables(vgg.to_variables(arrays), ("relu2_1",))
  assert set(trimmed["params"]) == {"conv1_1", "conv1_2", "conv2_1", "input_mean", "input_std"}


# --- vgg_unet ---------------------------------------------------------------------------------

@pytest.mark.parametrize("depth", [1, 3, 5])
@pytest.mark.parametrize("channels,out_channels", [(1, None), (3, None), (1, 3)])
def test_vgg_unet_odd_sizes(depth, channels, out_channels):
  model = get_model("vgg_unet", depth=depth, widths=WIDTHS, out_channels=out_channels)
  x = jax.ShapeDtypeStruct((2, 37, 21, channels), jnp.float32)
  variables = jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0), x)
  y = jax.eval_shape(functools.partial(model.apply, train=False), variables, x)
  assert y.shape == (2, 37, 21, out_channels or channels) and y.dtype == jnp.float32
  used = {f"conv{b}_{j}" for b in range(1, depth + 1) for j in range(1, 5)}
  assert set(variables["params"]["encoder"]) == (
      set(conv_names()) & used) | {"input_mean", "input_std"}


def test_vgg_unet_rejects_bad_depth():
  with pytest.raises(ValueError, match=r"vgg_unet: depth=6; allowed: 1..5"):
    get_model("vgg_unet", depth=6, widths=WIDTHS).init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)),
                                                       train=False)


def test_load_encoder_and_freeze_mask(h5_file):
  model = get_model("vgg_unet", depth=3, widths=WIDTHS)
  x = np.random.default_rng(3).uniform(size=(1, 19, 13, 3)).astype(np.float32)
  params = jax.jit(functools.partial(model.init, train=False))(
      jax.random.key(0, impl="rbg"), x)["params"]
  vgg19 = vgg.load_vgg19(h5_file, widths=WIDTHS)
  loaded = load_encoder(params, vgg19)
  for name, sub in loaded["encoder"].items():
    jax.tree.map(np.testing.assert_array_equal, sub, vgg19["params"][name])
  for name in set(params) - {"encoder"}:   # the decoder is untouched
    jax.tree.map(np.testing.assert_array_equal, loaded[name], params[name])
  # The mask marks exactly the encoder's leaves.
  mask = freeze_mask(loaded)
  flags = jax.tree_util.tree_leaves_with_path(mask)
  assert all(flag == (path[0].key == "encoder") for path, flag in flags)
  assert sum(flag for _, flag in flags) == len(jax.tree.leaves(loaded["encoder"]))
  # With optax.set_to_zero on the mask, one training step changes only the decoder.
  tx = optax.multi_transform({False: optax.adam(1e-2), True: optax.set_to_zero()}, mask)
  loss = lambda p: jnp.mean(jnp.square(model.apply({"params": p}, x, train=True) - 0.5))
  grads = jax.grad(loss)(loaded)
  updates, _ = tx.update(grads, tx.init(loaded), loaded)
  new = optax.apply_updates(loaded, updates)
  changed = jax.tree.map(lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))), loaded, new)
  assert not any(jax.tree.leaves(changed["encoder"]))
  assert all(jax.tree.leaves({k: v for k, v in changed.items() if k != "encoder"}))
  bad = {"params": {k: v for k, v in vgg19["params"].items() if k != "conv2_2"}}
  with pytest.raises(ValueError, match=r"lack layer\(s\) \['conv2_2'\]"):
    load_encoder(params, bad)
  with pytest.raises(ValueError, match="not a vgg_unet"):
    freeze_mask({"conv0": {}})


def test_vgg_unet_default_param_count():
  model = get_model("vgg_unet")
  x = jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32)
  params = jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0), x)
  params = params["params"]
  assert sum(p.size for p in jax.tree.leaves(params)) == 31_164_489
  assert sum(p.size for p in jax.tree.leaves(params["encoder"])) == 20_024_384 + 6
