"""`launch.py --mode=restore`: run a trained model on your own, already degraded, images.

  python launch.py --mode=restore --workdir=runs/dncnn --input='noisy/*.png' --output=restored/

No corruption is applied. Every output keeps its input's size, channel layout (gray stays gray,
RGB stays RGB, an alpha channel is re-attached unchanged) and bit depth (8 / 16); JPEG inputs
are written as PNG. The model (model.name, model.kwargs) and `data.channels` come from the
workdir's config.json (`eval_mode.training_config`); the model sees that many channels (inputs
are converted with `imageio.to_channels` and converted back). All output paths are decided before any image is
processed (`plan_outputs`): an existing output file is refused unless `overwrite`, and
an input is never overwritten, even with it. Inference uses config.eval.tile / tile_overlap /
self_ensemble through `inference.restore`; untiled images are padded to shape buckets of
`bucket` px so a folder of many sizes compiles only a few times.
"""

import functools
import glob
import os
import time
from collections.abc import Sequence

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


def restore_array(
    apply,
    image: np.ndarray,
    *,
    model_channels: int,
    config: ml_collections.ConfigDict,
    multiple: int = 1,
    bucket: int | None = DEFAULT_BUCKET,
) -> np.ndarray:
  """One float HWC image in [0, 1] (1 or 3 channels) -> restored, same shape, clipped."""
  x = imageio.to_channels(np.asarray(image, np.float32), model_channels)
  tile = int(config.eval.tile)
  y = inference.restore(
      apply,
      x,
      multiple=multiple,
      tile=max(tile, 0),
      overlap=int(config.eval.tile_overlap),
      self_ensemble=bool(config.eval.self_ensemble),
      bucket=bucket if tile <= 0 else None,
  )
  y = imageio.to_channels(np.clip(y, 0.0, 1.0), image.shape[-1])
  return y


def _walk_images(directory: str) -> list[str]:
  found = []
  for root, dirs, files in os.walk(directory):
    dirs.sort()
    found.extend(
        os.path.join(root, f)
        for f in files
        if os.path.splitext(f)[1].lower() in imageio.IMAGE_EXTENSIONS
    )
  return found


def _inode(path: str) -> tuple[int, int]:
  st = os.stat(path)
  return st.st_dev, st.st_ino


def expand_inputs(path_or_glob: str) -> list[str]:
  """Image files named by a file, a directory or a glob, sorted and de-duplicated.

  * an existing file: returned as is (whatever its extension; reading it decides);
  * a directory: all PNG/JPEG/BMP/TIFF files below it, recursively;
  * otherwise a glob (``**`` recurses): matching image files, plus images inside matching
    directories.

  Raises FileNotFoundError naming the pattern when nothing matches. Note: keep the output
  directory outside an input directory, or a second run will pick up the first run's outputs.
  """
  pattern = os.path.expanduser(os.fspath(path_or_glob))
  if os.path.isfile(pattern):
    return [pattern]
  if os.path.isdir(pattern):
    found = _walk_images(pattern)
  else:
    found = []
    for match in glob.glob(pattern, recursive=True):
      if os.path.isdir(match):
        found.extend(_walk_images(match))
      elif os.path.isfile(match) and os.path.splitext(match)[1].lower() in imageio.IMAGE_EXTENSIONS:
        found.append(match)
  found = sorted(set(os.path.normpath(p) for p in found))
  if not found:
    raise FileNotFoundError(
        f"no images match {path_or_glob!r} (expected an image file, a directory containing "
        f"{'/'.join(e[1:] for e in imageio.IMAGE_EXTENSIONS)} files, or a glob pattern)"
    )
  return found


