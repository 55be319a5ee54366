"""Import of the released DnCNN weights (restoration.weights.dncnn) and the paper's eval protocol.

Synthetic MatConvNet v7.3 files (written with h5py in the layout MATLAB uses) run everywhere;
the shipped files and the published-PSNR reproductions skip when ../shared/data is absent.
Runtimes on 2 CPU cores: Set12 sigma 25 ~25 s (default run); the slow cells ~3.5 min per
BSD68/CBSD68 cell and ~25 s per Set12 cell (see test_published_psnr_slow).
"""

import functools
import os

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import dncnn as dncnn_config
from benchmarks import dncnn_published
from restoration import losses, models
from restoration.eval import evaluator
from restoration.eval import metrics
from restoration.weights import dncnn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEIGHTS = os.path.join(ROOT, dncnn.WEIGHTS_DIR)
TEST_SETS = os.path.join(ROOT, dncnn.TEST_SETS_DIR)
FILES = ("dncnn_s15.mat", "dncnn_s25.mat", "dncnn_s50.mat", "dncnn_gray_blind.mat",
         "cdncnn_color_blind.mat")
# (depth, channels) of each shipped file, from the data README.
SHIPPED = {"dncnn_s15.mat": (17, 1), "dncnn_s25.mat": (17, 1), "dncnn_s50.mat": (17, 1),
           "dncnn_gray_blind.mat": (20, 1), "cdncnn_color_blind.mat": (20, 3)}
TOLERANCE_DB = 0.03


def _shipped(name: str) -> str:
  path = os.path.join(WEIGHTS, name)
  if not os.path.isfile(path):
    pytest.skip(f"{path} absent (shared data not mounted)")
  return path


# ------------------------------------------------------------ synthetic MATLAB v7.3 files

def _char(group, name, text):
  group.create_dataset(name, data=np.array([[ord(ch)] for ch in text], np.uint16))


def _matlab(group_or_file, name, array):
  """Stores a MATLAB array the way v7.3 does: trailing 1s dropped, axes reversed."""
  a = np.asarray(array, np.float32)
  while a.ndim > 2 and a.shape[-1] == 1:
    a = a[..., 0]
  return group_or_file.create_dataset(name, data=a.T)


def write_mat(path, layers):
  """layers: ('conv', filters [H, W, Cin, Cout], biases [Cout], {field: value}) or ('relu',)."""
  with h5py.File(path, "w") as f:
    refs_group = f.create_group("#refs#")
    refs = []
    for i, layer in enumerate(layers):
      g = refs_group.create_group(f"layer{i}")
      _char(g, "type", layer[0])
      if layer[0] == "conv":
        w = _matlab(refs_group, f"w{i}", layer[1])
        b = _matlab(refs_group, f"b{i}", np.asarray(layer[2])[None, :])
        g.create_dataset("weights", data=np.array([[w.ref], [b.ref]], dtype=h5py.ref_dtype))
        extra = {"pad": 1.0, "stride": 1.0, **(layer[3] if len(layer) > 3 else {})}
        for k, v in extra.items():
          g.create_dataset(k, data=np.atleast_2d(np.asarray(v, np.float64)))
      refs.append(g.ref)
    f.create_group("net").create_dataset(
        "layers", data=np.array(refs, dtype=h5py.ref_dtype)[:, None])


def random_layers(depth, channels, features, seed=0):
  rng = np.random.default_rng(seed)
  layers = []
  for j in range(depth):
    cin = channels if j == 0 else features
    cout = channels if j == depth - 1 else features
    layers.append(("conv", rng.normal(0, 0.3, (3, 3, cin, cout)), rng.normal(0, 0.1, cout)))
    if j < depth - 1:
      layers.append(("relu",))
  return layers


# ------------------------------------------------- independent NumPy forward pass

