"""Aggregates a sweep's runs: <sweep dir>/results.md, results.json and psnr.png.

  python -m restoration.sweeps.report runs/X      (also the last step of --mode=sweep)

Reads <sweep dir>/sweep.json (written by restoration.modes.sweep) and, for every run
<variant>/seed<k>: config.json (the training config; the sweep's `eval` overrides are applied
to it to know what eval mode evaluated), eval/results.json and the per-image CSVs of eval mode,
metrics.jsonl and wall_time.jsonl. Runs without eval results are listed as missing.

Per variant and eval level, over seeds (one value per seed: that run's mean over the eval
images): mean, sample std (ddof=1) and the 95% confidence interval of the mean,
mean +- t_{0.975, n-1} * std / sqrt(n) (Student t, scipy.stats), given from 3 seeds on (null,
'n<3' in the table, below; one seed has no std either) and, for SSIM, clipped to [0, 1]. The
table also gives the corrupted input's PSNR, and the eval images ('BSD68: 4 of 68 images, 64
px crops'). Also, per variant: params of the inference model (from
jax.eval_shape of its init; a GAN's generator), GFLOPs of restoring one eval image (XLA cost
analysis of the compiled float32 forward pass; a multiply-add is 2 FLOPs; the image is
data.eval_crop px square, or patch_size when eval images are whole; a PixelCNN's decode is
H * W * C passes, see model_cost), steps/s (per run: the median of the train events' steps_per_sec in
metrics.jsonl, robust to the compile-time first interval; then the mean over seeds) and wall
time (per run: the sum of wall_time.jsonl's stages; then the mean over seeds).

Paired comparison with the reference variant, per level: for each seed k that both ran, read
the per-image PSNR of variant/seed<k> and reference/seed<k> (same eval images and the same
corrupted inputs: eval.seed is shared), d_k = mean over images of (PSNR_variant - PSNR_ref);
then mean, std and t-CI of d_k over seeds as above. `better` is the fraction of all
(seed, image) pairs where the variant's PSNR is higher; `reading` says it in words (better /
worse when the CI excludes 0, no detectable difference when it includes 0, no finding below 3
seeds). psnr.png: x = the variants (how each was trained), one marker per eval level.

The eval rows used are those matching the eval config's dataset, level, specs, eval seed,
convention, self-ensemble and tile; among several (re-evaluations), the highest checkpoint
step. Output is deterministic: sorted keys, floats rounded to 6 decimals, no timestamps, so
aggregating twice gives byte-identical files.
"""

import csv
import functools
import json
import math
import os
import sys
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy import stats

from restoration.eval import results
from restoration.eval import evaluator
from restoration import tasks
from restoration.sweeps import spec
from restoration.eval import visualize
from restoration.tasks import autoregressive as autoregressive_task

CONFIDENCE = 0.95
# Fewer seeds give no interval: with 2, t_{0.975,1} = 12.7 makes it wider than any real effect
# (an SSIM interval of [-0.38, 1.84]); the table says 'n<3' instead.
MIN_CI_SEEDS = 3


def mean_ci(values: Sequence[float], *, bounds: tuple[float, float] | None = None) -> dict:
  """{'n', 'mean', 'std' (ddof=1), 'ci95': [lo, hi]} of `values` (Student t over n - 1 dof).

  'ci95' is None below MIN_CI_SEEDS values; `bounds` (e.g. (0, 1) for SSIM) clip it to the
  values the quantity can take."""
  x = np.asarray(values, np.float64)
  n = int(x.size)
  if n == 0:
    return {"n": 0, "mean": None, "std": None, "ci95": None}
  mean = float(x.mean())
  if n < 2:
    return {"n": 1, "mean": mean, "std": None, "ci95": None}
  std = float(x.std(ddof=1))
  if n < MIN_CI_SEEDS:
    return {"n": n, "mean": mean, "std": std, "ci95": None}
  half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1)) * std / math.sqrt(n)
  lo, hi = mean - half, mean + half
  if bounds is not None:
    lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
  return {"n": n, "mean": mean, "std": std, "ci95": [lo, hi]}


