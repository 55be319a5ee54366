"""--mode=eval (restoration.eval_mode) on a tiny model trained once for the module (CPU)."""

import csv
import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
from PIL import Image

from restoration import corruptions
from restoration import eval_mode
from restoration import evaluate
from restoration import inference
from restoration import state as state_lib
from restoration import train
from tests.tiny import tiny_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SWEEP = {f"sigma{s}": [{"name": "gaussian_noise", "sigma": float(s)}] for s in (25, 50)}
TOTAL_STEPS = 80


def learn_config():
  """A cnn that learns gaussian denoising in a few dozen CPU steps."""
  return tiny_config(**{
      "model.kwargs": {"depth": 3, "features": 16, "residual": True}, "patch_size": 32,
      "batch_size": 8, "total_steps": TOTAL_STEPS, "log_every_steps": 20,
      "eval_every_steps": TOTAL_STEPS // 2, "checkpoint_every_steps": TOTAL_STEPS // 2,
      "data.eval_crop": 32, "data.eval_max_images": 4, "data.eval_batch_size": 4,
      "eval.sweep": SWEEP})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("eval_mode") / "trained")
  train.train_and_evaluate(learn_config(), workdir, devices=jax.local_devices()[:1])
  return workdir


@pytest.fixture(scope="module")
def evaluated(trained, tmp_path_factory):
  """A copy of the trained workdir after one eval-mode run on builtin; (workdir, rows)."""
  workdir = str(tmp_path_factory.mktemp("eval_mode") / "evaluated")
  shutil.copytree(trained, workdir)
  rows = eval_mode.run(learn_config(), workdir)
  return workdir, rows


def copy_of(src, tmp_path, name="run"):
  dst = str(tmp_path / name)
  shutil.copytree(src, dst)
  return dst


def read_rows(workdir):
  with open(os.path.join(workdir, "eval", "results.json")) as f:
    return json.load(f)


def write_folder(path, sizes=((40, 36),) * 3):
  """Smooth gray PNGs (so denoising helps), of the given sizes."""
  os.makedirs(path, exist_ok=True)
  rng = np.random.default_rng(0)
  for i, (h, w) in enumerate(sizes):
    yy, xx = np.mgrid[:h, :w]
    img = 0.5 + 0.3 * np.sin(xx / (3 + i)) * np.cos(yy / 5) + 0.05 * rng.standard_normal((h, w))
    Image.fromarray(np.uint8(np.clip(img, 0, 1) * 255), "L").save(os.path.join(path, f"im{i}.png"))
  return path