def numpy_forward(path, x):
  """x - net(x) for one HxWxC image, straight from the HDF5 arrays with MATLAB's indexing.

  h5py shows MATLAB's f(i, j, c, k) (row offset i, column offset j, in c, out k) as
  raw[k, c, j, i] (raw[c, j, i] when C_out = 1 was dropped); MatConvNet's conv is a
  correlation with 1 pixel of zero padding: y(r, s, k) = b(k) + sum f(i, j, c, k) x(r+i-1, s+j-1, c).
  """
  h, w, _ = x.shape
  a = x.astype(np.float64)
  with h5py.File(path, "r") as f:
    layers = [f[r] for r in f["net/layers"][()].ravel()]
    for layer in layers:
      if "".join(map(chr, layer["type"][()].ravel())) == "relu":
        a = np.maximum(a, 0.0)
        continue
      wref, bref = layer["weights"][()].ravel()
      raw = f[wref][()].astype(np.float64)
      if raw.ndim == 3:
        raw = raw[None]
      bias = f[bref][()].astype(np.float64).ravel()
      padded = np.pad(a, ((1, 1), (1, 1), (0, 0)))
      out = np.broadcast_to(bias, (h, w, bias.size)).copy()
      for i in range(3):
        for j in range(3):
          # raw[:, :, j, i] is f(i, j, :, :) as [k, c].
          out += padded[i:i + h, j:j + w, :] @ raw[:, :, j, i].T
      a = out
  return x - a


def jax_forward(model_config, variables, x):
  model = models.get_model(model_config["name"], **model_config["kwargs"])
  return np.asarray(model.apply(variables, jnp.asarray(x[None], jnp.float32), train=False)[0])


# ------------------------------------------------------------------ model fields

def test_dncnn_default_unchanged_and_folded_form():
  x = jax.ShapeDtypeStruct((1, 16, 16, 1), jnp.float32)
  count = lambda v: sum(int(np.prod(a.shape)) for a in jax.tree.leaves(v))
  init = lambda m: jax.eval_shape(functools.partial(m.init, train=False), jax.random.key(0), x)
  default = init(models.get_model("dncnn"))
  assert count(default["params"]) == 556_097 and "batch_stats" in default
  assert "bias" not in default["params"]["conv1"]
  folded = init(models.get_model("dncnn", batch_norm=False))
  assert set(folded) == {"params"}
  assert count(folded["params"]) == 555_137  # 554,177 + 15 middle biases of 64
  assert sorted(folded["params"]) == sorted(f"conv{i}" for i in range(17))
  assert folded["params"]["conv5"]["bias"].shape == (64,)


# ----------------------------------------------------------------- synthetic files

@pytest.mark.parametrize("channels", [1, 3])
def test_import_synthetic_matches_numpy(tmp_path, channels):
  path = str(tmp_path / "net.mat")
  write_mat(path, random_layers(depth=4, channels=channels, features=5))
  model_config, variables = dncnn.import_dncnn(path)
  assert model_config == {"name": "dncnn", "channels": channels,
                          "kwargs": {"depth": 4, "features": 5, "batch_norm": False,
                                     "residual": True}}
  x = np.random.default_rng(1).uniform(0, 1, (20, 24, channels))
  np.testing.assert_allclose(jax_forward(model_config, variables, x), numpy_forward(path, x),
                             atol=1e-4)


def test_import_reads_asymmetric_kernel_in_image_orientation(tmp_path):
  # One nonzero tap at row offset -1, column offset +1 (f(1, 3) in MATLAB's 1-based indexing):
  # the output at (r, s) is the input at (r - 1, s + 1). A transposed import would differ.
  layers = random_layers(depth=2, channels=1, features=1)
  first = np.zeros((3, 3, 1, 1))
  first[0, 2, 0, 0] = 1.0
  layers[0] = ("conv", first, np.zeros(1))
  centre = np.zeros((3, 3, 1, 1))
  centre[1, 1, 0, 0] = -1.0  # net(x) = -h, so x - net(x) = x + h
  layers[2] = ("conv", centre, np.zeros(1))
  path = str(tmp_path / "net.mat")
  write_mat(path, layers)
  model_config, variables = dncnn.import_dncnn(path)
  x = np.random.default_rng(2).uniform(0, 1, (6, 7, 1))
  got = jax_forward(model_config, variables, x)[..., 0]
  shifted = np.zeros((6, 7))
  shifted[1:, :-1] = x[:-1, 1:, 0]
  np.testing.assert_allclose(got, x[..., 0] + shifted, atol=1e-6)


