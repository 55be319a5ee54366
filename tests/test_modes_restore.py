"""--mode=restore (restoration.modes.restore) with a tiny RGB model on PNGs of every layout (CPU)."""

import hashlib
import os
import subprocess
import sys

import jax
import numpy as np
import png
import pytest
from PIL import Image

from restoration import any_size
from restoration.runtime import checkpoints
from restoration.image_files import reading
from restoration import image_ops
from restoration.modes import restore
from restoration.runtime import run_log
from restoration import tasks
from tests.tiny import load_trained, tiny_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rgb_config():
  return tiny_config(**{"model.kwargs": {"depth": 2, "features": 8, "residual": True},
                        "batch_size": 2, "total_steps": 1, "eval_every_steps": 1,
                        "checkpoint_every_steps": 1, "data.channels": 3,
                        "eval.num_grid_images": 1})


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  """A workdir as training leaves it (config.json, latest + best checkpoints at step 1).

  Written directly with the trainer's Checkpointer: compiling a train step would only add time.
  """
  path = str(tmp_path_factory.mktemp("restore") / "run")
  c = rgb_config()
  task = tasks.build(c, local_device_count=1, process_count=1)
  state = jax.jit(task.init_state)()
  variables, meta = task.inference_variables(state), task.model_meta()
  os.makedirs(path)
  run_log.write_config(path, c)
  ckpt = checkpoints.Checkpointer(path)
  ckpt.save_latest(1, state, {}, variables, meta)
  assert ckpt.save_best(1, variables, meta, 20.0)
  ckpt.wait()
  ckpt.close()
  return path


def smooth(h, w, c, rng):
  yy, xx = np.mgrid[:h, :w]
  base = 0.5 + 0.3 * np.sin(xx / 4.0)[..., None] * np.cos(yy[..., None] / 5.0 + np.arange(c))
  return np.clip(base + 0.05 * rng.standard_normal((h, w, c)), 0, 1)


def write_inputs(folder):
  """8-bit gray, 8-bit RGB, RGBA, 16-bit gray PNGs of different sizes; name -> expected."""
  os.makedirs(folder, exist_ok=True)
  rng = np.random.default_rng(0)
  u8 = lambda a: np.uint8(np.round(a * 255))
  gray = u8(smooth(20, 23, 1, rng))[..., 0]
  rgb = u8(smooth(17, 30, 3, rng))
  rgba = np.concatenate([u8(smooth(24, 24, 3, rng)), rng.integers(0, 256, (24, 24, 1),
                                                                   dtype=np.uint8)], -1)
  g16 = np.uint16(np.round(smooth(33, 19, 1, rng)[..., 0] * 65535))
  Image.fromarray(gray, "L").save(os.path.join(folder, "gray8.png"))
  Image.fromarray(rgb, "RGB").save(os.path.join(folder, "rgb8.png"))
  Image.fromarray(rgba, "RGBA").save(os.path.join(folder, "rgba8.png"))
  with open(os.path.join(folder, "gray16.png"), "wb") as f:
    png.Writer(19, 33, greyscale=True, bitdepth=16).write(f, g16)
  return {"gray8.png": ("L", gray.shape, None), "rgb8.png": ("RGB", rgb.shape, None),
          "rgba8.png": ("RGBA", rgba.shape, rgba[..., 3]), "gray16.png": ("I;16", g16.shape, None)}


def hashes(folder):
  return {f: hashlib.sha256(open(os.path.join(folder, f), "rb").read()).hexdigest()
          for f in sorted(os.listdir(folder))}


