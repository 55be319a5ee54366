"""Orbax checkpoints of a workdir: saving, verifying, quarantining and restoring them.

Layout in the workdir:
  checkpoints/<step>/{state,data,model,meta}   the latest `keep` checkpoints: the whole training
                      state, the input iterator position, and what inference needs (the model's
                      variables and its meta: task, model name/kwargs/dtype, channels)
  best/<step>/{model,meta}                     the single step with the highest eval PSNR,
                      written only when the PSNR improves: no optimizer state
Saving is asynchronous; `wait()` blocks until everything is on disk. `poll()` (every step)
raises a failed save's error at the next step (also when Orbax's own threads swallowed it: a
saved step that is not committed once saving is over failed) and, once a save is complete,
writes `<step>/sha256.json`: the SHA-256 of every file of the checkpoint. `commit()` waits for
that at once (the loop calls it before an eval).

Restoring verifies (`checkpoint_checks`): the checksums (flipped bytes, truncation), Orbax's
own reading, and that every float value is finite. A checkpoint failing any of them is moved to
`broken/<checkpoints|best>.<step>` (never deleted) with a one-line warning naming it, and the
next newest intact one is used; `NoIntactCheckpoint` (one line) when none is left. A state
whose layout does not fit the config's is refused (`StateMismatch`, a config change) and never
moved. A training run opening the workdir has Orbax remove killed saves' tmp folders.

Reading a trained run back for eval and restore (`load_run`), and writing one from imported
weights (`export`), live in `trained_run`.
"""

from __future__ import annotations

import contextlib
import math
import logging as py_logging
import os
from collections.abc import Callable
from typing import Any

import jax
import orbax.checkpoint as ocp
from absl import logging
from etils import epath

from restoration.runtime import exit_codes
# Re-exported: callers use checkpoints.MANIFEST, checkpoints.nonfinite, ...
from restoration.runtime.checkpoint_checks import (  # noqa: F401  pylint: disable=unused-import
    MANIFEST, StateMismatch, layout, layout_diff, nonfinite, one_line,
    verify_manifest, write_manifest)


class CheckpointError(RuntimeError):
  """A checkpoint could not be saved or no intact one could be read (one-line message)."""


class SaveError(CheckpointError):
  """Saving a checkpoint failed (disk full, I/O error): the run stops at the next step."""
  exit_status = exit_codes.IO_ERROR


class NoIntactCheckpoint(CheckpointError):
  """Every candidate checkpoint failed its checks (they were set aside, never deleted)."""
  exit_status = exit_codes.NO_INTACT_CHECKPOINT