def test_not_hdf5(tmp_path):
  path = tmp_path / "weights.mat"
  path.write_bytes(b"MATLAB 5.0 MAT-file" + bytes(200))
  with pytest.raises(ValueError, match=r"weights.mat: not an HDF5 file.*v7\.3"):
    dncnn.import_dncnn(str(path))
  with pytest.raises(FileNotFoundError, match="missing.mat"):
    dncnn.import_dncnn(str(tmp_path / "missing.mat"))


def test_no_net_layers(tmp_path):
  path = str(tmp_path / "other.mat")
  with h5py.File(path, "w") as f:
    f.create_dataset("weights", data=np.zeros(3))
  with pytest.raises(ValueError, match=r"no MatConvNet 'net.layers'.*weights"):
    dncnn.import_dncnn(path)


def test_truncated_layer_lists(tmp_path):
  layers = random_layers(depth=5, channels=1, features=4)
  path = str(tmp_path / "a.mat")
  write_mat(path, layers[:-1])  # ends with a relu
  with pytest.raises(ValueError, match=r"8 layers ending with a relu; .* 2d - 1"):
    dncnn.import_dncnn(path)
  write_mat(path, layers[:-2])  # ends with a middle conv: 4 -> 4 where 4 -> 1 is needed
  with pytest.raises(ValueError, match=r"net.layers\[6\] \(conv 3 of 4\) has filters "
                                       r"\(H, W, C_in, C_out\) \(3, 3, 4, 4\).*\(3, 3, 4, 1\)"):
    dncnn.import_dncnn(path)
  write_mat(path, layers[:1])
  with pytest.raises(ValueError, match=r"1 layer\(s\)"):
    dncnn.import_dncnn(path)


def test_wrong_layer_type_and_geometry(tmp_path):
  layers = random_layers(depth=3, channels=1, features=4)
  path = str(tmp_path / "a.mat")
  write_mat(path, layers[:3] + [("pool",)] + layers[4:])
  with pytest.raises(ValueError, match=r"net.layers\[3\] has type 'pool', expected 'relu'"):
    dncnn.import_dncnn(path)
  strided = list(layers)
  strided[2] = strided[2] + ({"stride": 2.0},)
  write_mat(path, strided)
  with pytest.raises(ValueError, match=r"net.layers\[2\] \(conv\) has stride \[2.0\]"):
    dncnn.import_dncnn(path)
  big = list(layers)
  big[2] = ("conv", np.zeros((5, 5, 4, 4)), np.zeros(4))
  write_mat(path, big)
  with pytest.raises(ValueError, match=r"net.layers\[2\] \(conv\) has filters \(5, 5, 4, 4\)"):
    dncnn.import_dncnn(path)


def test_shape_mismatch_names_layer(tmp_path):
  layers = random_layers(depth=4, channels=1, features=4)
  layers[4] = ("conv", np.zeros((3, 3, 3, 4)), np.zeros(4))  # conv 2 reads 3 channels, not 4
  path = str(tmp_path / "a.mat")
  write_mat(path, layers)
  with pytest.raises(ValueError, match=r"net.layers\[4\] \(conv 2 of 4\) has filters .* "
                                       r"\(3, 3, 3, 4\); .* needs \(3, 3, 4, 4\)"):
    dncnn.import_dncnn(path)


# --------------------------------------------------------------------- eval protocol

def test_per_image_metrics_rounds_output_not_input():
  rng = np.random.default_rng(3)
  clean = np.round(rng.uniform(0, 255, (2, 16, 16, 3))) / 255.0
  noisy = clean + rng.normal(0, 25 / 255, clean.shape)  # unclipped, as the model sees it
  restored = clean + rng.normal(0, 5 / 255, clean.shape)
  options = dict(y_channel=False, crop_border=0, quantize=True)
  got = jax.device_get(evaluator.restoration_metrics(
      jnp.asarray(restored, jnp.float32), jnp.asarray(noisy, jnp.float32),
      jnp.asarray(clean, jnp.float32), loss_fn=losses.make_loss({"mse": 1.0}), options=options))
  psnr = lambda a, b: 10 * np.log10(1.0 / np.mean((a - b) ** 2, axis=(1, 2, 3)))
  out_u8 = np.round(np.clip(restored, 0, 1) * 255) / 255
  np.testing.assert_allclose(got["psnr"], psnr(out_u8, clean), atol=2e-3)
  np.testing.assert_allclose(got["input_psnr"], psnr(noisy, clean), atol=2e-3)
  # The old convention (input clipped and rounded too) reads about 0.4 dB higher here.
  noisy_u8 = np.round(np.clip(noisy, 0, 1) * 255) / 255
  assert np.all(psnr(noisy_u8, clean) > got["input_psnr"] + 0.1)
  assert metrics.convention_name(**options) == "rgb_uint8out"


