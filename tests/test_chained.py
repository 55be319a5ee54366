"""Chained restore (mask -> colourise -> inpaint) against a stage-by-stage computation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from restoration import checkpoints
from restoration import restore
from restoration import tasks
from restoration.tasks import inpaint
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


def export_stages(root):
  """Three workdirs holding freshly initialised stages; returns {stage: (workdir, task)}."""
  out = {}
  for i, (name, kw) in enumerate(STAGES.items()):
    c = tiny_config(seed=i, **kw)
    task = tasks.build(c, local_device_count=1, process_count=1)
    variables = task.inference_variables(task.init_state())
    workdir = str(root / name)
    checkpoints.export(workdir, c, variables, task.model_meta())
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
