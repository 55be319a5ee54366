"""Chained restore (mask -> colourise -> inpaint) against a stage-by-stage computation, and
its eval (restoration.modes.chained_eval) against an independent one."""

import glob
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from restoration.modes import chained
from restoration.modes import chained_eval
from restoration.runtime import trained_run
from restoration import corruptions
from restoration.modes import evaluate
from restoration.eval import metrics
from restoration.modes import restore
from restoration.runtime import run_log
from restoration import tasks
from restoration.tasks import inpaint
from tests.test_configs import load as load_config
from tests.tiny import override, tiny_config

BLOCKS = [{"name": "random_blocks", "num_blocks": 2, "block_size": 4, "fill": 0.0}]
NO_RESIDUAL = {"depth": 2, "features": 8, "residual": False}
STAGES = {
    "mask": dict(task="mask", corruption=BLOCKS, loss={"bce": 1.0},
                 **{"model.kwargs": {**NO_RESIDUAL, "out_channels": 1}}),
    "colorize": {"data.channels": 3, "corruption": [{"name": "grayscale"}]},
    "inpaint": {"task": "inpaint", "data.channels": 3, "corruption": BLOCKS,
                "model.kwargs": {**NO_RESIDUAL, "out_channels": 3}},
}


# The pipeline eval's damage for the mask stage's BLOCKS, and the single baseline trained on it.
DAMAGE = [{"name": "grayscale", "keep_channels": False}] + BLOCKS
SINGLE = {"data.channels": 3, "corruption": chained_eval.baseline_specs(DAMAGE)}


def black_pixel_detector(variables):
  """Mask-stage variables (cnn, depth 2) with logit +1 where the gray pixel is exactly 0 and
  -1 where it is >= 0.001: a perfect mask of black-filled blocks on photos without black."""
  out = jax.tree.map(lambda a: np.zeros(np.shape(a), np.float32), variables)
  conv0, conv1 = out["params"]["conv0"], out["params"]["conv1"]
  conv0["kernel"][1, 1, 0, 0], conv0["bias"][0] = -1000.0, 1.0  # relu(1 - 1000 x)
  conv1["kernel"][1, 1, 0, 0], conv1["bias"][0] = 2.0, -1.0
  return out


def export_stages(root, *, single=False, perfect_mask=False):
  """Workdirs holding freshly initialised stages (and the single baseline);
  returns {stage: (workdir, task, variables)}."""
  out = {}
  for i, (name, kw) in enumerate({**STAGES, **({"single": SINGLE} if single else {})}.items()):
    c = tiny_config(seed=i, **kw)
    task = tasks.build(c, local_device_count=1, process_count=1)
    variables = task.inference_variables(task.init_state())
    if name == "mask" and perfect_mask:
      variables = black_pixel_detector(variables)
    workdir = str(root / name)
    trained_run.export(workdir, c, variables, task.model_meta())
    out[name] = (workdir, task, variables)
  return out


def test_chained_restore_matches_the_stages(tmp_path):
  stages = export_stages(tmp_path)
  gray = np.random.default_rng(0).integers(0, 256, (32, 32), np.uint8)  # a bucket: no padding
  Image.fromarray(gray).save(tmp_path / "old.png")
  x = jnp.asarray(gray[None, ..., None] / np.float32(255))
  # Independently: each stage's predict, no any_size (CNNs: any shape, no padding needed).
  (_, mtask, mvars), (_, ctask, cvars), (_, itask, ivars) = stages.values()
  prob = np.asarray(jax.nn.sigmoid(mtask.inference.predict(mvars, x)))
  threshold = float(np.median(prob))
  mask = (prob > threshold).astype(np.float32)
  assert 0.2 < mask.mean() < 0.8
  colour = np.clip(ctask.inference.predict(cvars, jnp.repeat(x, 3, -1)), 0, 1)
  filled = itask.inference.predict(ivars, inpaint.with_mask(colour * (1 - mask), mask))
  expected = np.round(np.clip(np.asarray(filled[0]), 0, 1) * 255)

  c = override(tiny_config(), **{f"pipeline.{k}": v[0] for k, v in stages.items()},
               **{"pipeline.threshold": threshold, "pipeline.save_masks": True})
  written = restore.run(c, str(tmp_path / "unused"), str(tmp_path / "old.png"),
                        str(tmp_path / "out"))
  assert [w.rsplit("/", 1)[-1] for w in written] == ["old.png", "old_mask.png"]
  out = np.asarray(Image.open(written[0]))
  assert out.shape == (32, 32, 3)
  np.testing.assert_allclose(out, expected, atol=1)
  np.testing.assert_array_equal(np.asarray(Image.open(written[1])), mask[0, ..., 0] * 255)