def plan_outputs(
    inputs: Sequence[str], output_dir: str, *, overwrite: bool
) -> list[tuple[str, str]]:
  """Decide every output path up front: ``[(input, output), ...]`` in input order.

  Each input goes to ``output_dir/<relative name>``, the relative name being its path
  relative to the inputs' common directory (so a directory tree is mirrored; a single file
  keeps its base name). Lossless extensions (.png, .bmp, .tif, .tiff) are kept; anything else
  (JPEG) becomes ``.png`` so restoration adds no new compression artefacts.

  Raises, before any image is processed:
    ValueError: two inputs map to the same output (e.g. ``a.jpg`` and ``a.png``), or an
      output would be one of the inputs (even with ``overwrite``; inputs are never replaced).
    FileExistsError: an output exists and ``overwrite`` is False (names it, suggests
      ``--overwrite``).
  """
  inputs = [os.fspath(p) for p in inputs]
  if not inputs:
    return []
  abs_inputs = [os.path.abspath(p) for p in inputs]
  common = os.path.commonpath([os.path.dirname(p) for p in abs_inputs])
  real_inputs = {os.path.realpath(p): p for p in inputs}
  inodes = {_inode(p): p for p in inputs if os.path.exists(p)}
  plan, seen = [], {}
  for src, abs_src in zip(inputs, abs_inputs):
    rel = os.path.relpath(abs_src, common)
    stem, ext = os.path.splitext(rel)
    dst = os.path.join(
        output_dir, rel if ext.lower() in imageio.LOSSLESS_EXTENSIONS else stem + ".png"
    )
    key = os.path.normcase(os.path.realpath(dst))
    if key in seen:
      raise ValueError(
          f"inputs {seen[key]!r} and {src!r} would both be written to "
          f"{dst!r}; rename one or restore them separately"
      )
    seen[key] = src
    clash = real_inputs.get(os.path.realpath(dst))
    if clash is None and os.path.exists(dst):  # hard links, case-insensitive file systems
      clash = inodes.get(_inode(dst))
    if clash is not None:
      raise ValueError(
          f"output {dst!r} would overwrite input {clash!r}; choose another " f"output directory"
      )
    plan.append((src, dst))
  if not overwrite:
    existing = [dst for _, dst in plan if os.path.lexists(dst)]
    if existing:
      more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
      raise FileExistsError(
          f"refusing to overwrite existing output {existing[0]!r}{more} "
          f"(pass --overwrite to replace)"
      )
  return plan


def run(
    config: ml_collections.ConfigDict,
    workdir: str,
    input_path: str,
    output_dir: str,
    *,
    step: int | None = None,
    overwrite: bool = False,
    bucket: int | None = DEFAULT_BUCKET,
) -> list[str]:
  """Restores every image named by `input_path` (file, folder or glob) into `output_dir`.

  Returns the written paths. Raises (before anything is processed or written)
  ValueError for a bad eval field (`evaluate.validate_eval_config`), FileNotFoundError when
  nothing matches `input_path` or the checkpoint is missing, FileExistsError for an existing
  output without `overwrite`, ValueError when an output would replace an input.
  """
  evaluate.validate_eval_config(config)
  config = eval_mode.training_config(config, workdir)
  inputs = expand_inputs(input_path)
  plan = plan_outputs(inputs, output_dir, overwrite=overwrite)
  model = state_lib.build_model(config)
  variables, ckpt_step, which = eval_mode.load_variables(config, workdir, step=step)
  if jax.process_index() != 0:  # restore mode is single-process work; the others idle
    return []
  # Jitted once with the variables as an argument (placed on the device once), not constants.
  apply = functools.partial(evaluate.jit_apply(model), jax.device_put(variables))
  multiple = eval_mode.model_multiple(config)
  channels = int(config.data.channels)
  logging.info(
      "restore: %d images with the %s checkpoint (step %d) of %s -> %s",
      len(plan),
      which,
      ckpt_step,
      workdir,
      output_dir,
  )
  start = time.time()
  written = []
  for src, dst in tqdm.tqdm(plan, desc="restore", unit="image", dynamic_ncols=True):
    try:
      image, info = imageio.read_image(src)
      restored = restore_array(
          apply, image, model_channels=channels, config=config, multiple=multiple, bucket=bucket
      )
      written.append(imageio.write_image(dst, restored, info, overwrite=overwrite))
    except Exception as e:
      e.add_note(f"while restoring {src} -> {dst}")
      raise
  summary = (
      f"restored {len(written)} image(s) into {output_dir} with the {which} checkpoint "
      f"(step {ckpt_step}) in {time.time() - start:.1f}s"
  )
  logging.info(summary)
  print(summary, flush=True)
  return written
