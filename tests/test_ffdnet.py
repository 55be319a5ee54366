"""FFDNet (issue 29): the model, the released weights, the noise-level map, training, restore.

Synthetic MatConvNet v7.3 files (h5py, MATLAB layout) run everywhere; the shipped weights and
the published-PSNR cell skip when ../shared/data is absent. The slow cell (gray BSD68 sigma
25, all 68 images) takes ~1-2 min on 2 CPU cores.
"""

import os

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import ffdnet as ffdnet_config
from restoration import corruptions, models, modes, tasks
from restoration.image_files import reading
from restoration.modes import evaluate, import_weights, restore
from restoration.weights import ffdnet as ffdnet_weights
from restoration.models import ffdnet
from tests.test_weights_dncnn import _char, _matlab
from tests.tiny import override, straight_and_resumed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEIGHTS = os.path.join(ROOT, ffdnet_weights.WEIGHTS_DIR)
BSD68 = os.path.join(ROOT, "..", "shared", "data", "denoise", "test", "BSD68")


def _shipped(name):
  path = os.path.join(WEIGHTS, name)
  if not os.path.isfile(path):
    pytest.skip(f"{path} absent (shared data not mounted)")
  return path


# ------------------------------------------------------------ synthetic MATLAB v7.3 files

def write_ffdnet_mat(path, convs):
  """SubP(0.5), concat, [conv, relu]*, conv, SubP(2) as MATLAB v7.3 stores them."""
  with h5py.File(path, "w") as f:
    g_refs = f.create_group("#refs#")
    types = ["SubP", "concat"] + sum([["conv", "relu"] for _ in convs], [])[:-1] + ["SubP"]
    refs, k = [], 0
    for i, t in enumerate(types):
      g = g_refs.create_group(f"layer{i}")
      _char(g, "type", t)
      if t == "SubP":
        g.create_dataset("scale", data=np.array([[0.5 if i == 0 else 2.0]]))
      if t == "conv":
        w, b = convs[k]
        wr = _matlab(g_refs, f"w{k}", w)
        br = _matlab(g_refs, f"b{k}", np.asarray(b)[None, :])
        g.create_dataset("weights", data=np.array([[wr.ref], [br.ref]], dtype=h5py.ref_dtype))
        for field in ("pad", "stride"):
          g.create_dataset(field, data=np.array([[1.0]]))
        k += 1
      refs.append(g.ref)
    f.create_group("net").create_dataset(
        "layers", data=np.array(refs, dtype=h5py.ref_dtype)[:, None])


def random_convs(channels, depth=3, features=6, seed=0):
  rng = np.random.default_rng(seed)
  sizes = [4 * channels + 1] + [features] * (depth - 1) + [4 * channels]
  return [(rng.normal(0, 0.3, (3, 3, a, b)), rng.normal(0, 0.1, b))
          for a, b in zip(sizes[:-1], sizes[1:])]


# ------------------------------------------------- independent NumPy forward pass

