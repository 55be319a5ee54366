"""Chained restore of damaged gray photos: damage mask -> colourisation -> inpainting.

  python launch.py --mode=restore --config=configs/pipeline.py --workdir=runs/pipeline \\
    --config.pipeline.mask=runs/mask --config.pipeline.colorize=runs/colorize \\
    --config.pipeline.inpaint=runs/inpaint --input='old_photos/*.png' --output=restored/

`restore.run` comes here when `config.pipeline.mask` is set. Each stage is a trained workdir
(best checkpoint, rebuilt from its own config.json and meta, like eval mode):

  1. mask      (task 'mask')       the photo's luma (gray) -> damage probability; damaged
                                   where probability > config.pipeline.threshold
  2. colorize  (a restorer)        the gray photo at the colourisation run's channels -> RGB
  3. inpaint   (task 'inpaint'     the colour image with the damaged pixels zeroed plus the
               or 'inpaint_        mask channel -> the filled image (undamaged pixels kept)
               adversarial')

Outputs are RGB (a gray input becomes an RGB file) at the input's bit depth; with
`config.pipeline.save_masks` the mask is also written as `<name>_mask.png`. Every stage uses
config.eval.tile / tile_overlap / self_ensemble through `any_size.apply`. `--mode=eval` with
the same config measures each stage and the chain (restoration.modes.chained_eval).
"""

from __future__ import annotations

import dataclasses
import os
import time

import jax
import ml_collections
import numpy as np
import tqdm
from absl import logging

from restoration import any_size
from restoration.runtime import trained_run
from restoration.eval import evaluator
from restoration.image_files import reading
from restoration.image_files import writing
from restoration import image_ops
from restoration import tasks
from restoration.tasks import inpaint

STAGES = (("mask", ("mask",)), ("colorize", ("supervised", "paired")),
          ("inpaint", ("inpaint", "inpaint_adversarial")))


def enabled(config: ml_collections.ConfigDict) -> bool:
  return bool(config.get("pipeline", {}).get("mask", ""))


@dataclasses.dataclass
class Stage:
  inference: tasks.Inference
  apply: object  # jitted predict with the variables bound
  workdir: str = ""
  step: int = 0
  which: str = "best"  # the checkpoint: 'best' | 'latest'
  config: ml_collections.ConfigDict | None = None  # the stage run's config.json


def load_stage(config: ml_collections.ConfigDict, field: str, allowed: tuple[str, ...],
               options: evaluator.EvalOptions) -> Stage:
  """The best checkpoint of config.pipeline.<field>; ValueError naming that field when its
  workdir is missing or holds another task. 'colorize' and 'single' must restore RGB."""
  workdir = config.pipeline[field]
  if not workdir:
    raise ValueError(f"config.pipeline.{field} is empty: give the workdir of a trained "
                     f"{'/'.join(allowed)} run")
  try:
    trained = trained_run.load_run(workdir)
  except FileNotFoundError as e:
    raise ValueError(f"config.pipeline.{field}: {e}") from None
  task = trained.meta.get("task", "supervised")
  if task not in allowed:
    raise ValueError(f"config.pipeline.{field}={workdir!r} is a {task!r} run; expected task "
                     f"{' or '.join(map(repr, allowed))}")
  run_config = ml_collections.ConfigDict(trained.config.to_dict())
  run_config.model.dtype = config.model.dtype
  inference = tasks.inference_for(trained.meta, run_config, options=options)
  if field in ("colorize", "single") and (inference.channels != 3 or inference.needs_mask):
    raise ValueError(f"config.pipeline.{field}={workdir!r} restores {inference.channels}-"
                     "channel images; it must restore RGB (data.channels=3)")
  apply = jax.jit(inference.predict)
  return Stage(inference, lambda x, a=apply, v=jax.device_put(trained.variables): a(v, x),
               workdir=workdir, step=trained.step, which=trained.which, config=trained.config)


def load_stages(config: ml_collections.ConfigDict) -> dict[str, Stage]:
  """The three trained stages; ValueError naming config.pipeline.<stage> when one is wrong."""
  options = evaluator.EvalOptions.from_config(config)
  threshold = config.pipeline.threshold
  if not isinstance(threshold, (int, float)) or not 0.0 < threshold < 1.0:
    raise ValueError(f"config.pipeline.threshold must be in (0, 1), got {threshold!r}")
  return {name: load_stage(config, name, allowed, options) for name, allowed in STAGES}


def run_stage(stage: Stage, x: np.ndarray) -> np.ndarray:
  """One stage on float images [H, W, C] or [N, H, W, C] of any size (`any_size.apply` with
  config.eval's tile / tile_overlap / self_ensemble); its `to_image`, float32."""
  o = stage.inference.options
  y = any_size.apply(stage.apply, x, multiple=stage.inference.multiple, tile=o.tile,
                     overlap=o.tile_overlap, self_ensemble=o.self_ensemble,
                     bucket=32 if o.tile <= 0 else None)
  return np.asarray(stage.inference.to_image(y), np.float32)


def restore_chain(stages: dict[str, Stage], image: np.ndarray, threshold: float
                  ) -> tuple[np.ndarray, np.ndarray]:
  """One float HWC image in [0, 1] -> (restored RGB HW3, damage mask HW1 of 0/1)."""
  gray = image_ops.to_channels(np.asarray(image, np.float32), 1)
  prob = run_stage(stages["mask"], image_ops.to_channels(gray, stages["mask"].inference.channels))
  mask = (prob > threshold).astype(np.float32)
  colour = np.clip(run_stage(stages["colorize"], image_ops.to_channels(gray, 3)), 0.0, 1.0)
  holes = colour * (1.0 - mask)  # the inpainting runs' holes are zero-filled
  filled = run_stage(stages["inpaint"], np.asarray(inpaint.with_mask(holes, mask)))
  return np.clip(filled, 0.0, 1.0), mask


def run(config: ml_collections.ConfigDict, plan: list[tuple[str, str]], output_dir: str, *,
        overwrite: bool = False) -> list[str]:
  """Restores every (input, output) of `plan` (from `restore.plan_outputs`)."""
  stages = load_stages(config)
  if jax.process_index() != 0:
    return []
  start, written = time.time(), []
  for src, dst in tqdm.tqdm(plan, desc="chained restore", unit="image", dynamic_ncols=True):
    try:
      image, info = reading.read_image(src)
      restored, mask = restore_chain(stages, image, float(config.pipeline.threshold))
      written.append(writing.write_image(dst, restored, dataclasses.replace(info, channels=3),
                                             overwrite=overwrite))
      if config.pipeline.save_masks:
        stem = os.path.splitext(dst)[0]
        written.append(writing.write_image(
            stem + "_mask.png", mask, dataclasses.replace(info, channels=1, alpha=None),
            overwrite=overwrite))
    except Exception as e:
      e.add_note(f"while restoring {src} -> {dst}")
      raise
  logging.info("chained restore: %d image(s) into %s in %.1fs", len(plan), output_dir,
               time.time() - start)
  return written