def test_chained_restore_checks_the_stage_tasks(tmp_path):
  stages = export_stages(tmp_path)
  Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "a.png")
  dirs = {f"pipeline.{k}": v[0] for k, v in stages.items()}
  c = override(tiny_config(), **{**dirs, "pipeline.inpaint": stages["colorize"][0]})
  with pytest.raises(ValueError, match=r"config.pipeline.inpaint=.* is a 'supervised' run"):
    restore.run(c, "x", str(tmp_path / "a.png"), str(tmp_path / "out"))


def colour_photos(folder, n=3, size=32):
  """n RGB PNGs with every channel in [10, 255]: no black pixel before the damage."""
  os.makedirs(folder)
  rng = np.random.default_rng(1)
  for i in range(n):
    Image.fromarray(rng.integers(10, 256, (size, size, 3), np.uint8)).save(f"{folder}/{i}.png")
  return f"folder:{folder}"


def pipeline_config(stages, eval_spec, **overrides):
  return override(tiny_config(), **{**{f"pipeline.{k}": v[0] for k, v in stages.items()},
                                     "data.channels": 3, "data.eval": eval_spec,
                                     "data.eval_crop": 0, "data.eval_max_images": 0,
                                     **overrides})


def test_pipeline_eval_rows_match_an_independent_computation(tmp_path):
  stages = export_stages(tmp_path, single=True)
  c = pipeline_config(stages, colour_photos(str(tmp_path / "photos")))
  rows = evaluate.run(c, str(tmp_path / "pipeline"))
  by_stage = {r["stage"]: r for r in rows}
  assert list(by_stage) == ["mask", "colorize", "inpaint", "end_to_end", "single"]
  assert all(r["n_images"] == 3 and r["specs"] == DAMAGE for r in rows)
  assert by_stage["end_to_end"]["runs"] == {
      n: {"workdir": stages[n][0], "checkpoint": "best", "step": 0}
      for n in ("mask", "colorize", "inpaint")}
  saved = json.load(open(tmp_path / "pipeline" / "eval" / "results.json"))
  assert saved == json.loads(json.dumps(rows))
  table = open(tmp_path / "pipeline" / "eval" / "results.md").read()
  assert "chained restore" in table and "| end_to_end | 3 |" in table
  for stage in ("end_to_end", "single"):
    assert len(glob.glob(str(tmp_path / "pipeline" / "images" / f"*_pipeline_{stage}.png"))) == 1
  # Independently: damage each photo, then restore_chain / each model's predict + metrics.
  loaded = chained.load_stages(c)
  corrupt = corruptions.chain(DAMAGE)
  (ctask, cvars), (itask, ivars), (stask, svars) = (
      stages[n][1:] for n in ("colorize", "inpaint", "single"))
  got = {k: [] for k in ("e2e", "input", "single", "colorize", "gray", "inpaint", "holes",
                         "iou")}
  for i in range(3):
    clean = np.asarray(Image.open(tmp_path / "photos" / f"{i}.png"), np.float32)[None] / 255
    damaged, mask = corruptions.per_example(corrupt, jax.random.key(c.eval.seed), clean,
                                            jnp.array([i]))
    restored, predicted = chained.restore_chain(loaded, np.asarray(damaged[0]), 0.5)
    rgb = jnp.repeat(damaged, 3, -1)
    got["e2e"].append(metrics.psnr(restored[None], clean))
    got["input"].append(metrics.psnr(rgb, clean))
    got["single"].append(metrics.psnr(jnp.clip(stask.inference.predict(svars, rgb), 0, 1), clean))
    gray = jnp.repeat(0.299 * clean[..., :1] + 0.587 * clean[..., 1:2] + 0.114 * clean[..., 2:],
                      3, -1)
    got["colorize"].append(metrics.psnr(jnp.clip(ctask.inference.predict(cvars, gray), 0, 1),
                                        clean))
    got["gray"].append(metrics.psnr(gray, clean))
    holes = clean * (1 - mask)
    filled = itask.inference.predict(ivars, inpaint.with_mask(holes, mask))
    got["inpaint"].append(metrics.psnr(jnp.clip(filled, 0, 1), clean))
    got["holes"].append(metrics.psnr(holes, clean))
    tp = np.sum(predicted * mask[0])
    got["iou"].append(tp / max(np.sum(np.maximum(predicted, mask[0])), 1))
  mean = {k: float(np.mean(v)) for k, v in got.items()}
  for stage, field, key in [("end_to_end", "psnr", "e2e"), ("end_to_end", "input_psnr", "input"),
                            ("single", "psnr", "single"), ("single", "input_psnr", "input"),
                            ("colorize", "psnr", "colorize"), ("colorize", "input_psnr", "gray"),
                            ("inpaint", "psnr", "inpaint"), ("inpaint", "input_psnr", "holes"),
                            ("mask", "iou", "iou")]:
    assert by_stage[stage][field] == pytest.approx(mean[key], abs=1e-4), (stage, field)


