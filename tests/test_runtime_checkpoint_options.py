"""The Orbax managers are configured as the installed Orbax documents: preservation policies
(not the deprecated max_to_keep), stated atomicity, and every save waited for on close."""

import os
import warnings

import numpy as np
import orbax.checkpoint as ocp
import pytest

from restoration.runtime import checkpoints

HAS_POLICIES = hasattr(getattr(ocp, "checkpoint_managers", None), "LatestN")


def save(ckpt, step, psnr):
  tree = {"w": np.full((3,), float(step), np.float32)}
  ckpt.save_latest(step, {"params": tree}, {"next_batch": step}, tree, {"task": "t"})
  ckpt.save_best(step, tree, {"task": "t"}, psnr)


def test_retention_through_preservation_policies(tmp_path):
  ckpt = checkpoints.Checkpointer(str(tmp_path), keep=2)
  for manager in (ckpt.latest, ckpt.best):
    options = manager._options  # pylint: disable=protected-access
    if HAS_POLICIES:
      assert options.max_to_keep is None and options.preservation_policy is not None
    if hasattr(ocp, "options") and hasattr(ocp.options, "AtomicityOptions"):
      assert options.atomicity_options.mode == ocp.options.AtomicityMode.ATOMIC_RENAME
  with warnings.catch_warnings():
    warnings.simplefilter("error", DeprecationWarning)
    for step, psnr in ((1, 20.0), (2, 25.0), (3, 22.0), (4, 21.0)):
      save(ckpt, step, psnr)
      ckpt.wait()
  assert ckpt.latest.all_steps() == [3, 4]  # the latest 2
  assert ckpt.best.all_steps() == [2] and ckpt.best_psnr() == 25.0  # the single best
  ckpt.close()
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["3", "4"]


def test_close_waits_for_pending_saves_even_on_the_way_out(tmp_path, monkeypatch):
  ckpt = checkpoints.Checkpointer(str(tmp_path), keep=2)
  save(ckpt, 1, 20.0)  # asynchronous: maybe still being written
  waited = []
  wait = ocp.CheckpointManager.wait_until_finished
  monkeypatch.setattr(ocp.CheckpointManager, "wait_until_finished",
                      lambda self: (waited.append(str(self.directory)), wait(self))[1])
  with pytest.raises(RuntimeError, match="on the way out"):
    try:
      raise RuntimeError("on the way out")
    finally:
      ckpt.close()
  assert {os.path.basename(d) for d in waited} == {"best", "checkpoints"}
  assert os.listdir(tmp_path / "checkpoints") == ["1"] and os.listdir(tmp_path / "best") == ["1"]