def test_eval_overrides_apply_to_the_dncnn_config(tmp_path):
  path = str(tmp_path / "net.mat")
  write_mat(path, random_layers(depth=3, channels=3, features=4))
  model_config, _ = dncnn.import_dncnn(path)
  c = dncnn_config.get_config()
  c.update_from_flattened_dict(dncnn.eval_overrides(model_config))
  options = evaluator.EvalOptions.from_config(c)
  assert models.get_model(c.model.name, **c.model.kwargs).batch_norm is False
  assert c.data.channels == 3 and c.data.eval_crop == 0 and c.eval.tile == 0
  assert options.convention == "rgb_uint8out"
  assert all(s[0]["clip"] is False for s in c.eval.sweep.values())


# ------------------------------------------------------------------ shipped files

@pytest.mark.parametrize("name", FILES)
def test_shipped_file_matches_numpy(name):
  path = _shipped(name)
  model_config, variables = dncnn.import_dncnn(path)
  depth, channels = SHIPPED[name]
  assert model_config["kwargs"]["depth"] == depth and model_config["channels"] == channels
  assert model_config["kwargs"]["features"] == 64
  x = np.random.default_rng(4).uniform(0, 1, (20, 24, channels))
  np.testing.assert_allclose(jax_forward(model_config, variables, x), numpy_forward(path, x),
                             atol=1e-4)


def _check_published(name, test_set, sigma, tmp_path):
  """--mode=import of the released file, then --mode=eval of the test set at sigma."""
  if not os.path.isdir(os.path.join(TEST_SETS, test_set)):
    pytest.skip(f"{TEST_SETS}/{test_set} absent (shared data not mounted)")
  row = dncnn_published.evaluate_published(name, test_set, sigma, str(tmp_path / name))
  # Unclipped Gaussian noise: input PSNR is 20 log10(255 / sigma) up to sampling error.
  assert abs(row["input_psnr"] - 20 * np.log10(255 / sigma)) < 0.01
  assert row["convention"] == "rgb_uint8out" and row["checkpoint"] == "best"
  published = dncnn.PUBLISHED_PSNR[(name, test_set, sigma)]
  assert abs(row["psnr"] - published) < TOLERANCE_DB, (row["psnr"], published)


def test_published_psnr_set12_sigma25(tmp_path):
  _check_published("dncnn_s25.mat", "Set12", 25, tmp_path)


# ~20 min on 2 cores: every DnCNN-S cell (BSD68 ~3.5 min each, Set12 ~25 s), the blind models
# at sigma 25 (~4 min each). The other blind cells (4 x ~4 min) run in
# benchmarks/dncnn_published.py, which prints the whole table.
SLOW_CELLS = [(n, s, sig) for (n, s, sig) in dncnn.PUBLISHED_PSNR
              if n.startswith("dncnn_s") or sig == 25]


@pytest.mark.slow
@pytest.mark.parametrize("name,test_set,sigma",
                         [c for c in SLOW_CELLS if c != ("dncnn_s25.mat", "Set12", 25)])
def test_published_psnr_slow(name, test_set, sigma, tmp_path):
  _check_published(name, test_set, sigma, tmp_path)


# ------------------------------------------------------------------ import mode, restore, fine-tuning

