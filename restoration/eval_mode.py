"""`launch.py --mode=eval`: evaluate a trained checkpoint over a corruption sweep.

  python launch.py --mode=eval --config=configs/dncnn.py --workdir=runs/dncnn \\
    --config.data.eval=folder:../shared/data/denoise/test/BSD68 [--step=N]

The model (model.name, model.kwargs) and data.channels always come from the workdir's
config.json (`training_config`; a warning names every field the --config disagreed on), so a
`:quick` run can be evaluated with the full config file; model.dtype and every eval field come
from --config. Loads the best checkpoint (or `--step`: the latest manager's checkpoint at that
step, else the best one's), evaluates `config.data.eval` at every level of `config.eval.sweep`
(name -> chain specs; empty: the training corruption, named 'train') and writes, from
process 0 only:

  eval/results.json     a JSON list of rows. Row fields: dataset, corruption, n_images,
                        input_psnr, psnr, input_ssim, ssim, loss, convention, step, checkpoint
                        ('best'|'latest'), self_ensemble, tile, tile_overlap, eval_seed, specs.
                        Non-finite values are null. Rows accumulate over runs: a re-run with the
                        same key (ROW_KEY: dataset, level, n_images, convention, step,
                        self_ensemble, tile, tile_overlap, eval_seed and the level's specs,
                        compared as canonical JSON) replaces its rows, other rows are kept.
  eval/results.md       every row as markdown tables, one per (dataset, checkpoint step,
                        convention, self_ensemble, tile, tile_overlap, eval_seed).
  eval/per_image_<dataset>_<level>_<tag>.csv   name, psnr, ssim, input_psnr, input_ssim of
                        the latest run with that file name
                        (<dataset> is the spec sanitised to [A-Za-z0-9_-]; <tag> is
                        `step<N>`, then `_<convention>` unless 'rgb', `_x8` with
                        self-ensemble, `_tile<T>` when tiled; see `file_tag`).
  images/eval_<dataset>_<level>_<tag>.png   clean | corrupted | restored grid (PSNR under each
                        image); skipped when eval.num_grid_images is 0.
  plots/                regenerated from metrics.jsonl when the workdir has one.

With `config.eval.tile > 0` every image goes through the host-driven tiled path
(`Evaluator.evaluate_tiled`): same corruption keys, same metrics, the model compiled once for
the tile shape. Otherwise the pmapped eval step of training is used, with the variables placed
on the devices once for all levels.
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
ROW_KEY = ("dataset", "corruption", "n_images", "convention", "step", "self_ensemble", "tile",
           "tile_overlap", "eval_seed", "specs")
# Fields taken from the workdir's config.json: the checkpoint's shapes depend on them.
TRAINING_FIELDS = ("model.name", "model.kwargs", "data.channels")
PER_IMAGE_FIELDS = ("psnr", "ssim", "input_psnr", "input_ssim")


# ------------------------------------------------------------------------------ checkpoints

def _get(config: ml_collections.ConfigDict, dotted: str) -> Any:
  for part in dotted.split("."):
    config = config[part]
  return config


def training_config(config: ml_collections.ConfigDict, workdir: str) -> ml_collections.ConfigDict:
  """A copy of `config` with the model and data.channels of the workdir's training run.

  model.name, model.kwargs and data.channels come from <workdir>/config.json when it exists
  (the checkpoint's shapes depend on them); model.dtype and everything else stay as in
  `config` (e.g. bfloat16 eval of a float32 run). Logs a warning naming each field that
  differed. Without a config.json, an unchanged copy.
  """
  out = ml_collections.ConfigDict(config.to_dict())
  if not os.path.exists(os.path.join(workdir, "config.json")):
    return out
  trained = rlog.read_config(workdir)
  for field in TRAINING_FIELDS:
    value = _get(trained, field)
    given, wanted = _plain(_get(config, field)), _plain(value)
    if given != wanted:
      logging.warning("config.%s=%r differs from the training run's %r (%s); using the "
                      "training run's", field, given, wanted,
                      os.path.join(workdir, "config.json"))
    parent, leaf = field.rsplit(".", 1)
    _get(out, parent)[leaf] = (ml_collections.ConfigDict(value.to_dict())
                               if hasattr(value, "to_dict") else value)
  return out


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
  """Level name -> corruption chain specs: config.eval.sweep, or {'train': config.corruption}.

  Not validated here: `evaluate.validate_eval_config` does that at start-up.
  """
  sweep = config.eval.get("sweep") or {}
  levels = {str(k): _plain(v) for k, v in sweep.items()}
  if not levels:
    levels = {"train": _plain(config.corruption)}
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


def file_tag(step: int, convention: str, self_ensemble: bool, tile: int) -> str:
  """The file-name suffix of a run's per-image CSV and grid: 'step<N>[_<conv>][_x8][_tile<T>]'."""
  tag = f"step{int(step)}"
  if convention != "rgb":
    tag += f"_{slug(convention)}"
  if self_ensemble:
    tag += "_x8"
  if tile > 0:
    tag += f"_tile{int(tile)}"
  return tag


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
  """ROW_KEY's values as canonical JSON (sorted keys): specs lists compare by content."""
  return tuple(json.dumps(_plain(row.get(k)), sort_keys=True) for k in ROW_KEY)


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


def _specs_text(specs: Any) -> str:
  """Compact text of a chain, e.g. 'gaussian_noise(sigma=25.0)'."""
  if not isinstance(specs, list):
    return "-"
  out = []
  for spec in specs:
    params = {k: v for k, v in spec.items() if k != "name"} if isinstance(spec, dict) else {}
    args = ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(params.items()))
    out.append(f"{spec.get('name', '?') if isinstance(spec, dict) else spec}({args})")
  return " + ".join(out).replace("|", "\\|")