def test_restore_keeps_layout_depth_alpha_and_inputs(workdir, tmp_path, monkeypatch):
  inputs = str(tmp_path / "in")
  expected = write_inputs(inputs)
  before = hashes(inputs)
  out = str(tmp_path / "out")
  counters = []
  jit_predict = restore.jit_predict
  monkeypatch.setattr(restore, "jit_predict",
                      lambda inference: counters.append(
                          any_size.CompileCounter(jit_predict(inference))) or counters[-1])
  written = restore.run(rgb_config(), workdir, inputs, out)
  inference, variables, _, _ = load_trained(rgb_config(), workdir)

  def reference(src):
    y = inference.predict(variables, image_ops.to_channels(src, 3)[None])
    return image_ops.to_channels(np.clip(np.asarray(y)[0], 0.0, 1.0), src.shape[-1])

  assert sorted(os.path.basename(p) for p in written) == sorted(expected)
  assert hashes(inputs) == before
  # A model with no spatial multiple runs each image at its own size: 4 sizes, 4 compiles.
  assert counters[0].count == 4 and counters[0].calls == 4
  for name, (mode, shape, alpha) in expected.items():
    src, src_info = reading.read_image(os.path.join(inputs, name))
    res, info = reading.read_image(os.path.join(out, name))
    assert (info.mode, info.bit_depth, info.channels) == (src_info.mode, src_info.bit_depth,
                                                          src_info.channels), name
    assert res.shape == src.shape and res.shape[:2] == shape[:2], name
    if alpha is not None:
      np.testing.assert_array_equal(info.alpha, alpha)
    else:
      assert info.alpha is None
    # The model was applied: equal to a direct application up to the output's quantisation,
    # borders included (no bucket padding for a model without a spatial multiple).
    want = reference(src)
    assert np.abs(res - src).mean() > 1e-3, name
    np.testing.assert_allclose(res, want, rtol=0, atol=0.5 / info.max_value + 1e-5,
                               err_msg=name)
  with Image.open(os.path.join(out, "gray16.png")) as im:
    assert im.mode.startswith("I")
  assert reading.read_image(os.path.join(out, "gray16.png"))[1].bit_depth == 16


def test_refuses_existing_outputs_unless_overwrite(workdir, tmp_path):
  inputs = str(tmp_path / "in")
  write_inputs(inputs)
  out = str(tmp_path / "out")
  restore.run(rgb_config(), workdir, os.path.join(inputs, "*.png"), out)
  os.remove(os.path.join(out, "rgb8.png"))
  first = hashes(out)
  stamps = {f: os.stat(os.path.join(out, f)).st_mtime_ns for f in first}
  with pytest.raises(FileExistsError, match="gray16.png.*--overwrite"):
    restore.run(rgb_config(), workdir, inputs, out)
  assert sorted(os.listdir(out)) == sorted(first)  # nothing written, not even rgb8.png
  assert {f: os.stat(os.path.join(out, f)).st_mtime_ns for f in first} == stamps
  written = restore.run(rgb_config(), workdir, inputs, out, overwrite=True)
  assert len(written) == 4 and "rgb8.png" in os.listdir(out)
  assert hashes(out) == {**first, "rgb8.png": hashes(out)["rgb8.png"]}  # same model, same bytes


def test_skip_existing_restores_only_the_missing_outputs(workdir, tmp_path, capsys):
  inputs = str(tmp_path / "in")
  write_inputs(inputs)
  out = str(tmp_path / "out")
  restore.run(rgb_config(), workdir, inputs, out)
  os.remove(os.path.join(out, "rgb8.png"))
  kept = {f: os.stat(os.path.join(out, f)).st_mtime_ns for f in os.listdir(out)}
  capsys.readouterr()
  written = restore.run(rgb_config(), workdir, inputs, out, skip_existing=True)
  assert written == [os.path.join(out, "rgb8.png")]
  assert {f: os.stat(os.path.join(out, f)).st_mtime_ns for f in kept} == kept  # untouched
  assert "3 of 4 input(s) already have an output" in capsys.readouterr().out
  with pytest.raises(ValueError, match="contradict"):
    restore.run(rgb_config(), workdir, inputs, out, overwrite=True, skip_existing=True)


class _GrayInference:
  """What restore_image reads of a 1-channel model's inference."""
  channels, multiple = 1, 1
  options = type("O", (), {"tile": 0, "tile_overlap": 0, "self_ensemble": False})()

  @staticmethod
  def to_image(y):
    return y


@pytest.mark.parametrize("colour", restore.COLOUR_ON_GRAY)
def test_gray_model_on_a_colour_photo_keeps_its_colour(colour):
  """A 1-channel model that halves its input: per channel, each of R, G, B is halved; in luma,
  Y is halved and Cb, Cr stay. Either way the output is in colour, not gray."""
  rng = np.random.default_rng(0)
  x = rng.uniform(0.4, 0.6, (9, 7, 3)).astype(np.float32)  # in gamut either way: no clipping
  y = restore.restore_image(lambda v: v * 0.5, x, inference=_GrayInference(), colour=colour)
  assert y.shape == x.shape
  assert np.abs(y[..., 0] - y[..., 1]).max() > 0.05  # not gray
  if colour == "per_channel":
    np.testing.assert_allclose(y, x * 0.5, atol=1e-6)
  else:
    np.testing.assert_allclose(image_ops.luma(y), 0.5 * image_ops.luma(x), atol=1e-6)
    np.testing.assert_allclose(y - image_ops.luma(y), x - image_ops.luma(x), atol=1e-6)
  gray = rng.uniform(0, 1, (9, 7, 1)).astype(np.float32)  # gray stays gray
  np.testing.assert_allclose(
      restore.restore_image(lambda v: v * 0.5, gray, inference=_GrayInference(), colour=colour),
      gray * 0.5, atol=1e-6)