def test_results_files_rows_and_learning(evaluated):
  workdir, rows = evaluated
  stored = read_rows(workdir)
  assert stored == json.loads(json.dumps(rows))
  assert [r["corruption"] for r in stored] == ["sigma25", "sigma50"]
  for r in stored:
    assert tuple(r) == eval_mode.RESULT_FIELDS
    assert r["dataset"] == "builtin" and r["n_images"] == 4 and r["convention"] == "rgb"
    assert r["checkpoint"] == "best" and r["step"] in (TOTAL_STEPS // 2, TOTAL_STEPS)
    assert r["self_ensemble"] is False and r["tile"] == 0
    for k in ("input_psnr", "psnr", "input_ssim", "ssim", "loss"):
      assert np.isfinite(r[k]), (k, r)
    assert r["psnr"] > r["input_psnr"] + 1.0, r  # it learned
    assert r["ssim"] > r["input_ssim"], r
  assert stored[1]["input_psnr"] < stored[0]["input_psnr"]  # sigma 50 is noisier
  md = open(os.path.join(workdir, "eval", "results.md")).read()
  assert f"checkpoint step {stored[0]['step']} (best)" in md and "`builtin`" in md
  assert "`rgb`" in md and "| sigma25 |" in md and "| sigma50 |" in md
  for level in SWEEP:
    with open(os.path.join(workdir, "eval", f"per_image_builtin_{level}.csv")) as f:
      lines = list(csv.reader(f))
    assert lines[0] == ["name", "psnr", "ssim", "input_psnr", "input_ssim"]
    assert len(lines) == 5
    row = next(r for r in stored if r["corruption"] == level)
    np.testing.assert_allclose(np.mean([float(l[1]) for l in lines[1:]]), row["psnr"], rtol=1e-5)
    grid = Image.open(os.path.join(workdir, "images", f"eval_builtin_{level}.png"))
    assert grid.size[0] > 3 * 32 and grid.size[1] > 2 * 32
  assert "psnr.png" in os.listdir(os.path.join(workdir, "plots"))


def test_second_dataset_keeps_rows_and_rerun_is_identical(evaluated, tmp_path):
  workdir = copy_of(evaluated[0], tmp_path)
  first = read_rows(workdir)
  c = learn_config()
  c.data.eval = "folder:" + write_folder(str(tmp_path / "pngs"))
  c.data.eval_crop = 0
  eval_mode.run(c, workdir)
  rows = read_rows(workdir)
  assert rows[:2] == first and len(rows) == 4
  assert [r["dataset"] for r in rows[2:]] == [c.data.eval] * 2
  assert all(r["n_images"] == 3 for r in rows[2:])
  files = os.listdir(os.path.join(workdir, "eval"))
  assert len([f for f in files if f.startswith("per_image_")]) == 4
  md = open(os.path.join(workdir, "eval", "results.md")).read()
  assert "`builtin`" in md and f"`{c.data.eval}`" in md
  # Re-running the first dataset replaces its rows with identical numbers, keeps the others.
  eval_mode.run(learn_config(), workdir)
  assert read_rows(workdir) == rows


def test_tiled_host_path_matches_pmapped_path(trained):
  config = learn_config()
  model = state_lib.build_model(config)
  variables, _, _ = eval_mode.load_variables(config, trained)
  evaluator = evaluate.Evaluator(config, model, devices=jax.local_devices()[:2])
  specs = SWEEP["sigma50"]
  pmapped = evaluator.evaluate(variables, specs, replicated=False)
  untiled = evaluator.evaluate_tiled(variables, specs, tile=0)
  tiled = evaluator.evaluate_tiled(variables, specs, tile=16, overlap=8)  # radius 3 <= 8 // 2
  for other in (untiled, tiled):
    assert other.names == pmapped.names and other.n_images == pmapped.n_images
    for k in evaluate.METRICS:
      np.testing.assert_allclose(other.per_image[k], pmapped.per_image[k], rtol=0, atol=1e-4,
                                 err_msg=k)
      np.testing.assert_allclose(other.means[k], pmapped.means[k], rtol=0, atol=1e-4)
    for a, b in zip(other.samples, pmapped.samples):
      np.testing.assert_array_equal(a[0], b[0])
      for x, y in zip(a[1:3], b[1:3]):  # uint8 corrupted / restored: at most rounding apart
        assert np.abs(x.astype(int) - y.astype(int)).max() <= 1
  # Pixel level: the same corrupted image restored whole and in tiles.
  clean = np.asarray(evaluator.images[0][1][None], np.float32) / 255.0
  corrupted = np.asarray(evaluate.corrupt_eval_images(
      corruptions.chain(specs), config.eval.seed, clean, np.array([0], np.int32)))
  apply = lambda x: model.apply(variables, x, train=False)
  whole = np.asarray(apply(corrupted))
  np.testing.assert_allclose(inference.restore(apply, corrupted, tile=16, overlap=8), whole,
                             rtol=0, atol=1e-5)


def test_tiled_path_compiles_once_for_many_sizes(trained, tmp_path):
  config = learn_config()
  config.data.eval = "folder:" + write_folder(str(tmp_path / "pngs"),
                                             sizes=((40, 36), (36, 44), (48, 40)))
  config.data.eval_crop = 0
  model = state_lib.build_model(config)
  variables, _, _ = eval_mode.load_variables(config, trained)
  evaluator = evaluate.Evaluator(config, model)
  jitted = evaluator.host_apply
  evaluator.host_apply = counter = inference.CompileCounter(jitted)
  result = evaluator.evaluate_tiled(variables, SWEEP["sigma25"], tile=16, overlap=8)
  assert result.n_images == 3 and len({im.shape for _, im in evaluator.images}) == 3
  assert counter.count == 1 and counter.calls > 3  # one tile shape for all three sizes
  assert inference.jit_cache_size(jitted) in (1, None)


def test_eval_mode_tiled_rows(evaluated, tmp_path):
  workdir = copy_of(evaluated[0], tmp_path)
  c = learn_config()
  c.eval.tile = 16
  c.eval.tile_overlap = 8
  rows = eval_mode.run(c, workdir)
  assert all(r["tile"] == 16 and r["tile_overlap"] == 8 for r in rows)
  stored = read_rows(workdir)
  assert len(stored) == 4  # tile is part of the key: the untiled rows are kept
  for untiled, tiled in zip(stored[:2], stored[2:]):
    for k in evaluate.METRICS:
      assert abs(untiled[k] - tiled[k]) < 1e-4, k
  assert "tiles 16px" in open(os.path.join(workdir, "eval", "results.md")).read()


def test_step_selects_checkpoint_and_unknown_step_errors(trained, tmp_path):
  config = learn_config()
  half = TOTAL_STEPS // 2
  a, step_a, which_a = eval_mode.load_variables(config, trained, step=half)
  b, step_b, which_b = eval_mode.load_variables(config, trained, step=TOTAL_STEPS)
  assert (step_a, which_a, step_b, which_b) == (half, "latest", TOTAL_STEPS, "latest")
  diff = max(float(np.abs(np.asarray(x) - np.asarray(y)).max())
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))
  assert diff > 0
  with pytest.raises(FileNotFoundError, match=rf"step 7 .*available steps: latest \[{half}, "
                                               rf"{TOTAL_STEPS}\]"):
    eval_mode.load_variables(config, trained, step=7)
  with pytest.raises(FileNotFoundError, match="no checkpoints"):
    eval_mode.run(config, str(tmp_path / "empty"))
  workdir = copy_of(trained, tmp_path)
  rows = eval_mode.run(config, workdir, step=half)
  assert {(r["step"], r["checkpoint"]) for r in rows} == {(half, "latest")}