def reading(d: dict, variant: str, reference: str) -> str:
  """The paired comparison in words: which way, and whether the interval excludes 0."""
  if d["mean"] is None:
    return "no common seeds"
  way = "above" if d["mean"] > 0 else "below"
  said = f"{variant} {abs(d['mean']):.3f} dB {way} {reference}"
  if d["ci95"] is None:
    return f"{said} (n<3 seeds: no interval, not a finding)"
  lo, hi = d["ci95"]
  if lo > 0 or hi < 0:
    return f"{said}: {variant} {'better' if lo > 0 else 'worse'} (95% CI excludes 0)"
  return f"{said}: no detectable difference (95% CI includes 0)"


def eval_config(rundir: str, eval_overrides: dict) -> ml_collections.ConfigDict:
  """The config eval mode ran with: the run's config.json plus the sweep's eval overrides."""
  with open(os.path.join(rundir, "config.json")) as f:
    config = ml_collections.ConfigDict(json.load(f))
  spec.apply_overrides(config, eval_overrides, where=f"{rundir} eval overrides")
  return config


def eval_files(rundir: str, config: ml_collections.ConfigDict) -> dict | None:
  """Level -> (results.json row, per-image CSV path) for every eval level, or None if any is
  missing (the run is not evaluated with this eval config)."""
  results_path = os.path.join(rundir, "eval", "results.json")
  if not os.path.exists(results_path):
    return None
  rows = results.read_results(results_path)
  dataset, conv = str(config.data.eval), evaluator.EvalOptions.from_config(config).convention
  ensemble, tile = bool(config.eval.self_ensemble), max(int(config.eval.tile), 0)
  out = {}
  for level, specs in results.sweep_levels(config).items():
    match = [r for r in rows
             if r.get("dataset") == dataset and r.get("corruption") == level
             and r.get("eval_seed") == int(config.eval.seed) and r.get("convention") == conv
             and r.get("self_ensemble") == ensemble and r.get("tile") == tile
             and json.dumps(r.get("specs"), sort_keys=True) == json.dumps(specs, sort_keys=True)]
    if not match:
      return None
    row = max(match, key=lambda r: r["step"])
    name = (f"{results.slug(dataset)}_{results.slug(level)}_"
            f"{results.file_tag(row['step'], conv, ensemble, tile)}")
    path = os.path.join(rundir, "eval", f"per_image_{name}.csv")
    if not os.path.exists(path):
      return None
    out[level] = (row, path)
  return out


def read_per_image_psnr(path: str) -> dict[str, float]:
  with open(path, newline="") as f:
    return {r["name"]: float(r["psnr"]) for r in csv.DictReader(f)}


def model_cost(config: ml_collections.ConfigDict) -> tuple[int, float]:
  """(parameter count, GFLOPs of restoring one eval-sized image) of the inference model.

  A restorer (a GAN's generator: the discriminator only trains) restores in one eval-mode
  forward pass. A PixelCNN (task 'autoregressive') decodes with H * W * C passes of the
  network, one per sub-pixel: XLA's cost of one pass times that count (XLA's cost analysis
  would count the decode loop's body once).
  """
  side = int(config.data.eval_crop) or int(config.patch_size)
  channels = int(config.data.channels)
  x = jax.ShapeDtypeStruct((1, side, side, channels), jnp.float32)
  if config.get("task", "supervised") == "autoregressive":
    model = autoregressive_task.build_model(config.model)
    inputs, passes = (jax.ShapeDtypeStruct(x.shape, jnp.uint8), x), side * side * channels
  else:
    model, inputs, passes = tasks.build_restorer(config.model), (x,), 1
  variables = jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0),
                             *inputs)
  params = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(variables["params"]))
  cost = jax.jit(lambda v, *a: model.apply(v, *a, train=False)).lower(
      variables, *inputs).compile().cost_analysis()
  if isinstance(cost, (list, tuple)):  # one dict per computation in some jax versions
    cost = cost[0] if cost else {}
  return params, passes * float(cost.get("flops", float("nan"))) / 1e9


def _steps_per_sec(rundir: str) -> float | None:
  path = os.path.join(rundir, "metrics.jsonl")
  if not os.path.exists(path):
    return None
  sps = [e["steps_per_sec"] for e in visualize.read_metrics(path)
         if e.get("kind") == "train" and isinstance(e.get("steps_per_sec"), (int, float))]
  return float(np.median(sps)) if sps else None


def _wall_seconds(rundir: str) -> float | None:
  path = os.path.join(rundir, "wall_time.jsonl")
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return float(sum(json.loads(line)["seconds"] for line in f if line.strip()))