def subp_split_loop(x):
  """vl_nnSubP.m with scale 0.5, written as its loops (1-based MATLAB indices)."""
  h, w, c = x.shape
  y = np.zeros((h // 2, w // 2, 4 * c), x.dtype)
  for ch in range(c):
    for i in range(1, 5):
      a, b = (i - 1) % 2 + 1, (i - 1) // 2 + 1
      y[:, :, 4 * ch + i - 1] = x[a - 1::2, b - 1::2, ch]
  return y


def subp_merge_loop(y):
  h, w, c4 = y.shape
  x = np.zeros((2 * h, 2 * w, c4 // 4), y.dtype)
  for ch in range(c4 // 4):
    for i in range(1, 5):
      a, b = (i - 1) % 2 + 1, (i - 1) // 2 + 1
      x[a - 1::2, b - 1::2, ch] = y[:, :, 4 * ch + i - 1]
  return x


def numpy_forward(path, x, sigma):
  """The released network on one HxWxC image at level `sigma` (0-1), from the HDF5 arrays:
  h5py shows MATLAB's f(i, j, c, k) as raw[k, c, j, i]; conv = correlation, zero pad 1."""
  h, w, _ = x.shape
  a = np.pad(x.astype(np.float64), ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
  with h5py.File(path, "r") as f:
    for r in f["net/layers"][()].ravel():
      layer = f[r]
      t = "".join(map(chr, layer["type"][()].ravel()))
      if t == "SubP":
        a = subp_split_loop(a) if layer["scale"][()].item() < 1 else subp_merge_loop(a)
      elif t == "concat":
        a = np.concatenate([a, np.full(a.shape[:2] + (1,), sigma)], axis=-1)
      elif t == "relu":
        a = np.maximum(a, 0)
      else:
        wref, bref = layer["weights"][()].ravel()
        raw, bias = f[wref][()], f[bref][()].ravel()
        raw = raw.reshape((len(bias), a.shape[-1], 3, 3))
        p = np.pad(a, ((1, 1), (1, 1), (0, 0)))
        out = np.broadcast_to(bias, a.shape[:2] + (len(bias),)).copy()
        for i in range(3):
          for j in range(3):
            out += p[i:i + a.shape[0], j:j + a.shape[1]] @ raw[:, :, j, i].T
        a = out
  return a[:h, :w]


# -------------------------------------------------------------------------- the model

def test_space_to_depth_is_vl_nnSubP_and_round_trips():
  x = np.random.default_rng(0).random((2, 6, 8, 3)).astype(np.float32)
  y = np.asarray(ffdnet.space_to_depth(jnp.asarray(x)))
  for n in range(2):
    np.testing.assert_array_equal(y[n], subp_split_loop(x[n]))
    np.testing.assert_array_equal(subp_merge_loop(y[n]), x[n])
  np.testing.assert_array_equal(np.asarray(ffdnet.depth_to_space(jnp.asarray(y))), x)


@pytest.mark.parametrize("channels,shape", [(1, (7, 10)), (3, (8, 9))])
def test_imported_tiny_mat_matches_numpy_forward(tmp_path, channels, shape):
  path = str(tmp_path / "tiny.mat")
  write_ffdnet_mat(path, random_convs(channels))
  config, variables = ffdnet_weights.import_ffdnet(path)
  assert config == {"name": "ffdnet", "channels": channels,
                    "kwargs": {"depth": 3, "features": 6, "batch_norm": False}}
  model = models.get_model("ffdnet", **config["kwargs"])
  x = np.random.default_rng(1).random((1,) + shape + (channels,)).astype(np.float32)
  got = model.apply(variables, jnp.asarray(x), 0.1, train=False)
  assert got.shape == x.shape
  np.testing.assert_allclose(np.asarray(got[0]), numpy_forward(path, x[0], 0.1), atol=2e-5)


def test_shipped_gray_matches_numpy_forward_on_a_crop():
  path = _shipped("FFDNet_gray.mat")
  config, variables = ffdnet_weights.import_ffdnet(path)
  assert config["kwargs"] == {"depth": 15, "features": 64, "batch_norm": False}
  x = np.random.default_rng(2).random((11, 14, 1)).astype(np.float32)
  got = models.get_model("ffdnet", **config["kwargs"]).apply(variables, x[None], 25 / 255,
                                                             train=False)
  np.testing.assert_allclose(np.asarray(got[0]), numpy_forward(path, x, 25 / 255), atol=1e-4)


def _bsd_crop(n=1, size=96):
  names = sorted(os.listdir(BSD68))[:n] if os.path.isdir(BSD68) else []
  if not names:
    pytest.skip("BSD68 absent (shared data not mounted)")
  return np.stack([reading.read_image(os.path.join(BSD68, f))[0][:size, :size]
                   for f in names]).astype(np.float32)


def _psnr(a, b):
  return 10 * np.log10(1.0 / np.mean((np.clip(a, 0, 1) - b) ** 2))


def _gray_model(order=(0, 1, 2, 3)):
  """The released gray model, jitted; `order` re-reads its split channels (first conv's
  inputs and last conv's outputs) as if the split used another offset order."""
  config, variables = ffdnet_weights.import_ffdnet(_shipped("FFDNet_gray.mat"))
  params = jax.tree.map(np.asarray, variables["params"])
  first, last = "conv0", f"conv{config['kwargs']['depth'] - 1}"
  inputs, outputs = np.array(list(order) + [4]), np.array(order)
  params[first] = dict(params[first], kernel=params[first]["kernel"][:, :, inputs])
  params[last] = {"kernel": params[last]["kernel"][..., outputs],
                  "bias": params[last]["bias"][outputs]}
  model = models.get_model("ffdnet", **config["kwargs"])
  return jax.jit(lambda x, s: model.apply({"params": params}, x, s, train=False))


def test_channel_order_matters_and_the_released_one_denoises():
  """vl_nnSubP's order (row offset fastest) restores; the column-offset-fastest one fails."""
  clean = _bsd_crop(1, 64)
  noisy = clean + 25 / 255 * np.random.default_rng(3).standard_normal(clean.shape)
  right = _psnr(np.asarray(_gray_model()(noisy, 25 / 255)), clean)
  wrong = _psnr(np.asarray(_gray_model((0, 2, 1, 3))(noisy, 25 / 255)), clean)
  assert right > _psnr(noisy, clean) + 6.0
  assert right > wrong + 1.0, (right, wrong)  # 27.70 vs 25.84 dB on this crop


def test_higher_sigma_map_smooths_more():
  clean = _bsd_crop(1, 64)
  noisy = clean + 25 / 255 * np.random.default_rng(4).standard_normal(clean.shape)
  apply = _gray_model()
  tv = [float(np.abs(np.diff(np.asarray(apply(noisy.astype(np.float32), s / 255)),
                             axis=1)).sum()) for s in (5, 15, 25, 50, 75)]
  assert all(a > b for a, b in zip(tv, tv[1:])), tv


def test_sigma_forms_agree_and_bad_forms_fail():
  model = models.get_model("ffdnet", depth=3, features=8, batch_norm=False)
  x = jnp.asarray(np.random.default_rng(5).random((2, 9, 7, 1)), jnp.float32)
  v = model.init(jax.random.key(0), x, 0.1, train=False)
  out = model.apply(v, x, 0.1, train=False)
  for s in (jnp.full((2,), 0.1), jnp.full((2, 9, 7, 1), 0.1)):
    np.testing.assert_allclose(model.apply(v, x, s, train=False), out, atol=1e-6)
  packed = jnp.concatenate([x, jnp.full((2, 9, 7, 1), 0.1)], -1)
  np.testing.assert_allclose(model.apply(v, packed, train=False), out, atol=1e-6)
  with pytest.raises(ValueError, match="sigma must be"):
    model.apply(v, x, jnp.zeros((2, 3)), train=False)
  with pytest.raises(ValueError, match="packed input"):
    model.apply(v, jnp.zeros((1, 8, 8, 3)), train=False)


# ---------------------------------------------------------------- the noise-level map

def test_noise_map_chain_reports_the_noise_it_adds():
  x = jnp.full((3, 32, 32, 1), 0.5)
  key = jax.random.key(7)
  plain = corruptions.chain([{"name": "gaussian_noise", "sigma": (0.0, 75.0), "clip": False}])
  noisy, _ = plain(key, x)
  noisy2, _, level = corruptions.with_noise_map(plain)(key, x)
  np.testing.assert_array_equal(noisy, noisy2)  # the same draws as without the map
  z = np.asarray((noisy - x) / level)
  assert abs(z.std() - 1) < 0.05 and np.ptp(np.asarray(level)[:, 0, 0, 0]) > 0
  spec = [{"name": "gaussian_noise_map", "sigma": (5.0, 75.0), "clip": False, "spatial": True}]
  noisy, _, level = corruptions.chain(spec, noise_map=True)(key, jnp.full((2, 64, 64, 1), 0.5))
  level = np.asarray(level)
  assert level.std(axis=(1, 2)).min() > 1 / 255  # varies over each image
  assert abs(np.std((np.asarray(noisy) - 0.5) / level) - 1) < 0.05
  told = [{"name": "gaussian_noise_map", "sigma": 25.0, "clip": False, "map_sigma": 15.0}]
  _, _, level = corruptions.chain(told, noise_map=True)(key, x)
  np.testing.assert_allclose(level, 15 / 255, rtol=1e-6)


def test_noise_map_chain_refuses_two_noise_steps():
  two = [{"name": "gaussian_noise", "sigma": 5.0}, {"name": "gaussian_noise_map", "sigma": 5.0}]
  with pytest.raises(ValueError, match="at most one"):
    corruptions.chain(two, noise_map=True)
  with pytest.raises(ValueError, match="return_map"):
    corruptions.chain([{"name": "gaussian_noise_map", "sigma": 5.0, "return_map": True}])


# ------------------------------------------------------------------ task and training

def tiny_ffdnet(**overrides):
  c = ffdnet_config.get_config("quick")
  c.model.kwargs = {"depth": 3, "features": 8}
  c.patch_size, c.batch_size, c.total_steps = 16, 4, 4
  c.log_every_steps, c.eval_every_steps, c.checkpoint_every_steps = 1, 2, 2
  c.data.eval_crop, c.data.eval_max_images, c.data.eval_batch_size = 16, 2, 2
  c.eval.num_grid_images = 2
  return override(c, **overrides)


def test_task_errors_name_the_field():
  with pytest.raises(ValueError, match="config.model.name must be 'ffdnet'"):
    tasks.build(tiny_ffdnet(**{"model.name": "dncnn"}), local_device_count=1,
                process_count=1)
  with pytest.raises(ValueError, match="no noise step"):
    tasks.build(tiny_ffdnet(corruption=[{"name": "jpeg", "quality": 30}]),
                local_device_count=1, process_count=1)


def test_training_feeds_the_map_and_resumes_exactly(tmp_path):
  task = tasks.build(tiny_ffdnet(), local_device_count=1, process_count=1)
  assert task.input_shape() == (1, 16, 16, 2) and task.output_shape() == (1, 16, 16, 1)
  straight, resumed, _, _ = straight_and_resumed(tiny_ffdnet, tmp_path, total=4, stop=2,
                                                 eval_every_steps=100)
  assert int(resumed.step) == 4
  jax.tree.map(np.testing.assert_array_equal, straight.params, resumed.params)
  jax.tree.map(np.testing.assert_array_equal, straight.opt_state, resumed.opt_state)


# ----------------------------------------------------------------- import and restore

@pytest.fixture(scope="module")
def imported(tmp_path_factory):
  root = tmp_path_factory.mktemp("ffdnet")
  path = str(root / "tiny.mat")
  write_ffdnet_mat(path, random_convs(1, seed=8))
  workdir = import_weights.run(tiny_ffdnet(), str(root / "run"), path)
  from PIL import Image
  image = (np.random.default_rng(9).random((13, 17)) * 255).astype(np.uint8)
  Image.fromarray(image).save(root / "in.png")
  Image.fromarray(np.full((13, 17), 25, np.uint8)).save(root / "map25.png")
  Image.fromarray(np.full((8, 8), 25, np.uint8)).save(root / "small.png")
  return root, workdir


def _restore(root, workdir, name, **kw):
  out = str(root / name)
  restore.run(tiny_ffdnet(), workdir, str(root / "in.png"), out, **kw)
  return reading.read_image(os.path.join(out, "in.png"))[0]


def test_restore_sigma_map_and_estimate(imported, caplog):
  root, workdir = imported
  at25 = _restore(root, workdir, "s25", sigma=25.0)
  np.testing.assert_array_equal(_restore(root, workdir, "m25",
                                         sigma_map=str(root / "map25.png")), at25)
  assert np.abs(_restore(root, workdir, "s75", sigma=75.0) - at25).max() > 0
  caplog.set_level("INFO")
  _restore(root, workdir, "est")
  assert "estimated by skimage.restoration.estimate_sigma" in caplog.text


def test_restore_flag_errors(imported, tmp_path):
  root, workdir = imported
  with pytest.raises(ValueError, match=r"--sigma=300: must be in \[0, 255\]"):
    _restore(root, workdir, "bad", sigma=300.0)
  with pytest.raises(ValueError, match="give one of them"):
    _restore(root, workdir, "both", sigma=5.0, sigma_map=str(root / "map25.png"))
  with pytest.raises(ValueError, match="must have the image's size"):
    _restore(root, workdir, "size", sigma_map=str(root / "small.png"))
  with pytest.raises(ValueError, match="apply to --mode=restore"):
    modes.main("eval", tiny_ffdnet(), workdir, sigma=5.0)
  from tests.test_weights_dncnn import random_layers, write_mat
  dncnn = str(tmp_path / "dncnn.mat")
  write_mat(dncnn, random_layers(3, 1, 4))
  other = import_weights.run(tiny_ffdnet(), str(tmp_path / "dncnn"), dncnn)
  with pytest.raises(ValueError, match="only FFDNet runs"):
    restore.run(tiny_ffdnet(), other, str(root / "in.png"), str(tmp_path / "o"), sigma=5.0)


def test_reader_refuses_other_layouts(tmp_path):
  from tests.test_weights_dncnn import random_layers, write_mat
  dncnn = str(tmp_path / "dncnn.mat")
  write_mat(dncnn, random_layers(3, 1, 4))
  assert not ffdnet_weights.is_ffdnet(dncnn)
  with pytest.raises(ValueError, match=r"net.layers\[0\] has type 'conv', expected 'SubP'"):
    ffdnet_weights.import_ffdnet(dncnn)


# ------------------------------------------------------------------- published numbers

@pytest.mark.slow
def test_published_gray_bsd68_sigma25(tmp_path):
  """The released gray model on all 68 BSD68 images, the paper's protocol: 29.19 dB."""
  path = _shipped("FFDNet_gray.mat")
  if not os.path.isdir(BSD68):
    pytest.skip("BSD68 absent")
  c = ffdnet_config.get_config()
  workdir = import_weights.run(c, str(tmp_path / "run"), path)
  c.data.eval = f"folder:{BSD68}"
  c.eval.quantize = True
  c.eval.sweep = {"sigma25": ffdnet_config.eval_sweep(False)["sigma25"]}
  rows = evaluate.run(c, workdir)
  published = ffdnet_weights.PUBLISHED_PSNR[("FFDNet_gray.mat", "BSD68", 25)]
  assert rows[0]["n_images"] == 68
  assert abs(rows[0]["psnr"] - published) < 0.05, rows[0]["psnr"]
