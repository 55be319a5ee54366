"""`launch.py --mode=restore`: run a trained model on your own, already degraded, images.

  python launch.py --mode=restore --workdir=runs/dncnn --input='noisy/*.png' --output=restored/

No corruption is applied. Every output keeps its input's size, channel layout (gray stays gray,
RGB stays RGB, an alpha channel is re-attached unchanged) and bit depth (8 / 16); JPEG inputs
are written as PNG. The model (model.name, model.kwargs) and `data.channels` come from the
workdir's config.json (`eval_mode.training_config`); the model sees that many channels (inputs
are converted with `imageio.to_channels` and converted back). All output paths are decided before any image is
processed (`imageio.plan_outputs`): an existing output file is refused unless `overwrite`, and
an input is never overwritten, even with it. Inference uses config.eval.tile / tile_overlap /
self_ensemble through `inference.restore`; untiled images are padded to shape buckets of
`bucket` px so a folder of many sizes compiles only a few times.
"""

import functools
import time

import jax
import ml_collections
import numpy as np
import tqdm
from absl import logging

from restoration import eval_mode
from restoration import evaluate
from restoration import imageio
from restoration import inference
from restoration import state as state_lib

DEFAULT_BUCKET = 32


def restore_array(apply, image: np.ndarray, *, model_channels: int,
                  config: ml_collections.ConfigDict, multiple: int = 1,
                  bucket: int | None = DEFAULT_BUCKET) -> np.ndarray:
  """One float HWC image in [0, 1] (1 or 3 channels) -> restored, same shape, clipped."""
  x = imageio.to_channels(np.asarray(image, np.float32), model_channels)
  tile = int(config.eval.tile)
  y = inference.restore(apply, x, multiple=multiple, tile=max(tile, 0),
                        overlap=int(config.eval.tile_overlap),
                        self_ensemble=bool(config.eval.self_ensemble),
                        bucket=bucket if tile <= 0 else None)
  y = imageio.to_channels(np.clip(y, 0.0, 1.0), image.shape[-1])
  return y


def run(config: ml_collections.ConfigDict, workdir: str, input_path: str, output_dir: str, *,
        step: int | None = None, overwrite: bool = False,
        bucket: int | None = DEFAULT_BUCKET) -> list[str]:
  """Restores every image named by `input_path` (file, folder or glob) into `output_dir`.

  Returns the written paths. Raises (before anything is processed or written)
  ValueError for a bad eval field (`evaluate.validate_eval_config`), FileNotFoundError when
  nothing matches `input_path` or the checkpoint is missing, FileExistsError for an existing
  output without `overwrite`, ValueError when an output would replace an input.
  """
  evaluate.validate_eval_config(config)
  config = eval_mode.training_config(config, workdir)
  inputs = imageio.expand_inputs(input_path)
  plan = imageio.plan_outputs(inputs, output_dir, overwrite=overwrite)
  model = state_lib.build_model(config)
  variables, ckpt_step, which = eval_mode.load_variables(config, workdir, step=step)
  if jax.process_index() != 0:  # restore mode is single-process work; the others idle
    return []
  # Jitted once with the variables as an argument (placed on the device once), not constants.
  apply = functools.partial(evaluate.jit_apply(model), jax.device_put(variables))
  multiple = eval_mode.model_multiple(config)
  channels = int(config.data.channels)
  logging.info("restore: %d images with the %s checkpoint (step %d) of %s -> %s", len(plan),
               which, ckpt_step, workdir, output_dir)
  start = time.time()
  written = []
  for src, dst in tqdm.tqdm(plan, desc="restore", unit="image", dynamic_ncols=True):
    try:
      image, info = imageio.read_image(src)
      restored = restore_array(apply, image, model_channels=channels, config=config,
                               multiple=multiple, bucket=bucket)
      written.append(imageio.write_image(dst, restored, info, overwrite=overwrite))
    except Exception as e:
      e.add_note(f"while restoring {src} -> {dst}")
      raise
  summary = (f"restored {len(written)} image(s) into {output_dir} with the {which} checkpoint "
             f"(step {ckpt_step}) in {time.time() - start:.1f}s")
  logging.info(summary)
  print(summary, flush=True)
  return written
