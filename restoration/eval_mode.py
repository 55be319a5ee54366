"""`launch.py --mode=eval`: evaluate a trained checkpoint over a corruption sweep.

  python launch.py --mode=eval --config=configs/dncnn.py --workdir=runs/dncnn \\
    --config.data.eval=folder:../shared/data/denoise/test/BSD68 [--step=N]

Loads the best checkpoint (or `--step`: the latest manager's checkpoint at that step, else the
best one's), evaluates `config.data.eval` at every level of `config.eval.sweep` (name -> chain
specs; empty: the training corruption, named 'train') and writes, from process 0 only:

  eval/results.json     a JSON list of rows, one per dataset x level x convention x step x
                        self_ensemble x tile (the key). Rows accumulate over runs: a re-run with
                        the same key replaces its rows, other rows are kept. Row fields:
                        dataset, corruption, n_images, input_psnr, psnr, input_ssim, ssim,
                        loss, convention, step, checkpoint ('best'|'latest'), self_ensemble,
                        tile, tile_overlap, eval_seed, specs. Non-finite values are null.
  eval/results.md       every row as markdown tables, one per (dataset, checkpoint step,
                        convention, self_ensemble, tile) with a header line naming them.
  eval/per_image_<dataset>_<level>.csv   name, psnr, ssim, input_psnr, input_ssim for this run
                        (<dataset> is the spec sanitised to [A-Za-z0-9_-]).
  images/eval_<dataset>_<level>.png   clean | corrupted | restored grid (PSNR under each image).
  plots/                regenerated from metrics.jsonl when the workdir has one.

With `config.eval.tile > 0` every image goes through the host-driven tiled path
(`Evaluator.evaluate_tiled`): same corruption keys, same metrics, the model compiled once for
the tile shape. Otherwise the pmapped eval step of training is used.
"""

import csv
import hashlib
import json
import math
import os
import re
from collections.abc import Sequence
from typing import Any

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from absl import logging

from restoration import checkpoints
from restoration import corruptions
from restoration import evaluate
from restoration import logging as rlog
from restoration import models
from restoration import optim
from restoration import parallel
from restoration import state as state_lib
from restoration import visualize

RESULT_FIELDS = ("dataset", "corruption", "n_images", "input_psnr", "psnr", "input_ssim", "ssim",
                 "loss", "convention", "step", "checkpoint", "self_ensemble", "tile",
                 "tile_overlap", "eval_seed", "specs")
ROW_KEY = ("dataset", "corruption", "convention", "step", "self_ensemble", "tile")
PER_IMAGE_FIELDS = ("psnr", "ssim", "input_psnr", "input_ssim")


# ------------------------------------------------------------------------------ checkpoints

def model_multiple(config: ml_collections.ConfigDict) -> int:
  """The H/W multiple the model pads to internally (tiles are aligned to it); 1 if none."""
  try:
    fields = models.model_fields(config.model.name)
  except ValueError:
    return 1
  fields.update(dict(config.model.kwargs))
  if "bottleneck" in fields:  # the U-Nets
    return 2 ** int(fields["depth"])
  if "window_size" in fields:  # CvT
    return int(fields["patch_size"]) * int(fields["window_size"])
  return 1


def load_variables(config: ml_collections.ConfigDict, workdir: str, *,
                   step: int | None = None) -> tuple[dict, int, str]:
  """Restores the eval variables (EMA params if kept) of a workdir's checkpoint.

  Default: the best checkpoint (the latest one when the run has no best). With `step`: the
  'latest' manager's checkpoint at that step if it has one, else the best one's. Returns
  (variables, step, 'best' | 'latest'). Raises FileNotFoundError listing the available steps.
  """
  # The checkpoint holds the whole training state: its shapes come from the config it was
  # trained with (config.json), so an eval --config may differ in optimizer, steps, data...
  trained = (rlog.read_config(workdir)
             if os.path.exists(os.path.join(workdir, "config.json")) else config)
  tx, _ = optim.make_optimizer(trained)
  abstract = state_lib.abstract_train_state(trained, state_lib.build_model(trained), tx)
  ckpt_dir = os.path.abspath(workdir)
  if not any(os.path.isdir(os.path.join(ckpt_dir, d)) for d in ("checkpoints", "best")):
    raise FileNotFoundError(f"no checkpoints in workdir {workdir!r} (expected checkpoints/ or "
                            "best/ from a training run)")
  ckpt = checkpoints.Checkpointer(workdir, read_only=True)
  try:
    latest_steps = sorted(ckpt.latest.all_steps())
    best_steps = sorted(ckpt.best.all_steps())
    if step is None:
      if best_steps:
        state, found = ckpt.restore_best(abstract)
        which = "best"
      elif latest_steps:
        logging.warning("%s has no best checkpoint; using the latest (step %d)", workdir,
                        latest_steps[-1])
        state, _ = ckpt.restore_latest(abstract)
        found, which = latest_steps[-1], "latest"
      else:
        raise FileNotFoundError(f"no checkpoints in workdir {workdir!r}")
    elif step in latest_steps:
      state, _ = ckpt.restore_latest(abstract, step)
      found, which = step, "latest"
    elif step in best_steps:
      out = ckpt.best.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract)))
      state, found, which = out.state, step, "best"
    else:
      raise FileNotFoundError(
          f"no checkpoint at step {step} in {workdir!r}; available steps: latest "
          f"{latest_steps}, best {best_steps}")
  finally:
    ckpt.close()
  return state.eval_variables(), int(found), which


