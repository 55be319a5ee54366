"""`--mode=eval` of the chained restore: each stage, the chain end to end, a one-model baseline.

  python launch.py --mode=eval --config=configs/pipeline.py --workdir=runs/pipeline \\
    [--config.data.eval=folder:../shared/data/denoise/test/CBSD68]

`evaluate.run` (eval mode) comes here when `config.pipeline.mask` is set. The stages are loaded
as chained restore loads them (`chained.load_stages`, best checkpoints) and run the same way
(`chained.run_stage`, `chained.restore_chain`: eval.tile / tile_overlap / self_ensemble).

Damage, as every eval keyed by (eval.seed, image index): each clean colour image x of
config.data.eval (data.eval_crop / eval_max_images apply) -> its BT.601 luma g -> the MASK
run's own config.corruption (read from its config.json, so the damage is the kind that stage
was trained to find) -> the damaged gray photo d and the true damage mask m. The chain is
`damage_specs(mask run)`: [grayscale(keep_channels=False)] + that corruption; the
single-model baseline (configs/damaged_gray.py) trains on the same chain with the gray kept
in 3 channels. Rows ('stage'), PSNR/SSIM against x with config.eval's convention, outputs
clipped to [0, 1], `loss` = config.loss of the output:

  mask        d -> predicted mask (probability > pipeline.threshold) vs m: iou, f1,
              precision, recall (a zero denominator counts 1, as in the mask task's eval)
  colorize    the UNDAMAGED gray g (as RGB) -> colour; input = g: colourisation alone, the
              damage being the other stages' job
  inpaint     x with the TRUE holes zeroed, plus m -> filled; input = x with holes: the
              inpainting stage's upper bound (true mask, true colours)
  end_to_end  restore_chain(d); input = d (as RGB): what a user gets
  single      the run of pipeline.single on d (as RGB); input = d. Skipped when ''

Written from process 0 (the others return []): <workdir>/eval/results.json (rows with
eval mode's fields, step/checkpoint null, plus stage, protocol and runs: each stage's
workdir, checkpoint and step; a re-run with the same key replaces its rows, see
`results.ROW_KEY`), eval/results.md (`results.pipeline_markdown`) and
images/eval_<dataset>_pipeline_{end_to_end,single}.png (clean | damaged gray | restored).
"""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from restoration.modes import chained
from restoration import corruptions
from restoration import data
from restoration.eval import results
from restoration.eval import evaluator
from restoration import image_ops
from restoration import losses
from restoration.runtime import run_log
from restoration.eval import visualize
from restoration.tasks import inpaint
from restoration.tasks import mask as mask_task

PROTOCOLS = {
    "mask": "damaged gray -> mask (probability > threshold) vs the true damage mask",
    "colorize": "undamaged gray -> colour vs clean; input: the gray photo",
    "inpaint": "clean with the true holes + true mask -> filled vs clean; input: with holes",
    "end_to_end": "damaged gray -> mask -> colourise -> inpaint vs clean; input: damaged gray",
    "single": "damaged gray -> one model vs clean; input: damaged gray",
}
_GRID = {"end_to_end": "pipeline", "single": "single model"}  # stage -> grid column title


def damage_specs(mask_config: ml_collections.ConfigDict) -> list[dict]:
  """The damage chain of the eval: gray first, then the mask run's own corruption."""
  return ([{"name": "grayscale", "keep_channels": False}]
          + run_log.plain(list(mask_config.corruption)))


def baseline_specs(specs: list[dict]) -> list[dict]:
  """The same damage for a one-model baseline restoring RGB (configs/damaged_gray.py): the
  gray kept in 3 channels, noise blocks gray ('gray_noise' draws what 'noise' draws on 1)."""
  out = [{"name": "grayscale", "keep_channels": True}]
  return out + [dict(s, fill="gray_noise") if s.get("fill") == "noise" else s for s in specs[1:]]


def synthesise(specs: list[dict], seed: int):
  """`(uint8 HWC image, index) -> (clean RGB, damaged gray, true mask)`, float [H, W, C];
  image i's damage keyed by (seed, i) as in every eval (`corruptions.per_example`)."""
  corrupt = corruptions.chain(specs)

  @jax.jit
  def one(image, index):
    clean = image[None].astype(jnp.float32) / 255.0
    damaged, mask = corruptions.per_example(corrupt, jax.random.key(seed), clean, index[None])
    return clean[0], damaged[0], mask[0]

  return lambda image, index: tuple(map(np.asarray, one(image, jnp.int32(index))))


def _check(config: ml_collections.ConfigDict, step: int | None) -> None:
  if step is not None:
    raise ValueError("--step does not apply to the chained pipeline's eval: each stage's best "
                     "checkpoint is used (point config.pipeline.<stage> at another workdir)")
  if config.data.channels != 3:
    raise ValueError(f"config.data.channels={config.data.channels}: the chained pipeline is "
                     "evaluated on colour images (data.channels=3), made gray and damaged here")


