"""Orbax checkpoints: the latest N (for resuming) and the best by validation PSNR (for eval).

Layout in the workdir:
  checkpoints/<step>/{state,data}   latest `keep` checkpoints; `data` is the input iterator state
  best/<step>/state                 the single checkpoint with the highest eval PSNR
Saving is asynchronous; `wait()` blocks until everything is on disk.
"""

import os
from typing import Any

import orbax.checkpoint as ocp


class Checkpointer:
  """Owns the two Orbax CheckpointManagers of a workdir."""

  def __init__(self, workdir: str, *, keep: int = 2, read_only: bool = False):
    workdir = os.path.abspath(workdir)
    self.latest = ocp.CheckpointManager(
        os.path.join(workdir, "checkpoints"),
        options=ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=not read_only, read_only=read_only,
            enable_async_checkpointing=True),
        item_names=("state", "data"))
    self.best = ocp.CheckpointManager(
        os.path.join(workdir, "best"),
        options=ocp.CheckpointManagerOptions(
            max_to_keep=1, best_fn=lambda m: float(m["psnr"]), best_mode="max",
            keep_checkpoints_without_metrics=False, create=not read_only,
            read_only=read_only, enable_async_checkpointing=True),
        item_names=("state",))

  def latest_step(self) -> int | None:
    return self.latest.latest_step()

  def best_step(self) -> int | None:
    return self.best.best_step()

  def save_latest(self, step: int, state: Any, data_state: dict | None) -> None:
    self.latest.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        data=ocp.args.JsonSave(data_state or {})), force=True)

  def save_best(self, step: int, state: Any, psnr: float) -> None:
    # A run resumed after a crash recomputes steps exactly; one saved before the crash stays.
    if step in self.best.all_steps():
      return
    # The manager keeps one checkpoint: it saves this one and then drops whichever is worse.
    self.best.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state)),
                   metrics={"psnr": float(psnr)}, force=True)

  def restore_latest(self, abstract_state: Any, step: int | None = None) -> tuple[Any, dict]:
    """Restores (state, data_state) from `step` (default: the latest)."""
    step = self.latest.latest_step() if step is None else step
    out = self.latest.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()))
    return out.state, dict(out.data or {})

  def restore_best(self, abstract_state: Any) -> tuple[Any, int]:
    step = self.best.best_step()
    if step is None:
      raise FileNotFoundError("no best checkpoint in this workdir (was eval ever run?)")
    out = self.best.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state)))
    return out.state, step

  def wait(self) -> None:
    self.latest.wait_until_finished()
    self.best.wait_until_finished()

  def close(self) -> None:
    self.latest.close()
    self.best.close()