# ---------------------------------------------------------------------------------- sweep

def sweep_levels(config: ml_collections.ConfigDict) -> dict[str, list]:
  """Level name -> corruption chain specs: config.eval.sweep, or {'train': config.corruption}."""
  sweep = config.eval.get("sweep") or {}
  levels = {str(k): _plain(v) for k, v in sweep.items()}
  if not levels:
    levels = {"train": _plain(config.corruption)}
  for name, specs in levels.items():
    try:
      corruptions.validate(specs)
    except ValueError as e:
      raise ValueError(f"config.eval.sweep.{name}: {e}") from e
  return levels


def _plain(value: Any) -> Any:
  """ConfigDicts / tuples -> plain JSON-able dicts / lists."""
  if hasattr(value, "to_dict"):
    value = value.to_dict()
  if isinstance(value, dict):
    return {str(k): _plain(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_plain(v) for v in value]
  return value


def slug(text: str, max_len: int = 60) -> str:
  """A file-name-safe version of `text` (a dataset spec or level name), unique-ish."""
  out = re.sub(r"[^A-Za-z0-9_-]+", "_", str(text)).strip("_") or "x"
  if len(out) > max_len:
    digest = hashlib.sha1(str(text).encode()).hexdigest()[:8]
    out = out[-(max_len - 9):].lstrip("_") + "_" + digest
  return out


def _devices(batch_size: int) -> list[jax.Device] | None:
  """None (pmap's default: every device of every process) when the global eval batch divides
  over them; single-process, otherwise the most local devices it divides over."""
  n_local = jax.local_device_count()
  if jax.process_count() > 1 or batch_size % n_local == 0:
    return None
  n = max(d for d in range(1, n_local + 1) if batch_size % d == 0)
  logging.info("eval: using %d of %d devices (data.eval_batch_size=%d)", n, n_local,
               batch_size)
  return jax.local_devices()[:n]


# ------------------------------------------------------------------------------- results

def _finite(v: Any) -> Any:
  if isinstance(v, (float, np.floating)):
    v = float(v)
    return v if math.isfinite(v) else None
  return v


def _key(row: dict) -> tuple:
  return tuple(json.dumps(row.get(k), sort_keys=True) for k in ROW_KEY)


def merge_rows(old: Sequence[dict], new: Sequence[dict]) -> list[dict]:
  """`old` with rows of the same ROW_KEY as a `new` row replaced (in place), others kept."""
  new_by_key = {_key(r): r for r in new}
  out, used = [], set()
  for row in old:
    k = _key(row)
    if k in new_by_key:
      if k not in used:
        out.append(new_by_key[k])
        used.add(k)
    else:
      out.append(row)
  out.extend(r for r in new if _key(r) not in used)
  return out


def read_results(path: str) -> list[dict]:
  if not os.path.exists(path):
    return []
  try:
    with open(path) as f:
      rows = json.load(f)
  except json.JSONDecodeError as e:
    raise ValueError(f"{path} is not valid JSON ({e}); move it away to start afresh") from e
  if not isinstance(rows, list):
    raise ValueError(f"{path} must hold a JSON list of rows")
  return rows


def _fmt(v: Any, digits: int) -> str:
  if v is None:
    return "inf" if digits == 2 else "-"  # only PSNR of identical images is non-finite
  return f"{v:.{digits}f}"


def markdown(rows: Sequence[dict]) -> str:
  """Markdown tables: one per (dataset, step, checkpoint, convention, self_ensemble, tile)."""
  groups: dict[tuple, list[dict]] = {}
  for r in rows:
    g = (r["dataset"], r["step"], r["checkpoint"], r["convention"], r["self_ensemble"],
         r["tile"])
    groups.setdefault(g, []).append(r)
  parts = []
  for (dataset, step, which, conv, ens, tile), members in groups.items():
    extras = (", self-ensemble x8" if ens else "") + (f", tiles {tile}px" if tile else "")
    parts.append(f"### `{dataset}`: checkpoint step {step} ({which}), convention `{conv}`"
                 f"{extras}\n")
    parts.append("| level | images | loss | input PSNR | PSNR | input SSIM | SSIM |")
    parts.append("|---|---:|---:|---:|---:|---:|---:|")
    for r in members:
      parts.append(f"| {r['corruption']} | {r['n_images']} | {_fmt(r['loss'], 5)} | "
                   f"{_fmt(r['input_psnr'], 2)} | {_fmt(r['psnr'], 2)} | "
                   f"{_fmt(r['input_ssim'], 4)} | {_fmt(r['ssim'], 4)} |")
    parts.append("")
  return "\n".join(parts)


def _write_text(path: str, text: str) -> None:
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.write(text)
  os.replace(tmp, path)


def _write_per_image(path: str, result: evaluate.EvalResult) -> None:
  with open(path, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(("name",) + PER_IMAGE_FIELDS)
    for j, name in enumerate(result.names):
      w.writerow([name] + [repr(float(result.per_image[k][j])) for k in PER_IMAGE_FIELDS])


# ----------------------------------------------------------------------------------- run

def run(config: ml_collections.ConfigDict, workdir: str, *, step: int | None = None,
        devices: Sequence[jax.Device] | None = None) -> list[dict]:
  """Evaluates a checkpoint of `workdir` over the sweep; writes eval/; returns this run's rows."""
  levels = sweep_levels(config)
  lead = jax.process_index() == 0
  eval_dir = os.path.join(workdir, "eval")
  results_path = os.path.join(eval_dir, "results.json")
  old_rows = read_results(results_path) if lead else []  # a broken file fails before the work
  model = state_lib.build_model(config)
  variables, ckpt_step, which = load_variables(config, workdir, step=step)
  if devices is None:
    devices = _devices(config.data.eval_batch_size)
  evaluator = evaluate.Evaluator(config, model, devices=devices)
  tile = int(config.eval.tile)
  dataset = str(config.data.eval)
  conv = evaluate.convention(config)
  logging.info("eval: %s checkpoint step %d on %s (%d images), levels %s, convention %s%s",
               which, ckpt_step, dataset, len(evaluator.images), list(levels), conv,
               f", tiles {tile}" if tile > 0 else "")
  replicated = None if tile > 0 else parallel.replicate(variables, devices)
  rows = []
  for level, specs in levels.items():
    if tile > 0:
      result = evaluator.evaluate_tiled(variables, specs, multiple=model_multiple(config))
    else:
      result = evaluator.evaluate(replicated, specs)
    row = {"dataset": dataset, "corruption": level, "n_images": result.n_images,
           **{k: _finite(result.means[k]) for k in evaluate.METRICS},
           "convention": conv, "step": ckpt_step, "checkpoint": which,
           "self_ensemble": bool(config.eval.self_ensemble), "tile": max(tile, 0),
           "tile_overlap": int(config.eval.tile_overlap) if tile > 0 else 0,
           "eval_seed": int(config.eval.seed), "specs": specs}
    rows.append({k: row[k] for k in RESULT_FIELDS})
    logging.info("eval %s: psnr %.3f (input %.3f), ssim %.4f (input %.4f)", level,
                 result.means["psnr"], result.means["input_psnr"], result.means["ssim"],
                 result.means["input_ssim"])
    if lead:
      os.makedirs(eval_dir, exist_ok=True)
      _write_per_image(os.path.join(eval_dir, f"per_image_{slug(dataset)}_{slug(level)}.csv"),
                       result)
      if result.samples and config.eval.num_grid_images > 0:
        visualize.save_grid(os.path.join(workdir, "images", f"eval_{slug(config.data.eval)}_{slug(level)}.png"),
                            **result.grid_arrays(config.eval.num_grid_images))
  table = markdown(rows)
  if lead:
    all_rows = merge_rows(old_rows, rows)
    _write_text(results_path, json.dumps(all_rows, indent=2) + "\n")
    _write_text(os.path.join(eval_dir, "results.md"),
                "# Evaluation results\n\n" + markdown(all_rows))
    metrics_path = os.path.join(workdir, "metrics.jsonl")
    if os.path.exists(metrics_path):
      visualize.plot_curves(metrics_path, os.path.join(workdir, "plots"))
    print(table, flush=True)
    logging.info("eval results written to %s", eval_dir)
  return rows