def test_import_mode_restore_and_init_from(tmp_path):
  """--mode=import writes a workdir that restore reads (output == the file's own forward pass)
  and that config.init_from fine-tunes from (fresh optimizer, same starting params)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from restoration import tasks  # pylint: disable=g-import-not-at-top
  from restoration.runtime import trained_run
  from restoration.modes import import_weights
  from restoration.modes import restore
  from restoration.modes import train
  from tests.tiny import tiny_config  # pylint: disable=g-import-not-at-top
  mat = str(tmp_path / "net.mat")
  write_mat(mat, random_layers(depth=3, channels=1, features=4))
  workdir = str(tmp_path / "imported")
  import_weights.run(dncnn_config.get_config(), workdir, mat)
  with pytest.raises(FileExistsError, match="best/"):
    import_weights.run(dncnn_config.get_config(), workdir, mat)  # never over an existing run
  run = trained_run.load_run(workdir)
  assert (run.step, run.which, run.meta["channels"]) == (0, "best", 1)
  assert run.config.eval.quantize is True and run.config.data.eval_crop == 0
  # Restore a user's noisy gray photo with it.
  noisy = np.random.default_rng(5).integers(0, 256, (21, 26), dtype=np.uint8)
  os.makedirs(tmp_path / "in")
  Image.fromarray(noisy, "L").save(tmp_path / "in" / "photo.png")
  (out,) = restore.run(run.config, workdir, str(tmp_path / "in"), str(tmp_path / "out"))
  want = numpy_forward(mat, noisy[..., None] / 255.0)
  got = np.asarray(Image.open(out), np.float64)[..., None] / 255.0
  assert np.abs(got - np.clip(want, 0, 1)).max() <= 0.5 / 255 + 1e-4
  # Fine-tuning: same architecture, another run's variables, a fresh optimizer.
  kwargs = run.meta["model"]["kwargs"]
  c = tiny_config(**{"model.name": "dncnn", "model.kwargs": kwargs, "init_from": workdir,
                     "total_steps": 1, "optimizer.learning_rate": 1e-12})
  final = train.train_and_evaluate(c, str(tmp_path / "tuned"), devices=jax.local_devices()[:1])
  for a, b in zip(jax.tree.leaves(final.params), jax.tree.leaves(run.variables["params"]),
                  strict=True):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)
  bad = tiny_config(**{"model.name": "dncnn", "model.kwargs": dict(kwargs, features=8),
                       "init_from": workdir})
  task = tasks.build(bad, local_device_count=1, process_count=1)
  with pytest.raises(ValueError, match="config.init_from=.*do not fit config.model"):
    task.start_from(jax.jit(task.init_state)(), run.variables, workdir)


@pytest.mark.slow  # one full-size CBSD68 photo through the 20-layer CDnCNN-B (~20 s)
def test_restore_noisy_colour_photo_with_imported_cdncnn(tmp_path):
  """A user's noisy colour photo (8-bit PNG, noise sigma 25 baked in) restored by the imported
  CDnCNN-B through --mode=restore: same size and mode, and the paper's gain over the input
  (CBSD68 average at sigma 25: 20.17 -> 31.23 dB; this textured photo, clipped and rounded to
  8 bits: 20.53 -> 28.00 dB measured, so it must gain over 6 dB)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from restoration.runtime import trained_run  # pylint: disable=g-import-not-at-top
  from restoration.modes import import_weights
  from restoration.modes import restore
  mat = _shipped("cdncnn_color_blind.mat")
  photo = os.path.join(TEST_SETS, "CBSD68", "101085.png")
  if not os.path.isfile(photo):
    pytest.skip(f"{photo} absent (shared data not mounted)")
  clean = np.asarray(Image.open(photo).convert("RGB"), np.float64)
  noisy = clean + np.random.default_rng(0).normal(0.0, 25.0, clean.shape)
  os.makedirs(tmp_path / "in")
  src = tmp_path / "in" / "noisy.png"
  Image.fromarray(np.clip(np.round(noisy), 0, 255).astype(np.uint8), "RGB").save(src)
  workdir = str(tmp_path / "cdncnn_b")
  import_weights.run(dncnn_config.get_config(), workdir, mat)
  run = trained_run.load_run(workdir)
  (out,) = restore.run(run.config, workdir, str(tmp_path / "in"), str(tmp_path / "out"))
  restored = Image.open(out)
  assert restored.mode == "RGB" and restored.size == Image.open(src).size
  as_batch = lambda a: jnp.asarray(np.asarray(a, np.float32)[None] / 255.0)
  before = float(metrics.psnr(as_batch(Image.open(src)), as_batch(clean))[0])
  after = float(metrics.psnr(as_batch(restored), as_batch(clean))[0])
  assert before < 21.0 and after > before + 6.0, (before, after)
