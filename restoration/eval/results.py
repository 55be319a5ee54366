"""Eval results as files: sweep levels, result rows (JSON + markdown), per-image CSVs, names.

Shared by `--mode=eval` (which writes them) and the sweep aggregation (which reads them). The
row schema and file names are documented in `restoration.modes.evaluate`.
"""

import csv
import hashlib
import json
import math
import os
import re
from collections.abc import Sequence
from typing import Any

import ml_collections
import numpy as np

from restoration.data.eval_images import describe_set
from restoration.eval import evaluator
from restoration.runtime import run_log

# set, set_size, eval_crop: what the images are a part of (data.EvalImages.row_fields).
RESULT_FIELDS = ("dataset", "corruption", "n_images", "set", "set_size", "eval_crop",
                 "input_psnr", "psnr", "input_ssim", "ssim", "loss", "convention", "step",
                 "checkpoint", "self_ensemble", "tile", "tile_overlap", "eval_seed", "specs")
# stage, runs: rows of the chained pipeline's eval only (restoration.modes.chained_eval); null else.
ROW_KEY = ("dataset", "corruption", "n_images", "eval_crop", "convention", "step",
           "self_ensemble", "tile", "tile_overlap", "eval_seed", "specs", "stage", "runs")
PIPELINE_METRICS = (("input_psnr", 2), ("psnr", 2), ("input_ssim", 4), ("ssim", 4),
                    ("iou", 4), ("f1", 4), ("precision", 4), ("recall", 4))
PER_IMAGE_FIELDS = ("psnr", "ssim", "input_psnr", "input_ssim")


# ---------------------------------------------------------------------------------- sweep

def sweep_levels(config: ml_collections.ConfigDict) -> dict[str, list]:
  """Level name -> corruption chain specs: config.eval.sweep, or {'train': config.corruption}
  ({'none': []} when that chain is empty: e.g. `pairs:` data whose inputs are degraded already).

  Not validated here: `evaluator.EvalOptions.from_config` does that at start-up.
  """
  sweep = config.eval.get("sweep") or {}
  levels = {str(k): run_log.plain(v) for k, v in sweep.items()}
  if not levels:
    chain = run_log.plain(config.corruption)
    levels = {"train" if chain else "none": chain}
  return levels


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


# ------------------------------------------------------------------------------- results

def finite(v: Any) -> Any:
  if isinstance(v, (float, np.floating)):
    v = float(v)
    return v if math.isfinite(v) else None
  return v


def _key(row: dict) -> tuple:
  """ROW_KEY's values as canonical JSON (sorted keys): specs lists compare by content."""
  return tuple(json.dumps(run_log.plain(row.get(k)), sort_keys=True) for k in ROW_KEY)


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


def set_label(row: dict) -> str:
  """What a row measured, e.g. 'BSD68: 4 of 68 images, 64 px crops' (`data.describe_set`);
  rows written before these fields existed: '<n> images'."""
  if row.get("set") is None:
    return f"{row.get('n_images')} images"
  return describe_set(row["set"], row["n_images"], row.get("set_size"),
                      row.get("eval_crop") or 0)


def markdown(rows: Sequence[dict]) -> str:
  """Markdown tables: one per (dataset, images, crop, step, checkpoint, convention,
  self_ensemble, tile, tile_overlap, eval_seed), headed by what was measured ('BSD68: 4 of 68
  images, 64 px crops'); a row per level, with its images and corruption specs. Then the
  chained pipeline's rows (those with a 'stage'), in `pipeline_markdown`'s tables."""
  groups: dict[tuple, list[dict]] = {}
  staged = [r for r in rows if "stage" in r]
  for r in (r for r in rows if "stage" not in r):
    g = (r["dataset"], set_label(r), r["step"], r["checkpoint"], r["convention"],
         r["self_ensemble"], r["tile"], r.get("tile_overlap"), r.get("eval_seed"))
    groups.setdefault(g, []).append(r)
  parts = []
  for (dataset, label, step, which, conv, ens, tile, overlap, seed), members in groups.items():
    extras = (", self-ensemble x8" if ens else "")
    extras += f", tiles {tile}px (overlap {overlap})" if tile else ""
    extras += f", eval seed {seed}" if seed is not None else ""
    parts.append(f"### {label} (`{dataset}`): checkpoint step {step} ({which}), convention "
                 f"`{conv}`{extras}\n")
    parts.append("| level | images | loss | input PSNR | PSNR | input SSIM | SSIM | corruption |")
    parts.append("|---|---:|---:|---:|---:|---:|---:|---|")
    for r in members:
      parts.append(f"| {r['corruption']} | {r['n_images']} | {_fmt(r['loss'], 5)} | "
                   f"{_fmt(r['input_psnr'], 2)} | {_fmt(r['psnr'], 2)} | "
                   f"{_fmt(r['input_ssim'], 4)} | {_fmt(r['ssim'], 4)} | "
                   f"{_specs_text(r.get('specs'))} |")
    parts.append("")
  if staged:
    parts.append(pipeline_markdown(staged))
  return "\n".join(parts)


def pipeline_markdown(rows: Sequence[dict]) -> str:
  """One table per (dataset, convention, self_ensemble, tile, tile_overlap, eval_seed, damage
  specs): a row per stage with its protocol, metrics ('-' where a stage has none) and runs."""
  groups: dict[str, list[dict]] = {}
  for r in rows:
    g = [r["dataset"], r["convention"], r["self_ensemble"], r["tile"], r.get("tile_overlap"),
         r.get("eval_seed"), r.get("specs")]
    groups.setdefault(json.dumps(run_log.plain(g), sort_keys=True), []).append(r)
  parts = []
  for members in groups.values():
    r0 = members[0]
    extras = (", self-ensemble x8" if r0["self_ensemble"] else "")
    extras += f", tiles {r0['tile']}px (overlap {r0.get('tile_overlap')})" if r0["tile"] else ""
    parts.append(f"### {set_label(r0)} (`{r0['dataset']}`): chained restore, convention "
                 f"`{r0['convention']}`{extras}, eval seed {r0.get('eval_seed')}\n")
    parts.append(f"Damage: {_specs_text(r0.get('specs'))}\n")
    parts.append("| stage | images | input PSNR | PSNR | input SSIM | SSIM | IoU | F1 | "
                 "precision | recall | protocol | runs |")
    parts.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for r in members:
      cells = [_fmt(r[k], d) if k in r else "-" for k, d in PIPELINE_METRICS]
      runs = "; ".join(f"{w['workdir']} ({w['checkpoint']} {w['step']})"
                       for w in (r.get("runs") or {}).values())
      parts.append(f"| {r['stage']} | {r['n_images']} | {' | '.join(cells)} | "
                   f"{r.get('protocol', '')} | {runs} |".replace("\n", " "))
    parts.append("")
  return "\n".join(parts)


def write_text(path: str, text: str) -> None:
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.write(text)
  os.replace(tmp, path)


def write_per_image(path: str, result: evaluator.EvalResult) -> None:
  with open(path, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(("name",) + PER_IMAGE_FIELDS)
    for j, name in enumerate(result.names):
      w.writerow([name] + [repr(float(result.per_image[k][j])) for k in PER_IMAGE_FIELDS])