def _mean_of(values: list) -> float | None:
  values = [v for v in values if v is not None]
  return float(np.mean(values)) if values else None


def _paired(var_files: dict, ref_files: dict, level: str) -> dict:
  diffs, better, total, n_images = [], 0, 0, None
  for seed in sorted(set(var_files) & set(ref_files)):
    a_path, b_path = var_files[seed][level][1], ref_files[seed][level][1]
    a, b = read_per_image_psnr(a_path), read_per_image_psnr(b_path)
    if set(a) != set(b):
      raise ValueError(f"paired comparison: {a_path} and {b_path} hold different images")
    d = np.array([a[k] - b[k] for k in sorted(a)], np.float64)
    diffs.append(float(d.mean()))
    better += int((d > 0).sum())
    total += d.size
    n_images = d.size
  out = mean_ci(diffs)
  out.update(per_seed=diffs, images=n_images, better=better / total if total else None)
  return out


def summarize(workdir: str) -> dict:
  """Everything results.json holds (see the module docstring)."""
  with open(os.path.join(workdir, "sweep.json")) as f:
    sweep = json.load(f)
  order = spec.variant_order(sweep)
  files, missing, variants = {}, [], {}
  for v in order:
    files[v] = {}
    configs = {}
    for seed in sweep["seeds"]:
      rundir = os.path.join(workdir, spec.run_dir(v, seed))
      found = None
      if os.path.exists(os.path.join(rundir, "config.json")):
        configs[seed] = eval_config(rundir, sweep["eval"])
        found = eval_files(rundir, configs[seed])
      if found is None:
        missing.append(spec.run_dir(v, seed))
      else:
        files[v][seed] = found
    seeds = sorted(files[v])
    entry = {"seeds": seeds, "levels": {}, "params": None, "gflops_per_image": None}
    if seeds:
      entry["params"], entry["gflops_per_image"] = model_cost(configs[seeds[0]])
      for level in files[v][seeds[0]]:
        rows = [files[v][s][level][0] for s in seeds]
        entry["levels"][level] = {
            "psnr": {**mean_ci([r["psnr"] for r in rows]), "per_seed": [r["psnr"] for r in rows]},
            "ssim": {**mean_ci([r["ssim"] for r in rows], bounds=(0.0, 1.0)),
                     "per_seed": [r["ssim"] for r in rows]},
            "input_psnr": rows[0]["input_psnr"], "n_images": rows[0]["n_images"],
            "set": results.set_label(rows[0])}
      runs = [os.path.join(workdir, spec.run_dir(v, s)) for s in seeds]
      entry["steps_per_sec"] = _mean_of([_steps_per_sec(r) for r in runs])
      entry["wall_seconds"] = _mean_of([_wall_seconds(r) for r in runs])
      ref = sweep["reference"]
      if v != ref and files[ref]:
        entry["paired_vs_reference"] = {level: _paired(files[v], files[ref], level)
                                        for level in entry["levels"]}
    variants[v] = entry
  return {"name": sweep["name"], "description": sweep["description"],
          "reference": sweep["reference"], "seeds": sweep["seeds"], "order": order,
          "missing": missing, "variants": variants, "confidence": CONFIDENCE}