class Checkpointer:
  """Owns the two Orbax CheckpointManagers of a workdir."""

  def __init__(self, workdir: str, *, keep: int = 2, read_only: bool = False):
    workdir = os.path.abspath(workdir)
    self.workdir, self.read_only = workdir, read_only
    # Every process saves its shards, but the files beside them (manifests, quarantine moves)
    # are written by one process only: two writers on a shared workdir race.
    self.primary = jax.process_index() == 0
    self._unhashed: dict[str, set[int]] = {"latest": set(), "best": set()}
    # Read-only: set what Orbax would force (and warn about); its last notice is dropped.
    every, quiet = (0, _no_read_only_notice) if read_only else (1, contextlib.nullcontext)
    with quiet():
      self._open(workdir, keep=None if read_only else keep, every=every, read_only=read_only)

  def _open(self, workdir: str, *, keep: int | None, every: int, read_only: bool) -> None:
    # Writable opens (a training run, holding the workdir's lock) have Orbax remove the
    # `<step>.orbax-checkpoint-tmp-*` folders of saves killed midway; read-only ones (eval
    # beside a live run) never touch them.
    psnr = lambda m: float(m["psnr"])  # noqa: E731
    self.latest = ocp.CheckpointManager(
        os.path.join(workdir, "checkpoints"),
        options=ocp.CheckpointManagerOptions(
            save_interval_steps=every, create=not read_only, read_only=read_only,
            enable_async_checkpointing=True, cleanup_tmp_directories=not read_only,
            **_manager_options(keep)),
        item_names=("state", "data", "model", "meta"))
    self.best = ocp.CheckpointManager(
        os.path.join(workdir, "best"),
        options=ocp.CheckpointManagerOptions(
            save_interval_steps=every, best_fn=psnr, best_mode="max",
            keep_checkpoints_without_metrics=False, create=not read_only,
            read_only=read_only, enable_async_checkpointing=True,
            cleanup_tmp_directories=not read_only,
            **_manager_options(keep and 1, best=psnr)),
        item_names=("model", "meta"))
    if not read_only:  # a broken best would block every later, better one
      self._first_intact(self.best, "best", lambda step: None)

  def _manager(self, which: str) -> ocp.CheckpointManager:
    return self.latest if which == "latest" else self.best

  def step_dir(self, which: str, step: int) -> str:
    return os.path.join(str(self._manager(which).directory), str(step))

  def poll(self) -> None:
    """The loop's per-step check: `_settle` (below)."""
    self._settle()

  def _settle(self) -> None:
    """Raises a failed asynchronous save's error (SaveError); hashes completed saves.

    Orbax's finalize thread may take a failed write's error before `check_for_errors` sees
    it (then only `wait_until_finished` raises it): so once no save is in progress, every
    step saved since the last poll must exist as a committed folder, or the save failed.
    """
    for which in ("latest", "best"):
      manager = self._manager(which)
      try:
        manager.check_for_errors()
      except Exception as e:  # pylint: disable=broad-except
        raise SaveError(f"saving a checkpoint under {manager.directory} failed: "
                        f"{one_line(e)}") from e
      pending = self._unhashed[which]
      if pending and not manager.is_saving_in_progress():
        missing = [s for s in sorted(pending) if not os.path.isdir(self.step_dir(which, s))]
        if missing and self.primary:
          pending.clear()  # reported once
          try:
            manager.wait_until_finished()  # re-raises the finalize thread's error, if it kept it
          except Exception as e:  # pylint: disable=broad-except
            raise SaveError(f"saving checkpoint step {missing[0]} under {manager.directory} "
                            f"failed: {one_line(e)}") from e
          raise SaveError(f"saving checkpoint step {missing[0]} under {manager.directory} "
                          "failed: it was never committed (see the log above for the cause)")
        for step in sorted(pending):
          if self.primary and os.path.isdir(self.step_dir(which, step)):
            write_manifest(self.step_dir(which, step))
        pending.clear()

  def commit(self, which: str = "latest") -> None:
    """Blocks until `which`'s saves are on disk and hashed (sha256.json); SaveError if not.
    The loop calls it before an eval, so a run killed during the eval leaves a checksummed
    checkpoint."""
    manager = self._manager(which)
    try:
      manager.wait_until_finished()
    except Exception as e:  # pylint: disable=broad-except
      raise SaveError(f"saving a checkpoint under {manager.directory} failed: "
                      f"{one_line(e)}") from e
    self._settle()

  def _quarantine(self, which: str, step: int, reason: str) -> str:
    src = self.step_dir(which, step)
    if self.read_only or not self.primary:
      logging.warning("checkpoint %s is broken (%s); skipping it", src, reason)
      return src
    dst = self.set_aside(which, step, "broken")
    logging.warning("checkpoint %s is broken (%s): moved to %s", src, reason, dst)
    return src

  def set_aside(self, which: str, step: int, folder: str) -> str:
    """Moves `which`'s checkpoint `step` to <workdir>/<folder>/<checkpoints|best>.<step>[.n]
    (never deleted, never overwriting); returns where it went."""
    src = self.step_dir(which, step)
    dst = os.path.join(self.workdir, folder, f"{os.path.basename(os.path.dirname(src))}.{step}")
    n = 1
    while os.path.exists(dst + (f".{n}" if n > 1 else "")):
      n += 1
    dst += f".{n}" if n > 1 else ""
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    os.rename(src, dst)
    self._manager(which).reload()
    return dst

  def _first_intact(self, manager, which: str, read, steps=None):
    """(step, read(step)) of the newest step passing every check; broken ones are set aside."""
    broken = []
    for step in sorted(manager.all_steps() if steps is None else steps, reverse=True):
      reason = verify_manifest(self.step_dir(which, step))
      out = None
      if reason is None:
        try:
          out = read(step)
        except StateMismatch:  # the config differs, the checkpoint is fine: never set aside
          raise
        except Exception as e:  # pylint: disable=broad-except
          reason = f"unreadable: {one_line(e)}"
      if reason is None and nonfinite(out):
        reason = f"non-finite values in {nonfinite(out)[0]}"
      if reason is None:
        return step, out
      broken.append(f"{step} ({reason})")
      self._quarantine(which, step, reason)
    return None, broken

  def latest_step(self) -> int | None:
    return self.latest.latest_step()

  def best_psnr(self) -> float | None:
    step = self.best.best_step()
    metrics = self.best.metrics(step) if step is not None else None
    return float(metrics["psnr"]) if metrics else None

  def save_latest(self, step: int, state: Any, data_state: dict | None, model: Any,
                  meta: dict) -> None:
    # Orbax waits for the previous save here anyway; settling it first (committed or
    # SaveError, hashed) keeps one step in flight, which retention cannot have deleted.
    self.commit("latest")
    self.latest.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_state or {}),
        model=ocp.args.StandardSave(model), meta=ocp.args.JsonSave(meta)), force=True)
    self._unhashed["latest"].add(int(step))

  def save_best(self, step: int, model: Any, meta: dict, psnr: float) -> bool:
    """Saves `model` as the best checkpoint when `psnr` beats the kept one; returns whether."""
    # A run resumed after a crash recomputes steps exactly; one saved before the crash stays.
    if step in self.best.all_steps():
      return False
    if not math.isfinite(float(psnr)) or nonfinite(model):  # a diverged model is never "best"
      logging.warning("step %d: eval PSNR %s / non-finite variables: not saved as best", step,
                      psnr)
      return False
    # The kept best's PSNR is read from its folder: a save still in flight reads as None,
    # and a worse model would be saved "as best", then deleted by Orbax's retention.
    self.commit("best")
    best = self.best_psnr()
    if best is not None and not float(psnr) > best:
      return False
    self.best.save(step, args=ocp.args.Composite(
        model=ocp.args.StandardSave(model), meta=ocp.args.JsonSave(meta)),
        metrics={"psnr": float(psnr)}, force=True)
    self._unhashed["best"].add(int(step))
    return True

  def stored_layout(self, step: int) -> dict:
    """`layout()` of the state saved at latest/<step>, from Orbax's metadata (no array read)."""
    path = epath.Path(self.step_dir("latest", step)) / "state"
    return layout(ocp.StandardCheckpointHandler().metadata(path).tree)

  def restore_latest(self, abstract_state: Any, step: int | None = None, *,
                     adapt: Callable[[Any], Any] | None = None) -> tuple[Any, dict]:
    """Restores (state, data_state) from `step` (default: the newest intact one).

    Broken checkpoints are set aside with a warning (module docstring); CheckpointError when
    none is intact. A checkpoint whose state has another structure than `abstract_state`
    raises StateMismatch before anything is read or moved, unless `adapt` is given: then the
    state is read as stored (nested dicts/lists of host arrays) and `adapt` turns it into the
    wanted one (`runtime.resume`).
    """
    wanted = layout(abstract_state)

    def read(s):
      stored = self.stored_layout(s)
      if stored != wanted and adapt is None:
        raise StateMismatch(self.step_dir("latest", s), s, stored, wanted)
      target = abstract_state if stored == wanted else None
      out = self.latest.restore(s, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(target), data=ocp.args.JsonRestore()))
      state = out.state if target is not None else adapt(out.state)
      return state, dict(out.data or {})

    found, out = self._first_intact(self.latest, "latest", read,
                                    None if step is None else [step])
    if found is None:
      raise NoIntactCheckpoint(
          f"no intact checkpoint in {self.latest.directory} (broken: {'; '.join(out)}); they "
          f"were moved to {os.path.join(self.workdir, 'broken')}: rerun to start from scratch")
    return out

  def wait(self) -> None:
    """Blocks until every save is on disk and hashed; raises a failed save's error."""
    self.commit("latest")
    self.commit("best")

  def close(self) -> None:
    """Waits for every pending save (also when an error is on its way out), then closes."""
    try:
      self.latest.wait_until_finished()
      self.best.wait_until_finished()
    finally:
      self.latest.close()
      self.best.close()