def test_launch_eval_subprocess_uses_workdir_config(evaluated, tmp_path):
  workdir = copy_of(evaluated[0], tmp_path)
  os.remove(os.path.join(workdir, "eval", "results.json"))
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, "launch.py", "--mode=eval", f"--workdir={workdir}"],
                        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "| sigma25 |" in proc.stdout and "| sigma50 |" in proc.stdout
  rows = read_rows(workdir)
  assert [r["corruption"] for r in rows] == ["sigma25", "sigma50"]
  for new, old in zip(rows, evaluated[1]):
    for k in evaluate.METRICS:
      assert abs(new[k] - old[k]) < 1e-4, k  # 1 device in the subprocess, 2 here


def test_eval_config_may_differ_from_training_in_optimizer_and_schedule(trained):
  """The checkpoint's shapes come from the workdir's config.json, not from the eval --config."""
  config = learn_config()
  config.optimizer.name = "sgd"
  config.optimizer.schedule = "plateau"
  config.optimizer.grad_clip_norm = 1.0
  config.ema_decay = 0.0
  variables, step, _ = eval_mode.load_variables(config, trained, step=TOTAL_STEPS)
  reference, _, _ = eval_mode.load_variables(learn_config(), trained, step=TOTAL_STEPS)
  assert step == TOTAL_STEPS
  for x, y in zip(jax.tree.leaves(variables), jax.tree.leaves(reference), strict=True):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
