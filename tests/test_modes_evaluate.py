"""--mode=eval (restoration.modes.evaluate) on a tiny model trained once for the module (CPU)."""

import csv
import functools
import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
from PIL import Image

from restoration.runtime import trained_run
from restoration import corruptions
from restoration.modes import evaluate
from restoration.eval import results
from restoration.eval import evaluator
from restoration import any_size
from restoration import data
from restoration.modes import train
from tests.tiny import load_trained, override, tiny_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METRICS = ("psnr", "ssim", "input_psnr", "input_ssim", "loss")
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
  workdir = str(tmp_path_factory.mktemp("evaluate") / "trained")
  train.train_and_evaluate(learn_config(), workdir, devices=jax.local_devices()[:1])
  return workdir


@pytest.fixture(scope="module")
def evaluated(trained, tmp_path_factory):
  """A copy of the trained workdir after one eval-mode run on builtin; (workdir, rows)."""
  workdir = str(tmp_path_factory.mktemp("evaluate") / "evaluated")
  shutil.copytree(trained, workdir)
  rows = evaluate.run(learn_config(), workdir)
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
    assert tuple(r) == results.RESULT_FIELDS
    assert r["dataset"] == "builtin" and r["n_images"] == 4 and r["convention"] == "rgb"
    assert (r["set"], r["set_size"], r["eval_crop"]) == ("builtin photos", 4, 32)
    assert r["checkpoint"] == "best" and r["step"] in (TOTAL_STEPS // 2, TOTAL_STEPS)
    assert r["self_ensemble"] is False and r["tile"] == 0
    for k in ("input_psnr", "psnr", "input_ssim", "ssim", "loss"):
      assert np.isfinite(r[k]), (k, r)
    assert r["psnr"] > r["input_psnr"] + 1.0, r  # it learned
    assert r["ssim"] > r["input_ssim"], r
  assert stored[1]["input_psnr"] < stored[0]["input_psnr"]  # sigma 50 is noisier
  md = open(os.path.join(workdir, "eval", "results.md")).read()
  assert f"checkpoint step {stored[0]['step']} (best)" in md and "`builtin`" in md
  assert "### builtin photos: 4 images, 32 px crops (`builtin`)" in md
  assert "`rgb`" in md and "| sigma25 |" in md and "| sigma50 |" in md
  for level in SWEEP:
    row = next(r for r in stored if r["corruption"] == level)
    name = f"builtin_{level}_step{row['step']}"
    with open(os.path.join(workdir, "eval", f"per_image_{name}.csv")) as f:
      lines = list(csv.reader(f))
    assert lines[0] == ["name", "psnr", "ssim", "input_psnr", "input_ssim"]
    assert len(lines) == 5
    np.testing.assert_allclose(np.mean([float(l[1]) for l in lines[1:]]), row["psnr"], rtol=1e-5)
    grid = Image.open(os.path.join(workdir, "images", f"eval_{name}.png"))
    assert grid.size[0] > 3 * 32 and grid.size[1] > 2 * 32
  assert "psnr.png" in os.listdir(os.path.join(workdir, "plots"))


def test_second_dataset_keeps_rows_and_rerun_is_identical(evaluated, tmp_path):
  workdir = copy_of(evaluated[0], tmp_path)
  first = read_rows(workdir)
  c = learn_config()
  c.data.eval = "folder:" + write_folder(str(tmp_path / "pngs"))
  c.data.eval_crop = 0
  evaluate.run(c, workdir)
  rows = read_rows(workdir)
  assert rows[:2] == first and len(rows) == 4
  assert [r["dataset"] for r in rows[2:]] == [c.data.eval] * 2
  assert all(r["n_images"] == 3 for r in rows[2:])
  files = os.listdir(os.path.join(workdir, "eval"))
  assert len([f for f in files if f.startswith("per_image_")]) == 4
  md = open(os.path.join(workdir, "eval", "results.md")).read()
  assert "`builtin`" in md and f"### pngs: 3 images (`{c.data.eval}`)" in md
  # Re-running the first dataset replaces its rows with identical numbers, keeps the others.
  evaluate.run(learn_config(), workdir)
  assert read_rows(workdir) == rows


def test_tiled_host_path_matches_pmapped_path(trained):
  config = learn_config()
  inference, variables, _, _ = load_trained(config, trained)
  ev = evaluator.Evaluator(inference, data.load_eval_images(config),
                                 devices=jax.local_devices()[:2])
  specs = SWEEP["sigma50"]
  pmapped = ev.evaluate(variables, specs, replicated=False)
  untiled = ev.evaluate_tiled(variables, specs, tile=0)
  tiled = ev.evaluate_tiled(variables, specs, tile=16, overlap=8)  # radius 3 <= 8 // 2
  for other in (untiled, tiled):
    assert other.names == pmapped.names and other.n_images == pmapped.n_images
    assert sorted(other.means) == sorted(pmapped.means) == sorted(METRICS)
    for k in METRICS:
      np.testing.assert_allclose(other.per_image[k], pmapped.per_image[k], rtol=0, atol=1e-4,
                                 err_msg=k)
      np.testing.assert_allclose(other.means[k], pmapped.means[k], rtol=0, atol=1e-4)
    for a, b in zip(other.samples, pmapped.samples):
      np.testing.assert_array_equal(a[0], b[0])
      for x, y in zip(a[1:3], b[1:3]):  # uint8 corrupted / restored: at most rounding apart
        assert np.abs(x.astype(int) - y.astype(int)).max() <= 1
  # Pixel level: the same corrupted image restored whole and in tiles.
  clean = np.asarray(ev.images[0][1][None], np.float32) / 255.0
  corrupted = np.asarray(evaluator.corrupt_eval_images(
      corruptions.chain(specs), config.eval.seed, clean, np.array([0], np.int32)))
  apply = functools.partial(inference.predict, variables)
  whole = np.asarray(apply(corrupted))
  np.testing.assert_allclose(any_size.apply(apply, corrupted, tile=16, overlap=8), whole,
                             rtol=0, atol=1e-5)


def test_tiled_path_compiles_once_for_many_sizes(trained, tmp_path):
  config = learn_config()
  config.data.eval = "folder:" + write_folder(str(tmp_path / "pngs"),
                                             sizes=((40, 36), (36, 44), (48, 40)))
  config.data.eval_crop = 0
  inference, variables, _, _ = load_trained(config, trained)
  ev = evaluator.Evaluator(inference, data.load_eval_images(config))
  jitted = ev.host_apply
  ev.host_apply = counter = any_size.CompileCounter(jitted)
  result = ev.evaluate_tiled(variables, SWEEP["sigma25"], tile=16, overlap=8)
  assert result.n_images == 3 and len({im.shape for _, im in ev.images}) == 3
  assert counter.count == 1 and counter.calls > 3  # one tile shape for all three sizes
  assert any_size.jit_cache_size(jitted) == 1


def test_eval_mode_tiled_rows(evaluated, tmp_path):
  workdir = copy_of(evaluated[0], tmp_path)
  c = learn_config()
  c.eval.tile = 16
  c.eval.tile_overlap = 8
  rows = evaluate.run(c, workdir)
  assert all(r["tile"] == 16 and r["tile_overlap"] == 8 for r in rows)
  stored = read_rows(workdir)
  assert len(stored) == 4  # tile is part of the key: the untiled rows are kept
  for untiled, tiled in zip(stored[:2], stored[2:]):
    for k in METRICS:
      assert abs(untiled[k] - tiled[k]) < 1e-4, k
  assert "tiles 16px (overlap 8)" in open(os.path.join(workdir, "eval", "results.md")).read()
  step = rows[0]["step"]
  for level in SWEEP:  # tiled files beside the untiled ones, not over them
    for tag in (f"step{step}", f"step{step}_tile16"):
      assert os.path.exists(os.path.join(workdir, "eval", f"per_image_builtin_{level}_{tag}.csv"))
      assert os.path.exists(os.path.join(workdir, "images", f"eval_builtin_{level}_{tag}.png"))


def test_step_selects_checkpoint_and_unknown_step_errors(trained, tmp_path):
  config = learn_config()
  half = TOTAL_STEPS // 2
  _, a, step_a, which_a = load_trained(config, trained, step=half)
  _, b, step_b, which_b = load_trained(config, trained, step=TOTAL_STEPS)
  assert (step_a, which_a, step_b, which_b) == (half, "latest", TOTAL_STEPS, "latest")
  diff = max(float(np.abs(np.asarray(x) - np.asarray(y)).max())
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))
  assert diff > 0
  with pytest.raises(FileNotFoundError, match=rf"step 7 .*available steps: latest \[{half}, "
                                               rf"{TOTAL_STEPS}\]"):
    load_trained(config, trained, step=7)
  with pytest.raises(FileNotFoundError, match="no checkpoints"):
    evaluate.run(config, str(tmp_path / "empty"))
  workdir = copy_of(trained, tmp_path)
  rows = evaluate.run(config, workdir, step=half)
  assert {(r["step"], r["checkpoint"]) for r in rows} == {(half, "latest")}
  files = sorted(f for f in os.listdir(os.path.join(workdir, "eval")) if f.endswith(".csv"))
  assert files == [f"per_image_builtin_{level}_step{half}.csv" for level in SWEEP]