def test_output_dir_equal_to_input_dir_refuses(workdir, tmp_path):
  inputs = str(tmp_path / "in")
  write_inputs(inputs)
  before = hashes(inputs)
  for overwrite in (False, True):
    with pytest.raises(ValueError, match="would overwrite input"):
      restore.run(rgb_config(), workdir, inputs, inputs, overwrite=overwrite)
  assert hashes(inputs) == before


def test_tiled_self_ensemble_restore_is_exact(workdir, tmp_path):
  """Tiles of 16 overlapping by 8 are exact for the receptive radius 2, ensemble included."""
  inputs = str(tmp_path / "in")
  write_inputs(inputs)
  c = rgb_config()
  c.eval.tile = 16
  c.eval.tile_overlap = 8
  c.eval.self_ensemble = True
  written = restore.run(c, workdir, os.path.join(inputs, "rgb*.png"), str(tmp_path / "out"))
  inference, variables, _, _ = load_trained(c, workdir)
  apply = lambda x: inference.predict(variables, x)
  assert len(written) == 2
  for path in written:
    src, _ = reading.read_image(os.path.join(inputs, os.path.basename(path)))
    want = np.clip(np.asarray(any_size.self_ensemble(apply, src[None]))[0], 0.0, 1.0)
    res, _ = reading.read_image(path)
    np.testing.assert_allclose(res, want, rtol=0, atol=0.5 / 255 + 1e-5)


def test_missing_input_and_step(workdir, tmp_path):
  with pytest.raises(FileNotFoundError, match="no images match"):
    restore.run(rgb_config(), workdir, str(tmp_path / "nothing*.png"), str(tmp_path / "out"))
  inputs = str(tmp_path / "in")
  write_inputs(inputs)
  with pytest.raises(FileNotFoundError, match="available steps"):
    restore.run(rgb_config(), workdir, inputs, str(tmp_path / "out"), step=99)
  assert not os.path.exists(tmp_path / "out")
  assert len(restore.run(rgb_config(), workdir, inputs, str(tmp_path / "out"), step=1)) == 4


@pytest.mark.slow  # a subprocess: JAX start-up and compiles of its own
def test_launch_restore_subprocess(workdir, tmp_path):
  inputs = str(tmp_path / "in")
  write_inputs(inputs)
  out = str(tmp_path / "out")
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  cmd = [sys.executable, "launch.py", "--mode=restore", f"--workdir={workdir}",
         f"--input={os.path.join(inputs, '*8.png')}", f"--output={out}"]
  proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert sorted(os.listdir(out)) == ["gray8.png", "rgb8.png", "rgba8.png"]
  assert f"restored 3 image(s) into {out}" in proc.stdout


def test_model_and_channels_come_from_the_workdir(workdir, tmp_path):
  """A gray, deeper --config restores with the workdir's RGB model: the same bytes."""
  inputs = str(tmp_path / "in")
  write_inputs(inputs)
  pattern = os.path.join(inputs, "rgb*.png")
  restore.run(rgb_config(), workdir, pattern, str(tmp_path / "want"))
  other = rgb_config()
  other.model.kwargs = {"depth": 4, "features": 16}
  other.data.channels = 1
  written = restore.run(other, workdir, pattern, str(tmp_path / "got"))
  assert len(written) == 2
  assert hashes(str(tmp_path / "got")) == hashes(str(tmp_path / "want"))


def test_bad_eval_fields_fail_before_any_work(workdir, tmp_path):
  inputs = str(tmp_path / "in")
  write_inputs(inputs)
  c = rgb_config()
  c.eval.tile = 16
  c.eval.tile_overlap = 16
  with pytest.raises(ValueError, match=r"config\.eval\.tile_overlap=16 must be smaller"):
    restore.run(c, workdir, inputs, str(tmp_path / "out"))
  assert not os.path.exists(tmp_path / "out")