def markdown(rows: Sequence[dict]) -> str:
  """Markdown tables: one per (dataset, step, checkpoint, convention, self_ensemble, tile,
  tile_overlap, eval_seed); a row per level, with its images and corruption specs."""
  groups: dict[tuple, list[dict]] = {}
  for r in rows:
    g = (r["dataset"], r["step"], r["checkpoint"], r["convention"], r["self_ensemble"],
         r["tile"], r.get("tile_overlap"), r.get("eval_seed"))
    groups.setdefault(g, []).append(r)
  parts = []
  for (dataset, step, which, conv, ens, tile, overlap, seed), members in groups.items():
    extras = (", self-ensemble x8" if ens else "")
    extras += f", tiles {tile}px (overlap {overlap})" if tile else ""
    extras += f", eval seed {seed}" if seed is not None else ""
    parts.append(f"### `{dataset}`: checkpoint step {step} ({which}), convention `{conv}`"
                 f"{extras}\n")
    parts.append("| level | images | loss | input PSNR | PSNR | input SSIM | SSIM | corruption |")
    parts.append("|---|---:|---:|---:|---:|---:|---:|---|")
    for r in members:
      parts.append(f"| {r['corruption']} | {r['n_images']} | {_fmt(r['loss'], 5)} | "
                   f"{_fmt(r['input_psnr'], 2)} | {_fmt(r['psnr'], 2)} | "
                   f"{_fmt(r['input_ssim'], 4)} | {_fmt(r['ssim'], 4)} | "
                   f"{_specs_text(r.get('specs'))} |")
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
  evaluate.validate_eval_config(config)
  config = training_config(config, workdir)
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
  ensemble = bool(config.eval.self_ensemble)
  dataset = str(config.data.eval)
  conv = evaluate.convention(config)
  tag = file_tag(ckpt_step, conv, ensemble, tile)
  logging.info("eval: %s checkpoint step %d on %s (%d images), levels %s, convention %s%s",
               which, ckpt_step, dataset, len(evaluator.images), list(levels), conv,
               f", tiles {tile}" if tile > 0 else "")
  # Placed on the devices once for every level and batch (host arrays would be re-sent).
  placed = (None if tile > 0 else
            parallel.to_devices(parallel.replicate(variables, devices), devices))
  rows = []
  for level, specs in levels.items():
    if tile > 0:
      result = evaluator.evaluate_tiled(variables, specs, multiple=model_multiple(config))
    else:
      result = evaluator.evaluate(placed, specs)
    row = {"dataset": dataset, "corruption": level, "n_images": result.n_images,
           **{k: _finite(result.means[k]) for k in evaluate.METRICS},
           "convention": conv, "step": ckpt_step, "checkpoint": which,
           "self_ensemble": ensemble, "tile": max(tile, 0),
           "tile_overlap": int(config.eval.tile_overlap) if tile > 0 else 0,
           "eval_seed": int(config.eval.seed), "specs": specs}
    rows.append({k: row[k] for k in RESULT_FIELDS})
    logging.info("eval %s: psnr %.3f (input %.3f), ssim %.4f (input %.4f)", level,
                 result.means["psnr"], result.means["input_psnr"], result.means["ssim"],
                 result.means["input_ssim"])
    if lead:
      name = f"{slug(dataset)}_{slug(level)}_{tag}"
      os.makedirs(eval_dir, exist_ok=True)
      _write_per_image(os.path.join(eval_dir, f"per_image_{name}.csv"), result)
      grid = result.grid_arrays(config.eval.num_grid_images)
      if grid is not None:
        visualize.save_grid(os.path.join(workdir, "images", f"eval_{name}.png"), **grid)
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