def test_pipeline_eval_of_a_perfect_mask_stage(tmp_path):
  stages = export_stages(tmp_path, perfect_mask=True)
  c = pipeline_config(stages, colour_photos(str(tmp_path / "photos"), n=2))
  rows = {r["stage"]: r for r in evaluate.run(c, str(tmp_path / "pipeline"))}
  assert "single" not in rows  # pipeline.single = ''
  assert {k: rows["mask"][k] for k in ("iou", "f1", "precision", "recall")} == {
      "iou": 1.0, "f1": 1.0, "precision": 1.0, "recall": 1.0}


def test_pipeline_eval_errors_name_the_field(tmp_path):
  stages = export_stages(tmp_path)
  photos = colour_photos(str(tmp_path / "photos"), n=1)
  cases = [
      ({"pipeline.single": str(tmp_path / "nothing")}, r"config.pipeline.single: no checkpoints"),
      ({"pipeline.mask": str(tmp_path / "nothing")}, r"config.pipeline.mask: no checkpoints"),
      ({"pipeline.single": stages["inpaint"][0]},
       r"config.pipeline.single=.* is a 'inpaint' run; expected task 'supervised'"),
      ({"pipeline.single": stages["mask"][0]}, r"config.pipeline.single=.* is a 'mask' run"),
      ({"data.channels": 1}, r"config.data.channels=1: the chained pipeline"),
  ]
  for fields, match in cases:
    with pytest.raises(ValueError, match=match):
      evaluate.run(pipeline_config(stages, photos, **fields), str(tmp_path / "p"))
  with pytest.raises(ValueError, match="--step does not apply"):
    evaluate.run(pipeline_config(stages, photos), str(tmp_path / "p"), step=0)
  assert not os.path.exists(tmp_path / "p")


def test_baseline_config_damage_is_the_pipeline_damage_kept_in_rgb():
  """configs/damaged_gray.py:quick trains on exactly what the eval feeds it: the mask run's
  damage of the gray photo, repeated over 3 channels (same keys, same pixels)."""
  specs = chained_eval.damage_specs(load_config("mask.py", "quick"))
  baseline = run_log.plain(list(load_config("damaged_gray.py", "quick").corruption))
  assert baseline == chained_eval.baseline_specs(specs)
  assert any(s.get("fill") == "gray_noise" for s in baseline)
  x = jnp.asarray(np.random.default_rng(0).random((4, 32, 32, 3), np.float32))
  key = jax.random.key(3)
  gray, mask = corruptions.chain(specs)(key, x)
  rgb, rgb_mask = corruptions.chain(baseline)(key, x)
  assert gray.shape == (4, 32, 32, 1) and 0.01 < float(mask.mean()) < 0.9
  np.testing.assert_array_equal(rgb, jnp.repeat(gray, 3, -1))
  np.testing.assert_array_equal(rgb_mask, mask)
  noisy = (mask[..., 0] > 0) & (gray[..., 0] > 0)  # noise blocks: gray, not black
  assert int(noisy.sum()) > 0