def _rounded(x):
  if isinstance(x, float):
    return round(x, 6) if math.isfinite(x) else None
  if isinstance(x, dict):
    return {k: _rounded(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_rounded(v) for v in x]
  return x


def _f(x, digits: int) -> str:
  return "-" if x is None else f"{x:.{digits}f}"


def _ci(s: dict, digits: int) -> str:
  if s["ci95"] is None:
    return "n<3" if s["n"] else "-"
  return f"[{s['ci95'][0]:.{digits}f}, {s['ci95'][1]:.{digits}f}]"


def markdown(summary: dict) -> str:
  s, ref = summary, summary["reference"]
  out = [f"# Sweep `{s['name']}`", "", s["description"], "",
         f"Seeds: {', '.join(map(str, s['seeds']))}. Mean +- std over seeds; 95% CI of the mean "
         f"(Student t; none with fewer than {MIN_CI_SEEDS} seeds: 'n<3'; SSIM's clipped to "
         "[0, 1]). Input PSNR: the corrupted input's, the same for every variant. GFLOPs: "
         "restoring one eval image (one forward pass; a PixelCNN's decode: one pass per "
         "sub-pixel).", ""]
  if s["missing"]:
    out += [f"Missing (not evaluated yet): {', '.join(s['missing'])}", ""]
  sets = sorted({m.get("set") or "-" for e in s["variants"].values()
                 for m in e["levels"].values()})
  if sets:
    out += [f"Eval images: {'; '.join(sets)}.", ""]
  out += ["| variant | level | seeds | input PSNR | PSNR | PSNR 95% CI | SSIM | SSIM 95% CI | "
          "params | GFLOPs | steps/s | wall (s) |",
          "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
  for v in s["order"]:
    e = s["variants"][v]
    for level in sorted(e["levels"], key=spec.natural_key):
      m = e["levels"][level]
      p, q = m["psnr"], m["ssim"]
      out.append(
          f"| {v} | {level} | {p['n']} | {_f(m.get('input_psnr'), 2)} | "
          f"{_f(p['mean'], 2)} +- {_f(p['std'], 2)} | "
          f"{_ci(p, 2)} | {_f(q['mean'], 4)} +- {_f(q['std'], 4)} | {_ci(q, 4)} | "
          f"{e['params']:,} | {_f(e['gflops_per_image'], 3)} | {_f(e['steps_per_sec'], 1)} | "
          f"{_f(e['wall_seconds'], 0)} |")
  out += ["", f"## Paired PSNR difference vs `{ref}` (dB; same eval images, per seed)", "",
          "| variant | level | seeds | images | mean dPSNR +- std | 95% CI | images better | "
          "reading |",
          "|---|---|---:|---:|---:|---:|---:|---|"]
  for v in s["order"]:
    paired = s["variants"][v].get("paired_vs_reference", {})
    for level in sorted(paired, key=spec.natural_key):
      d = paired[level]
      better = "-" if d["better"] is None else f"{100 * d['better']:.0f}%"
      out.append(f"| {v} | {level} | {d['n']} | {d['images'] or '-'} | "
                 f"{_f(d['mean'], 3)} +- {_f(d['std'], 3)} | {_ci(d, 3)} | {better} | "
                 f"{reading(d, v, ref)} |")
  return "\n".join(out) + "\n"


def plot(summary: dict, path: str) -> Figure:
  """PSNR per variant, one series per level; error bars: 95% CI (none with one seed)."""
  fig = Figure(figsize=visualize.FIGSIZE, dpi=visualize.DPI)
  FigureCanvasAgg(fig)
  ax = fig.add_subplot()
  order = summary["order"]
  levels = sorted({lv for v in order for lv in summary["variants"][v]["levels"]},
                  key=spec.natural_key)
  width = 0.6 / max(len(levels), 1)
  for j, level in enumerate(levels):
    xs, ys, errs = [], [], []
    for i, v in enumerate(order):
      m = summary["variants"][v]["levels"].get(level)
      if m is None or m["psnr"]["mean"] is None:
        continue
      p = m["psnr"]
      xs.append(i + (j - (len(levels) - 1) / 2) * width)
      ys.append(p["mean"])
      errs.append(0.0 if p["ci95"] is None else p["ci95"][1] - p["mean"])
    ax.errorbar(xs, ys, yerr=errs, fmt="o", capsize=3, label=f"evaluated at {level}")
  ax.set_xticks(range(len(order)), [f"trained: {v}" for v in order])
  ax.set_xlabel("variant (what the model was trained with)")
  ax.set_ylabel("PSNR (dB), mean over seeds; bars: 95% CI (n>=3)")
  ax.set_title(f"sweep {summary['name']}")
  ax.grid(True, alpha=0.3)
  ax.legend(fontsize="small", title="eval level", title_fontsize="small")
  fig.tight_layout()
  fig.savefig(path, metadata={"Software": None})
  return fig


def aggregate(workdir: str) -> str:
  """Writes results.json, results.md and psnr.png into `workdir`; returns results.md's path."""
  summary = _rounded(summarize(workdir))
  with open(os.path.join(workdir, "results.json"), "w") as f:
    f.write(json.dumps(summary, indent=2, sort_keys=True) + "\n")
  path = os.path.join(workdir, "results.md")
  with open(path, "w") as f:
    f.write(markdown(summary))
  plot(summary, os.path.join(workdir, "psnr.png"))
  return path


if __name__ == "__main__":
  if len(sys.argv) != 2:
    raise SystemExit("usage: python -m restoration.sweeps.report <sweep workdir>")
  print(aggregate(sys.argv[1]))