@pytest.mark.slow  # a subprocess: JAX start-up and compiles of its own
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
    for k in METRICS:
      assert abs(new[k] - old[k]) < 1e-4, k  # 1 device in the subprocess, 2 here


def test_eval_config_may_differ_from_training_in_optimizer_and_schedule(trained):
  """The checkpoint's shapes come from the workdir's config.json, not from the eval --config."""
  config = learn_config()
  config.optimizer.name = "sgd"
  config.optimizer.schedule = "plateau"
  config.optimizer.grad_clip_norm = 1.0
  config.ema_decay = 0.0
  _, variables, step, _ = load_trained(config, trained, step=TOTAL_STEPS)
  _, reference, _, _ = load_trained(learn_config(), trained, step=TOTAL_STEPS)
  assert step == TOTAL_STEPS
  for x, y in zip(jax.tree.leaves(variables), jax.tree.leaves(reference), strict=True):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_model_and_channels_come_from_the_workdir(evaluated, tmp_path, monkeypatch, caplog):
  """An eval --config with another model size / channel count evaluates the trained model."""
  workdir = copy_of(evaluated[0], tmp_path)
  os.remove(os.path.join(workdir, "eval", "results.json"))
  config = learn_config()
  config.model.kwargs = {"depth": 5, "features": 32}
  config.data.channels = 3
  seen = []
  step_fn = evaluator.Evaluator._step

  def spy(self, specs):
    fn = step_fn(self, specs)
    return lambda variables, *args: seen.append(jax.tree.leaves(variables)) or fn(variables, *args)

  monkeypatch.setattr(evaluator.Evaluator, "_step", spy)
  with caplog.at_level("WARNING"):
    rows = evaluate.run(config, workdir)
  assert config.model.kwargs.depth == 5 and config.data.channels == 3  # not mutated
  warned = " ".join(r.getMessage() for r in caplog.records)
  assert "config.model.kwargs" in warned and "config.data.channels" in warned
  assert "config.model.name" not in warned
  for new, old in zip(rows, evaluated[1], strict=True):
    for k in METRICS:
      np.testing.assert_allclose(new[k], old[k], rtol=0, atol=1e-6, err_msg=k)
  # The variables were placed on the devices once, for every level and batch.
  assert len(seen) == len(SWEEP)
  for leaves in seen:
    assert all(isinstance(x, jax.Array) for x in leaves)
    assert all(a is b for a, b in zip(leaves, seen[0], strict=True))