def _manager_options(keep: int | None, best=None) -> dict[str, Any]:
  """Retention and atomicity as the installed Orbax documents them: `preservation_policy`
  (older Orbax: the now deprecated `max_to_keep`; None keeps all), and ATOMIC_RENAME stated
  rather than AUTO: a workdir is a POSIX path (local, NFS, Lustre) where a step is written
  under a temporary name and renamed into place, the all-or-nothing step directory that the
  manifests and the quarantine rely on."""
  out: dict[str, Any] = {}
  policies = getattr(ocp, "checkpoint_managers", None)
  if keep is not None and policies is not None and hasattr(policies, "LatestN"):
    out["preservation_policy"] = (
        policies.LatestN(n=keep) if best is None else
        policies.BestN(get_metric_fn=best, reverse=False, n=keep,
                       keep_checkpoints_without_metrics=False))
  elif keep is not None:
    out["max_to_keep"] = keep
  options = getattr(ocp, "options", None)
  if options is not None and hasattr(options, "AtomicityOptions"):
    out["atomicity_options"] = options.AtomicityOptions(
        mode=options.AtomicityMode.ATOMIC_RENAME)
  return out


@contextlib.contextmanager
def _no_read_only_notice():
  """Drops Orbax's 'Given directory is read only' warning: reading a run is what we asked."""
  class Drop(py_logging.Filter):
    def filter(self, record):
      return not record.getMessage().startswith("Given directory is read only")
  logger, drop = py_logging.getLogger("absl"), Drop()
  logger.addFilter(drop)
  try:
    yield
  finally:
    logger.removeFilter(drop)