def run(config: ml_collections.ConfigDict, workdir: str, *, step: int | None = None
        ) -> list[dict]:
  """Evaluates the three stages of config.pipeline (and pipeline.single); writes eval/."""
  _check(config, step)
  stages = chained.load_stages(config)  # checks the threshold and the eval fields first
  options = stages["mask"].inference.options
  if config.pipeline.single:
    stages["single"] = chained.load_stage(config, "single", ("supervised",), options)
    trained_on = run_log.plain(list(stages["single"].config.corruption))
  specs = damage_specs(stages["mask"].config)
  if "single" in stages and trained_on != baseline_specs(specs):
    logging.warning("config.pipeline.single=%r trained on config.corruption=%s, not on this "
                    "eval's damage %s: its row compares unlike training distributions",
                    stages["single"].workdir, trained_on, baseline_specs(specs))
  if jax.process_index() != 0:  # host-side work, one image at a time, as chained restore
    return []
  eval_dir = os.path.join(workdir, "eval")
  results_path = os.path.join(eval_dir, "results.json")
  old_rows = results.read_results(results_path)  # a broken file fails before the work
  images = data.load_eval_images(config)
  if not images:
    raise ValueError(f"config.data.eval={config.data.eval!r} has no images")
  threshold = float(config.pipeline.threshold)
  per_image, grids = _measure_images(stages, images, synthesise(specs, options.seed),
                                     threshold, losses.make_loss(dict(config.loss)), options)
  runs = {name: {"workdir": s.workdir, "checkpoint": s.which, "step": s.step}
          for name, s in stages.items()}
  dataset = str(config.data.eval)
  rows = []
  for stage, values in per_image.items():
    if not values:
      continue
    used = {"end_to_end": [n for n, _ in chained.STAGES]}.get(stage, [stage])
    means = {k: results.finite(np.mean([v[k] for v in values])) for k in sorted(values[0])}
    rows.append({"dataset": dataset, "corruption": "damaged_gray", "stage": stage,
                 "protocol": PROTOCOLS[stage], "n_images": len(values),
                 **images.row_fields, **means,
                 "step": None, "checkpoint": None, **options.row_fields,
                 "specs": specs, "threshold": threshold,
                 "runs": {n: runs[n] for n in used}})
    logging.info("pipeline eval %s: %s", stage, ", ".join(
        f"{k} {v:.4f}" for k, v in means.items() if v is not None))
  os.makedirs(eval_dir, exist_ok=True)
  all_rows = results.merge_rows(old_rows, rows)
  results.write_text(results_path, json.dumps(all_rows, indent=2) + "\n")
  results.write_text(os.path.join(eval_dir, "results.md"),
                          "# Evaluation results\n\n" + results.markdown(all_rows))
  _save_grids(grids, os.path.join(workdir, "images"), results.slug(dataset))
  print(results.pipeline_markdown(rows), flush=True)
  logging.info("pipeline eval results written to %s", eval_dir)
  return rows


def _measure_images(stages: dict[str, chained.Stage], images, synth, threshold: float,
                    loss_fn, options: evaluator.EvalOptions) -> tuple[dict, dict]:
  """Per-image metrics of every stage ({stage: [dict per image]}) and the grids' images."""

  def measure(output, model_input, clean):
    values = evaluator.restoration_metrics(
        output[None], image_ops.to_channels(model_input, 3)[None], clean[None],
        loss_fn=loss_fn, options=options.metric_options,
        ssim_convention=options.ssim_convention)
    return {k: float(v[0]) for k, v in values.items()}

  per_image: dict[str, list[dict]] = {name: [] for name in PROTOCOLS}
  grids: dict[str, list] = {name: [] for name in _GRID}
  for i, (_, image) in enumerate(images):
    clean, damaged, true_mask = synth(image, i)
    restored, predicted = chained.restore_chain(stages, damaged, threshold)
    per_image["mask"].append({k: float(v[0]) for k, v in mask_task.mask_scores(
        jnp.asarray(predicted)[None] - 0.5, jnp.asarray(true_mask)[None]).items()})
    gray = image_ops.to_channels(clean, 1)
    colour = chained.run_stage(stages["colorize"], image_ops.to_channels(gray, 3))
    per_image["colorize"].append(measure(colour, gray, clean))
    holes = clean * (1.0 - true_mask)
    filled = chained.run_stage(stages["inpaint"],
                               np.asarray(inpaint.with_mask(holes, true_mask)))
    per_image["inpaint"].append(measure(filled, holes, clean))
    outputs = {"end_to_end": restored}
    if "single" in stages:
      outputs["single"] = chained.run_stage(stages["single"], image_ops.to_channels(damaged, 3))
    for stage, out in outputs.items():
      per_image[stage].append(measure(out, damaged, clean))
      if len(grids[stage]) < options.num_grid_images:
        grids[stage].append((clean, damaged, np.clip(out, 0.0, 1.0),
                             per_image[stage][-1]["input_psnr"], per_image[stage][-1]["psnr"]))
  return per_image, grids


def _save_grids(grids: dict[str, list], out_dir: str, dataset: str) -> None:
  """clean | damaged gray | restored for the kept images of the first one's shape."""
  for stage, kept in grids.items():
    kept = [g for g in kept if g[0].shape == kept[0][0].shape]
    if not kept:
      continue
    clean, damaged, restored, pin, pout = zip(*kept)
    visualize.save_grid(os.path.join(out_dir, f"eval_{dataset}_pipeline_{stage}.png"),
                        np.stack(clean), np.stack(damaged), np.stack(restored),
                        psnr_corrupted=list(pin), psnr_restored=list(pout),
                        titles=("clean", "damaged gray", _GRID[stage]))