def test_with_trained_model_keeps_dtype_and_eval_fields(trained):
  config = learn_config()
  config.model.name = "dncnn"
  config.model.kwargs = {"depth": 5}
  config.model.dtype = "bfloat16"
  config.data.channels = 3
  config.eval.seed = 7
  meta = trained_run.load_run(trained).meta
  out = trained_run.with_trained_model(config, meta, trained)
  assert out.model.name == "cnn" and out.model.dtype == "bfloat16"
  assert out.model.kwargs.to_dict() == learn_config().model.kwargs.to_dict()
  assert out.data.channels == 1 and out.eval.seed == 7
  assert config.model.name == "dncnn" and config.data.channels == 3  # a copy


def test_evaluate_unreplicated_places_variables_once(trained):
  config = learn_config()
  config.data.eval_batch_size = 2  # two batches of one image per device
  inference, variables, _, _ = load_trained(config, trained, num_devices=2)
  ev = evaluator.Evaluator(inference, data.load_eval_images(config),
                                 devices=jax.local_devices()[:2])
  fn = ev._step(SWEEP["sigma25"])
  seen = []
  ev._steps[repr(SWEEP["sigma25"])] = (
      lambda v, *args: seen.append(jax.tree.leaves(v)) or fn(v, *args))
  result = ev.evaluate(variables, SWEEP["sigma25"], replicated=False)
  assert result.n_images == 4 and len(seen) == 2
  for leaves in seen:
    assert all(isinstance(x, jax.Array) and len(x.sharding.device_set) == 2 for x in leaves)
    assert all(a is b for a, b in zip(leaves, seen[0], strict=True))


