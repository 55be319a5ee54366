"""What a run writes about itself: config.json, metrics.jsonl, TensorBoard events, console.

metrics.jsonl holds one JSON object per event, e.g.
  {"step": 100, "kind": "train", "loss": ..., "learning_rate": ..., "grad_norm": ..., "steps_per_sec": ...}
  {"step": 1000, "kind": "eval", "psnr": ..., "ssim": ..., "input_psnr": ..., "input_ssim": ...}
TensorBoard events (tensorboardX: no TensorFlow needed) go to <workdir>/tensorboard as
'<kind>/<name>' scalars, and the eval grids as images; view them with `pip install tensorboard`
and `tensorboard --logdir runs/`. Only process 0 writes; the other processes get a writer that
does nothing.
"""

import json
import math
import os
from typing import Any

import ml_collections
from absl import logging


def plain(value: Any) -> Any:
  """ConfigDicts / tuples -> plain JSON-able dicts / lists."""
  if hasattr(value, "to_dict"):
    value = value.to_dict()
  if isinstance(value, dict):
    return {str(k): plain(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [plain(v) for v in value]
  return value


REQUIRED = ("model", "data", "eval", "corruption", "loss")  # what eval / restore read


def write_config(workdir: str, config: ml_collections.ConfigDict, *, step: int = 0) -> str:
  """Writes the resolved config to <workdir>/config.json; returns the path.

  A run resumed at `step` with a changed config (e.g. a larger total_steps) keeps the previous
  one as config.step<step>.json, so the history of what produced the checkpoints survives.
  """
  path = os.path.join(workdir, "config.json")
  text = config.to_json(indent=2, sort_keys=True) + "\n"
  if os.path.exists(path):
    with open(path) as f:
      old = f.read()
    if old == text:
      return path
    os.replace(path, os.path.join(workdir, f"config.step{step}.json"))
  with open(path, "w") as f:
    f.write(text)
  return path


# What the checkpoints of a run are made of: a resume with other values cannot load them.
IDENTITY = ("task", "model.name", "model.kwargs", "data.channels", "optimizer.name")


def _leaves(value: Any, prefix: str) -> dict[str, Any]:
  if isinstance(value, dict):
    out = {}
    for k, v in value.items():
      out.update(_leaves(v, f"{prefix}.{k}"))
    return out or {prefix: {}}
  return {prefix: value}


def _get(tree: dict, dotted: str, default: Any = None) -> Any:
  for key in dotted.split("."):
    if not isinstance(tree, dict) or key not in tree:
      return default
    tree = tree[key]
  return tree


def check_resumable(workdir: str, config: ml_collections.ConfigDict, step: int) -> None:
  """ValueError when `config` changes what the workdir's checkpoints hold (task, model, data
  channels, optimizer, EMA); other changes (more steps, eval cadence) resume."""
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    return
  try:
    with open(path) as f:
      stored = json.load(f)
    if not isinstance(stored, dict):
      raise ValueError("not a JSON object")
  except (OSError, UnicodeDecodeError, ValueError) as e:
    # The config given on the command line is the authority; the checkpoint's own structure is
    # still checked against it when restoring, and write_config keeps this file aside.
    logging.warning("%s is unreadable (%s): resuming with the given --config (the unreadable "
                    "file is kept as config.step%d.json)", path, e, step)
    return
  new = plain(config)
  old_leaves, new_leaves = {}, {}
  # resume_optimizer=reinit_changed re-initialises the optimizer state a change replaced.
  reinit = new.get("resume_optimizer") == "reinit_changed"
  for key in IDENTITY:
    if reinit and key == "optimizer.name":
      continue
    default = "supervised" if key == "task" else None
    old_leaves.update(_leaves(_get(stored, key, default), key))
    new_leaves.update(_leaves(_get(new, key, default), key))
  old_leaves["ema"] = _get(stored, "ema_decay", 0.0) > 0
  new_leaves["ema"] = _get(new, "ema_decay", 0.0) > 0
  diffs = [k for k in sorted(set(old_leaves) | set(new_leaves))
           if old_leaves.get(k) != new_leaves.get(k)]
  if not diffs:
    return
  what = "; ".join(f"{k}: {json.dumps(old_leaves.get(k))} -> {json.dumps(new_leaves.get(k))}"
                   for k in diffs)
  match = " ".join(f"--config.{k}={json.dumps(old_leaves[k])}" for k in diffs
                   if k in old_leaves and k != "ema")
  raise ValueError(f"--workdir={workdir} holds a different run (step {step}), which this config "
                   f"cannot resume: {what}. Use a new --workdir, or match the stored run"
                   f"{' with ' + match if match else ''} (its config: {path})")


def read_config(workdir: str) -> ml_collections.ConfigDict:
  """The resolved config a training run wrote to <workdir>/config.json.

  Raises FileNotFoundError / ValueError naming the file when it is missing, not JSON, not an
  object, or lacks the fields every run config has (`REQUIRED`).
  """
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: pass --config, or a --workdir of a training run")
  try:
    with open(path) as f:
      value = json.load(f)
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
    raise ValueError(f"{path} is not a readable JSON config ({e}); pass --config") from None
  missing = [k for k in REQUIRED if not isinstance(value, dict) or k not in value]
  if missing:
    raise ValueError(f"{path} is not a training run's config: it lacks {', '.join(missing)}; "
                     "pass --config")
  return ml_collections.ConfigDict(value)


class MetricWriter:
  """Appends events to metrics.jsonl and TensorBoard; a no-op when `enabled` is False."""

  def __init__(self, workdir: str, *, enabled: bool = True, resume_step: int = 0):
    self.enabled = enabled
    self.path = os.path.join(workdir, "metrics.jsonl")
    self._tb = None
    if not enabled:
      return
    self._truncate_after(resume_step)
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
    self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"), purge_step=resume_step + 1
                             if resume_step else None)

  def _truncate_after(self, step: int) -> None:
    # A resumed run recomputes (identically) every event after its checkpoint; drop the old
    # copies so the log holds each step once. Lines we do not understand are kept.
    if not os.path.exists(self.path):
      return
    with open(self.path) as f:
      lines = f.readlines()
    kept = []
    for line in lines:
      try:
        event = json.loads(line)
      except json.JSONDecodeError:
        continue  # a partial line from a crash
      if isinstance(event, dict) and event.get("step", 0) > step:
        continue
      kept.append(line if line.endswith("\n") else line + "\n")
    if len(kept) != len(lines):
      tmp = self.path + ".tmp"
      with open(tmp, "w") as f:
        f.writelines(kept)
      os.replace(tmp, self.path)

  def write(self, step: int, kind: str, *, about: str | None = None, **scalars: float) -> None:
    """Appends one event; `about` (e.g. 'BSD68: 4 of 68 images, 64 px crops') goes into the
    log line only, so a reader knows what the numbers measured."""
    if not self.enabled:
      return
    event = {"step": int(step), "kind": kind}
    event.update({k: _jsonable(v) for k, v in scalars.items()})
    with open(self.path, "a") as f:
      f.write(json.dumps(event) + "\n")
    for k, v in scalars.items():
      v = float(v)
      if math.isfinite(v):
        self._tb.add_scalar(f"{kind}/{k}", v, step)
    self._tb.flush()
    logging.info("step %d %s%s: %s", step, kind, f" ({about})" if about else "",
                 ", ".join(f"{k}={float(v):.4g}" for k, v in scalars.items()))

  def image(self, step: int, tag: str, image: Any) -> None:
    """An [H, W, 3] uint8 picture (e.g. the eval grid) as a TensorBoard image."""
    if self.enabled:
      self._tb.add_image(tag, image, step, dataformats="HWC")
      self._tb.flush()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()


def _jsonable(v: Any) -> float | None:
  v = float(v)
  return v if math.isfinite(v) else None
