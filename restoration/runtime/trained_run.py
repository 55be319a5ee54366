"""A trained run read back from its workdir (eval, restore, chained pipelines), and a workdir
written from weights that were not trained here (import).

`load_run(workdir, step=...)` gives the inference variables and meta of the best (default), or
a given step's, checkpoint, without rebuilding the training task; `with_trained_model` makes a
config's model fields the checkpoint's; `export` writes config.json and best/<step>/ so that
eval and restore read imported weights like a trained run. Checkpoints are read through
`checkpoints.Checkpointer` (checksums, quarantine of broken ones, the next intact one).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import ml_collections
import orbax.checkpoint as ocp
from absl import logging

from restoration.runtime import run_log
from restoration.runtime.checkpoints import Checkpointer, NoIntactCheckpoint


@dataclasses.dataclass
class TrainedRun:
  """What eval and restore need of a workdir: its config, and one checkpoint's model."""
  config: Any            # the training run's config.json (ConfigDict)
  variables: Any         # inference variables (EMA params when kept), host arrays
  meta: dict             # {'task', 'channels', 'model': {'name', 'kwargs', 'dtype'}}
  step: int
  which: str             # 'best' | 'latest'


def _read_model(manager: ocp.CheckpointManager, step: int) -> tuple[Any, dict]:
  out = manager.restore(step, args=ocp.args.Composite(
      model=ocp.args.StandardRestore(), meta=ocp.args.JsonRestore()))
  return out.model, dict(out.meta)


def load_run(workdir: str, *, step: int | None = None,
             config: ml_collections.ConfigDict | None = None) -> TrainedRun:
  """The inference variables of a workdir's best checkpoint (or of `step`).

  `config` (the one given with --config) stands in for the workdir's config.json when that is
  missing or unreadable (a warning names the file); without it, that raises naming the file.

  Default: the best checkpoint, else the newest latest one (with a warning); a broken one
  (checksums, Orbax, non-finite values) is skipped with a warning naming it, never deleted.
  With `step`: the latest manager's checkpoint at that step if it has one, else the best
  one's. Raises FileNotFoundError naming the workdir and listing the available steps, and
  CheckpointError (one line) when no candidate is intact.
  """
  ckpt_dir = os.path.abspath(workdir)
  if not any(os.path.isdir(os.path.join(ckpt_dir, d)) for d in ("checkpoints", "best")):
    raise FileNotFoundError(f"no checkpoints in workdir {workdir!r} (expected checkpoints/ or "
                            "best/ from a training run or --mode=import)")
  try:
    stored = run_log.read_config(workdir)
  except (FileNotFoundError, ValueError) as e:
    if config is None:
      raise
    logging.warning("%s: using the given --config instead", str(e).split(": pass")[0])
    stored = config
  config = stored
  ckpt = Checkpointer(workdir, read_only=True)
  try:
    latest_steps = sorted(ckpt.latest.all_steps())
    best_steps = sorted(ckpt.best.all_steps())
    if step is None:
      candidates = [("best", s) for s in best_steps[::-1]] + [
          ("latest", s) for s in latest_steps[::-1]]
    else:
      candidates = ([("latest", step)] if step in latest_steps else
                    [("best", step)] if step in best_steps else [])
    if not candidates:
      raise FileNotFoundError(
          f"no checkpoint {'at step %d ' % step if step is not None else ''}in {workdir!r}; "
          f"available steps: latest {latest_steps}, best {best_steps}")
    broken = []
    for which, found in candidates:
      got, out = ckpt._first_intact(  # pylint: disable=protected-access
          ckpt._manager(which), which,  # pylint: disable=protected-access
          lambda s, m=ckpt._manager(which): _read_model(m, s), [found])
      if got is not None:
        break
      broken.append(f"{which}/{out[0]}")
    else:
      raise NoIntactCheckpoint(f"no intact checkpoint in {workdir!r}: {'; '.join(broken)}")
    if which == "latest" and step is None:
      logging.warning("%s: no usable best checkpoint; using the latest (step %d)", workdir,
                      found)
    variables, meta = out
  finally:
    ckpt.close()
  return TrainedRun(config=config, variables=variables, meta=meta, step=int(found),
                    which=which)


def export(workdir: str, config: Any, variables: Any, meta: dict, *, step: int = 0) -> None:
  """Writes a workdir that eval and restore read like a trained run's (e.g. imported weights):
  config.json and best/<step>/ holding `variables` and `meta`. Refuses an existing best/."""
  if os.path.isdir(os.path.join(workdir, "best")):
    raise FileExistsError(f"{workdir!r} already holds a best/ checkpoint; use a new --workdir")
  os.makedirs(workdir, exist_ok=True)
  run_log.write_config(workdir, config, step=step)
  ckpt = Checkpointer(workdir)
  try:
    ckpt.best.save(step, args=ocp.args.Composite(
        model=ocp.args.StandardSave(variables), meta=ocp.args.JsonSave(meta)),
        metrics={"psnr": float("-inf")}, force=True)
    ckpt._unhashed["best"].add(int(step))  # pylint: disable=protected-access
    ckpt.wait()
  finally:
    ckpt.close()


def _get(config: ml_collections.ConfigDict, dotted: str) -> Any:
  for part in dotted.split("."):
    config = config[part]
  return config


def with_trained_model(config: ml_collections.ConfigDict, meta: dict,
                       source: str) -> ml_collections.ConfigDict:
  """A copy of `config` whose model name/kwargs and data.channels are the checkpoint's.

  The checkpoint's shapes depend on them; model.dtype and everything else stay as in `config`
  (e.g. bfloat16 eval of a float32 run). Logs a warning naming each field that differed.
  """
  out = ml_collections.ConfigDict(config.to_dict())
  trained = {"model.name": meta["model"]["name"], "model.kwargs": meta["model"]["kwargs"],
             "data.channels": meta["channels"]}
  for field, wanted in trained.items():
    given = run_log.plain(_get(config, field))
    if given != run_log.plain(wanted):
      logging.warning("config.%s=%r differs from the trained run's %r (%s); using the "
                      "trained run's", field, given, wanted, source)
    parent, leaf = field.rsplit(".", 1)
    _get(out, parent)[leaf] = (ml_collections.ConfigDict(wanted) if isinstance(wanted, dict)
                               else wanted)
  return out