def test_grid_arrays_none_when_nothing_to_draw(evaluated, tmp_path):
  image = np.zeros((16, 16, 1), np.uint8)
  empty = evaluator.EvalResult(means={}, n_images=0, per_image={}, names=[], samples=[])
  one = evaluator.EvalResult(means={}, n_images=1, per_image={}, names=["a"],
                            samples=[(image, image, image, 10.0, 20.0)])
  assert empty.grid_arrays(4) is None and one.grid_arrays(0) is None
  assert one.grid_arrays(4)["clean"].shape == (1, 16, 16, 1)
  workdir = copy_of(evaluated[0], tmp_path)
  shutil.rmtree(os.path.join(workdir, "images"))
  config = learn_config()
  config.eval.num_grid_images = 0
  rows = evaluate.run(config, workdir)
  assert len(rows) == 2 and not os.path.exists(os.path.join(workdir, "images"))


def test_row_key_keeps_rows_that_differ_in_seed_specs_overlap_or_images():
  base = {"dataset": "builtin", "corruption": "sigma25", "n_images": 4, "convention": "rgb",
          "step": 80, "checkpoint": "best", "self_ensemble": False, "tile": 16,
          "tile_overlap": 8, "eval_seed": 1234, "psnr": 30.0,
          "specs": [{"name": "gaussian_noise", "sigma": 25.0}]}
  reordered = dict(base, psnr=31.0, specs=[{"sigma": 25.0, "name": "gaussian_noise"}])
  assert results.merge_rows([base], [reordered]) == [reordered]  # canonical JSON: same key
  for field, value in (("eval_seed", 1), ("tile_overlap", 4), ("n_images", 2),
                       ("specs", [{"name": "gaussian_noise", "sigma": 30.0}])):
    other = dict(base, psnr=20.0, **{field: value})
    assert results.merge_rows([base], [other]) == [base, other], field
  assert set(results.ROW_KEY) >= {"eval_seed", "specs", "tile_overlap", "n_images"}


def test_eval_on_your_own_noisy_clean_pairs_adds_no_corruption(evaluated, tmp_path):
  """`pairs:NOISY,CLEAN` with an empty chain: the inputs are scored as they are (input PSNR is
  the files' own), the model restores them, and the level is named 'none'."""
  workdir = copy_of(evaluated[0], tmp_path)
  clean_dir = write_folder(str(tmp_path / "clean"))
  noisy_dir = tmp_path / "noisy"
  noisy_dir.mkdir()
  rng = np.random.default_rng(7)
  want = []
  for name in sorted(os.listdir(clean_dir)):
    clean = np.asarray(Image.open(os.path.join(clean_dir, name)), np.float64)
    noisy = np.uint8(np.clip(np.round(clean + rng.normal(0, 20, clean.shape)), 0, 255))
    Image.fromarray(noisy, "L").save(noisy_dir / name)
    want.append(10 * np.log10(255.0 ** 2 / np.mean((noisy - clean) ** 2)))
  c = learn_config()
  c.data.eval = f"pairs:{noisy_dir},{clean_dir}"
  c.data.eval_crop = 0
  c.eval.sweep = {}
  c.corruption = []
  (row,) = evaluate.run(c, workdir)
  assert row["corruption"] == "none" and row["specs"] == [] and row["n_images"] == 3
  assert row["set"] == "clean" and row["input_psnr"] == pytest.approx(np.mean(want), abs=1e-3)
  assert row["psnr"] > row["input_psnr"]  # the denoiser helps on real (not synthetic) pairs


