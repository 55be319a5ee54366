"""What a run writes about itself: config.json, metrics.jsonl, TensorBoard events, console.

metrics.jsonl holds one JSON object per event, e.g.
  {"step": 100, "kind": "train", "loss": ..., "learning_rate": ..., "grad_norm": ..., "steps_per_sec": ...}
  {"step": 1000, "kind": "eval", "psnr": ..., "ssim": ..., "input_psnr": ..., "input_ssim": ...}
TensorBoard events (tensorboardX: no TensorFlow needed) go to <workdir>/tensorboard as
'<kind>/<name>'. Only process 0 writes; the other processes get a writer that does nothing.
"""

import json
import math
import os
from typing import Any

import ml_collections
from absl import logging


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


def read_config(workdir: str) -> ml_collections.ConfigDict:
  """The resolved config a training run wrote to <workdir>/config.json."""
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: pass --config, or a --workdir of a training run")
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


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

  def write(self, step: int, kind: str, **scalars: float) -> None:
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
    logging.info("step %d %s: %s", step, kind,
                 ", ".join(f"{k}={float(v):.4g}" for k, v in scalars.items()))

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()


def _jsonable(v: Any) -> float | None:
  v = float(v)
  return v if math.isfinite(v) else None
