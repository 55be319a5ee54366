"""`launch.py --mode=eval`: evaluate a trained checkpoint over a corruption sweep.

  python launch.py --mode=eval --workdir=runs/dncnn \\
    --config.data.eval=folder:../shared/data/denoise/test/BSD68 [--step=N]

Without --config the run's own config.json is used, the --config.* overrides on top; with
--config the run's stored metric protocol is kept unless overridden (restoration.run_config).

The model (model.name, model.kwargs) and data.channels always come from the checkpoint's meta
(`trained_run.load_run`, `trained_run.with_trained_model`; a warning names every field the --config
disagreed on), so a `:quick` run can be evaluated with the full config file; model.dtype and
every eval field come from --config. Loads the best checkpoint (or `--step`: the latest
manager's checkpoint at that step, else the best one's), evaluates `config.data.eval` at every level of `config.eval.sweep`
(name -> chain specs; empty: the training corruption, named 'train') and writes, from
process 0 only:

  eval/results.json     a JSON list of rows. Row fields: dataset, corruption, n_images,
                        set (e.g. 'BSD68'), set_size (images in the whole set), eval_crop
                        (data.eval_crop; 0: whole images), input_psnr, psnr, input_ssim, ssim, loss, convention, step, checkpoint
                        ('best'|'latest'), self_ensemble, tile, tile_overlap, eval_seed, specs,
                        then the task's other metrics (mask runs: iou, f1, precision, recall).
                        Non-finite values are null. Rows accumulate over runs: a re-run with the
                        same key (`results.ROW_KEY`: dataset, level, n_images, eval_crop,
                        convention, step,
                        self_ensemble, tile, tile_overlap, eval_seed and the level's specs,
                        compared as canonical JSON; the chained pipeline's rows also stage
                        and runs) replaces its rows, other rows are kept.
  eval/results.md       every row as markdown tables, one per (dataset, images, crop,
                        checkpoint step, convention, self_ensemble, tile, tile_overlap,
                        eval_seed), each headed by what it measured, e.g. 'BSD68: 4 of 68
                        images, 64 px crops' (whole sets: 'BSD68: 68 images').
  eval/per_image_<dataset>_<level>_<tag>.csv   name, psnr, ssim, input_psnr, input_ssim of
                        the latest run with that file name
                        (<dataset> is the spec sanitised to [A-Za-z0-9_-]; <tag> is
                        `step<N>`, then `_<convention>` unless 'rgb', `_x8` with
                        self-ensemble, `_tile<T>` when tiled; see `results.file_tag`).
  images/eval_<dataset>_<level>_<tag>.png   clean | corrupted | restored grid (PSNR under each
                        image); skipped when eval.num_grid_images is 0.
  plots/                regenerated from metrics.jsonl when the workdir has one.

With `config.eval.tile > 0` every image goes through the host-driven tiled path
(`Evaluator.evaluate_tiled`): same corruption keys, same metrics, the model compiled once for
the tile shape. Otherwise the pmapped eval step of training is used, with the variables placed
on the devices once for all levels.

With config.pipeline.mask set (configs/pipeline.py) the three stages of the chained restore,
the chain end to end and a one-model baseline are evaluated instead: restoration.modes.chained_eval.
"""

import json
import os
from collections.abc import Sequence

import jax
import ml_collections
from absl import logging

from restoration.modes import chained
from restoration.modes import chained_eval
from restoration.runtime import trained_run
from restoration import data
from restoration.eval import results
from restoration.eval import evaluator
from restoration.runtime import parallel
from restoration import tasks
from restoration.eval import visualize



# ------------------------------------------------------------------------------ the run

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


# ----------------------------------------------------------------------------------- run

def run(config: ml_collections.ConfigDict, workdir: str, *, step: int | None = None,
        devices: Sequence[jax.Device] | None = None) -> list[dict]:
  """Evaluates a checkpoint of `workdir` over the sweep; writes eval/; returns this run's rows.

  One function on purpose: checks, then the levels, then the files, in the order a user reads.
  With config.pipeline.mask set, the chained pipeline is evaluated instead (`chained_eval`).
  """
  if chained.enabled(config):  # mask -> colourise -> inpaint of three runs, and a baseline
    return chained_eval.run(config, workdir, step=step)
  if devices is None:
    devices = _devices(config.data.eval_batch_size)
  # Bad eval fields fail before anything is read.
  options = evaluator.EvalOptions.from_config(config, parallel.local_device_count(devices))
  trained = trained_run.load_run(workdir, step=step, config=config)
  config = trained_run.with_trained_model(config, trained.meta, workdir)
  inference = tasks.inference_for(trained.meta, config, options=options)
  levels = results.sweep_levels(config)
  lead = jax.process_index() == 0
  eval_dir = os.path.join(workdir, "eval")
  results_path = os.path.join(eval_dir, "results.json")
  # A broken results file fails before the work.
  old_rows = results.read_results(results_path) if lead else []
  images = data.load_eval_images(config)
  ev = evaluator.Evaluator(inference, images, devices=devices)
  o = inference.options
  dataset = str(config.data.eval)
  tag = results.file_tag(trained.step, o.convention, o.self_ensemble, o.tile)
  logging.info("eval: %s checkpoint step %d on %s (%s), levels %s, convention %s%s",
               trained.which, trained.step, dataset, images.label, list(levels),
               o.convention, f", tiles {o.tile}" if o.tile > 0 else "")
  # Placed on the devices once for every level and batch (host arrays would be re-sent).
  placed = (None if o.tile > 0 else
            parallel.to_devices(parallel.replicate(trained.variables, devices), devices))
  rows = []
  for level, specs in levels.items():
    bar = f"eval {level}"
    if o.tile > 0:
      result = ev.evaluate_tiled(trained.variables, specs, progress=bar)
    else:
      result = ev.evaluate(placed, specs, progress=bar)
    row = {"dataset": dataset, "corruption": level, "n_images": result.n_images,
           **images.row_fields, **{k: results.finite(v) for k, v in result.means.items()},
           "step": trained.step, "checkpoint": trained.which, **o.row_fields, "specs": specs}
    # Task-specific means (e.g. a mask run's iou, f1, precision, recall) follow the fields.
    rows.append({**{k: row.get(k) for k in results.RESULT_FIELDS},
                 **{k: row[k] for k in sorted(result.means)
                    if k not in results.RESULT_FIELDS}})
    logging.info("eval %s on %s: psnr %.3f (input %.3f), ssim %.4f (input %.4f)", level,
                 images.label, result.means["psnr"], result.means["input_psnr"],
                 result.means["ssim"], result.means["input_ssim"])
    if lead:
      name = f"{results.slug(dataset)}_{results.slug(level)}_{tag}"
      os.makedirs(eval_dir, exist_ok=True)
      results.write_per_image(os.path.join(eval_dir, f"per_image_{name}.csv"), result)
      grid = result.grid_arrays(o.num_grid_images)
      if grid is not None:
        visualize.save_grid(os.path.join(workdir, "images", f"eval_{name}.png"), **grid)
  table = results.markdown(rows)
  if lead:
    all_rows = results.merge_rows(old_rows, rows)
    results.write_text(results_path, json.dumps(all_rows, indent=2) + "\n")
    results.write_text(os.path.join(eval_dir, "results.md"),
                            "# Evaluation results\n\n" + results.markdown(all_rows))
    metrics_path = os.path.join(workdir, "metrics.jsonl")
    if os.path.exists(metrics_path):
      visualize.plot_curves(metrics_path, os.path.join(workdir, "plots"))
    print(table, flush=True)
    logging.info("eval results written to %s", eval_dir)
  return rows