def test_changed_seed_and_image_count_add_rows(evaluated, tmp_path, capsys):
  workdir = copy_of(evaluated[0], tmp_path)
  config = learn_config()
  config.eval.seed = 99
  config.data.eval_max_images = 2
  config.data.eval_batch_size = 2
  rows = evaluate.run(config, workdir)
  shown = capsys.readouterr()
  assert "eval sigma25: 100%" in shown.err and "2/2" in shown.err  # a bar per level
  # The printed table says it measured part of the set, on crops.
  assert "### builtin photos: 2 of 4 images, 32 px crops (`builtin`)" in shown.out
  stored = read_rows(workdir)
  assert stored[:2] == read_rows(evaluated[0]) and stored[2:] == json.loads(json.dumps(rows))
  assert [(r["eval_seed"], r["n_images"]) for r in stored] == [(1234, 4)] * 2 + [(99, 2)] * 2
  assert "eval seed 99" in open(os.path.join(workdir, "eval", "results.md")).read()




@pytest.mark.parametrize("fields, match", [
    ({"eval__crop_border": -1}, r"config\.eval\.crop_border must be an integer >= 0, got -1"),
    ({"eval__crop_border": 1.5}, r"config\.eval\.crop_border must be an integer >= 0"),
    ({"eval__crop_border": True}, r"config\.eval\.crop_border must be an integer"),
    ({"data__eval_crop": -2}, r"config\.data\.eval_crop must be an integer >= 0"),
    ({"data__eval_crop": 10}, r"config\.data\.eval_crop=10 must be 0 .* or >= 11 .*SSIM"),
    ({"data__eval_crop": 14, "eval__crop_border": 2}, r"eval_crop=14 .* >= 15 .*crop_border=2"),
    ({"eval__tile": -1}, r"config\.eval\.tile must be an integer >= 0"),
    ({"eval__tile_overlap": -1}, r"config\.eval\.tile_overlap must be an integer >= 0"),
    ({"eval__tile": 16, "eval__tile_overlap": 16},
     r"config\.eval\.tile_overlap=16 must be smaller than config\.eval\.tile=16"),
    ({"eval__num_grid_images": -1}, r"config\.eval\.num_grid_images must be an integer >= 0"),
    ({"data__eval_batch_size": 0}, r"config\.data\.eval_batch_size must be an integer >= 1"),
    ({"data__eval_max_images": -1}, r"config\.data\.eval_max_images must be an integer >= 0"),
    ({"eval__seed": 1.5}, r"config\.eval\.seed must be an integer, got 1\.5"),
    ({"eval__seed": "1"}, r"config\.eval\.seed must be an integer"),
    ({"eval__y_channel": "yes"}, r"config\.eval\.y_channel must be True or False"),
    ({"eval__sweep": {"low": []}}, r"config\.eval\.sweep\.low must be a non-empty list"),
    ({"eval__sweep": {"low": {"name": "gaussian_noise"}}},
     r"config\.eval\.sweep\.low must be a non-empty list"),
    ({"eval__sweep": {"low": [{"name": "nope"}]}},
     r"config\.eval\.sweep\.low: chain: unknown corruption name 'nope'"),
    ({"eval__sweep": {"ok": [{"name": "gaussian_noise", "sigma": 5.0}],
                      "low": [{"name": "gaussian_noise", "sigmaa": 5.0}]}},
     r"config\.eval\.sweep\.low: gaussian_noise: unknown parameter"),
])
def test_validate_eval_config_errors(fields, match):
  with pytest.raises(ValueError, match=match):
    evaluator.EvalOptions.from_config(override(learn_config(), **fields))


def test_validate_eval_config_accepts_valid_configs(tmp_path):
  evaluator.EvalOptions.from_config(learn_config())
  options = evaluator.EvalOptions.from_config(override(
      learn_config(), data__eval_crop=0, eval__tile=16, eval__tile_overlap=0,
      eval__num_grid_images=0, eval__crop_border=4, eval__sweep={}))
  assert (options.tile, options.tile_overlap, options.crop_border) == (16, 0, 4)
  assert options.convention == "rgb_crop4"
  # eval mode checks before opening the workdir: a bad field beats a missing checkpoint.
  bad = override(learn_config(), eval__sweep={"low": [{"name": "nope"}]})
  with pytest.raises(ValueError, match=r"config\.eval\.sweep\.low"):
    evaluate.run(bad, str(tmp_path / "empty"))
