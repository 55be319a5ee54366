"""`launch.py --mode=restore`: run a trained model on your own, already degraded, images.

  python launch.py --mode=restore --workdir=runs/dncnn --input='noisy/*.png' --output=restored/

No corruption is applied. Every output keeps its input's size, channel layout (gray stays gray,
RGB stays RGB, an alpha channel is re-attached unchanged) and bit depth (8 / 16); JPEG inputs
are written as PNG. The model and its channels come from the checkpoint's meta
(`trained_run.load_run`); the model sees that many channels (inputs are converted with
`image_ops.to_channels` and back). All output paths are decided before any image is processed
(`plan_outputs`): an existing output file is refused unless `overwrite`, and an input is never
overwritten, even with it. Inference uses config.eval.tile / tile_overlap / self_ensemble
through `any_size.apply`. Models that pad internally anyway (U-Net, CvT: `inference.multiple`
> 1) run untiled images padded to shape buckets of `bucket` px, so a folder of many sizes
compiles only a few times; models without such a multiple (CNN, DnCNN) run every image at its
own size, so the borders see the model's own zero padding and the output is exactly the
network's (one compilation per distinct size).

FFDNet runs (task 'ffdnet') also take the noise level: `sigma` (0-255), a grayscale
`sigma_map` file, or an estimate per image (restoration.modes.noise_level); it is appended to the
image as the model's map channel.
"""

import functools
import glob
import os
import tempfile
import time
from collections.abc import Sequence

import jax
import ml_collections
import numpy as np
import tqdm
from absl import logging

from restoration import any_size
from restoration.modes import chained
from restoration.runtime import trained_run
from restoration.eval import evaluator
from restoration.image_files import reading
from restoration.image_files import writing
from restoration import image_ops
from restoration.modes import noise_level
from restoration import tasks

DEFAULT_BUCKET = 32


def restore_image(
    apply,
    image: np.ndarray,
    *,
    inference,
    bucket: int | None = DEFAULT_BUCKET,
    level=None,
    colour: str = "per_channel",
) -> np.ndarray:
  """One float HWC image in [0, 1] (1 or 3 channels) -> restored, same shape, clipped.

  `apply(x)`: the jitted model with its variables bound; `inference`: the run's
  `tasks.Inference` (channels, spatial multiple, tile / ensemble options); `level(x)`: the
  noise-level map [H, W, 1] appended to the model-channel image x (FFDNet), or None;
  `colour`: how a 1-channel model restores a colour image (`COLOUR_ON_GRAY`).
  """
  o = inference.options
  x = np.asarray(image, np.float32)
  planes = colour_planes(x, inference.channels, colour)  # [N, H, W, model channels]
  if level is not None:
    planes = np.concatenate([planes, np.stack([level(p) for p in planes])], axis=-1)
  y = any_size.apply(apply, planes, multiple=inference.multiple, tile=o.tile,
                     overlap=o.tile_overlap, self_ensemble=o.self_ensemble,
                     bucket=bucket if o.tile <= 0 and inference.multiple > 1 else None)
  y = np.asarray(inference.to_image(y))  # e.g. a mask model's logits -> probabilities
  # Clipped before the channel conversion too (luma of out-of-range values would differ),
  # and after it: a luma change added to R, G, B can leave the gamut.
  return np.clip(from_planes(np.clip(y, 0.0, 1.0), x, colour), 0.0, 1.0)


# A 1-channel model on a colour image: each of R, G, B restored as a gray image
# ('per_channel'), or only the luma, with the input's chroma kept ('luma'). Measured on CBSD68
# (WORKSPACE, issue 28; sigma 25, 10 images): per channel 28.62 dB, luma 20.99 (the chroma
# noise stays), so per channel is the default.
COLOUR_ON_GRAY = ("per_channel", "luma")
COLOUR_SAID = {"per_channel": "each of R, G, B restored as a gray image",
               "luma": "the luma restored, the input's colour (chroma) kept"}


def colour_planes(x: np.ndarray, channels: int, colour: str = "per_channel") -> np.ndarray:
  """The model-channel images [N, H, W, channels] one HWC image `x` is restored as."""
  if channels == 1 and x.shape[-1] == 3:
    if colour == "per_channel":
      return np.moveaxis(x, -1, 0)[..., None]
    if colour == "luma":
      return image_ops.luma(x)[None]
    raise ValueError(f"colour={colour!r}; allowed: {', '.join(COLOUR_ON_GRAY)}")
  return image_ops.to_channels(x, channels)[None]


def from_planes(y: np.ndarray, x: np.ndarray, colour: str = "per_channel") -> np.ndarray:
  """The restored planes `y` of `colour_planes(x, ...)` as an image of x's channels."""
  if y.shape[-1] == 1 and x.shape[-1] == 3:
    if colour == "per_channel":
      return np.moveaxis(y[..., 0], 0, -1)
    # BT.601 luma weights sum to 1: adding the luma change to R, G and B changes Y by it and
    # leaves Cb, Cr (differences from Y) as they were.
    return x + (y[0] - image_ops.luma(x))
  return image_ops.to_channels(y[0], x.shape[-1])


def jit_predict(inference):
  """`(variables, x) -> restored`, jitted with the variables as an argument, not constants:
  one compilation per input shape whatever their values."""
  return jax.jit(inference.predict)


def _walk_images(directory: str) -> list[str]:
  found = []
  for root, dirs, files in os.walk(directory):
    dirs.sort()
    found.extend(
        os.path.join(root, f)
        for f in files
        if os.path.splitext(f)[1].lower() in reading.IMAGE_EXTENSIONS
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
      elif (os.path.isfile(match)
            and os.path.splitext(match)[1].lower() in reading.IMAGE_EXTENSIONS):
        found.append(match)
  found = sorted(set(os.path.normpath(p) for p in found))
  if not found:
    raise FileNotFoundError(
        f"no images match {path_or_glob!r} (expected an image file, a directory containing "
        f"{'/'.join(e[1:] for e in reading.IMAGE_EXTENSIONS)} files, or a glob pattern)"
    )
  return found


def check_writable(output_dir: str) -> None:
  """ValueError naming the folder when no file can be created in `output_dir` (or, when it
  does not exist yet, in the nearest existing folder above it, where it will be created).
  A real file is created and removed: permission bits alone miss read-only mounts and root."""
  folder = os.path.abspath(output_dir)
  while not os.path.isdir(folder) and os.path.dirname(folder) != folder:
    folder = os.path.dirname(folder)
  try:
    with tempfile.TemporaryFile(dir=folder):
      pass
  except OSError as e:
    raise ValueError(f"--output={output_dir}: cannot write in {folder} "
                     f"({e.strerror or e}); choose a writable output folder") from None


def plan_outputs(
    inputs: Sequence[str], output_dir: str, *, overwrite: bool, skip_existing: bool = False
) -> list[tuple[str, str]]:
  """Decide every output path up front: ``[(input, output), ...]`` in input order.

  Each input goes to ``output_dir/<relative name>``, the relative name being its path
  relative to the inputs' common directory (so a directory tree is mirrored; a single file
  keeps its base name). Lossless extensions (.png, .bmp, .tif, .tiff) are kept; anything else
  (JPEG) becomes ``.png`` so restoration adds no new compression artefacts.

  Raises, before any image is processed:
    ValueError: two inputs map to the same output (e.g. ``a.jpg`` and ``a.png``), or an
      output would be one of the inputs (even with ``overwrite``; inputs are never replaced).
    FileExistsError: an output exists and neither ``overwrite`` nor ``skip_existing`` is set
      (names it, suggests both). With ``skip_existing`` those inputs are left out of the plan
      (a rerun after an interruption restores only what is missing).
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
        output_dir, rel if ext.lower() in writing.LOSSLESS_EXTENSIONS else stem + ".png"
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
  if overwrite and skip_existing:
    raise ValueError("--overwrite and --skip_existing contradict each other; pass one")
  if not overwrite:
    existing = [dst for _, dst in plan if os.path.lexists(dst)]
    if existing and skip_existing:
      return [(src, dst) for src, dst in plan if not os.path.lexists(dst)]
    if existing:
      more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
      raise FileExistsError(
          f"refusing to overwrite existing output {existing[0]!r}{more} "
          f"(pass --overwrite to replace, or --skip_existing to restore only the others)"
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
    sigma: float | None = None,
    sigma_map: str | None = None,
    skip_existing: bool = False,
) -> list[str]:
  """Restores every image named by `input_path` (file, folder or glob) into `output_dir`.

  Returns the written paths. Unreadable inputs are skipped (warning) and, after the others
  are written, reported by `RestoreFailures` (a SystemExit, status 1). Raises (before
  anything is processed or written)
  ValueError for a bad eval field (`evaluator.EvalOptions`), FileNotFoundError when
  nothing matches `input_path` or the checkpoint is missing, FileExistsError for an existing
  output without `overwrite`, ValueError when an output would replace an input.
  """
  options = evaluator.EvalOptions.from_config(config)  # bad fields fail before any work
  inputs = expand_inputs(input_path)
  plan = plan_outputs(inputs, output_dir, overwrite=overwrite, skip_existing=skip_existing)
  if len(plan) < len(inputs):
    print(f"restore: {len(inputs) - len(plan)} of {len(inputs)} input(s) already have an "
          f"output in {output_dir}: skipped (--skip_existing)", flush=True)
  check_writable(output_dir)  # before the model loads, not after
  if chained.enabled(config):  # mask -> colourise -> inpaint of three runs; workdir unused
    return chained.run(config, plan, output_dir, overwrite=overwrite)
  trained = trained_run.load_run(workdir, step=step, config=config)
  inference = tasks.inference_for(trained.meta, config, options=options)
  if inference.needs_mask:
    raise ValueError(f"{workdir!r} is a {trained.meta['task']!r} checkpoint: its model also "
                     "needs the damage mask, which users' images do not carry")
  noise_level.check_flags(inference, trained.meta, workdir, sigma, sigma_map)
  levels = (noise_level.level_fn(sigma, sigma_map)
            if getattr(inference, "noise_level_input", False) else None)
  if jax.process_index() != 0:  # restore mode is single-process work; the others idle
    return []
  apply = functools.partial(jit_predict(inference), jax.device_put(trained.variables))
  logging.info("restore: %d images with the %s checkpoint (step %d) of %s -> %s", len(plan),
               trained.which, trained.step, workdir, output_dir)
  start = time.time()
  written, failed, converted = [], [], 0
  for src, dst in tqdm.tqdm(plan, desc="restore", unit="image", dynamic_ncols=True):
    try:
      image, info = reading.read_image(src)
    except (OSError, ValueError) as e:  # unreadable input: report it, go on with the others
      failed.append(f"{src} ({str(e).splitlines()[0]})")
      logging.warning("restore: skipping unreadable %s: %s", src, e)
      continue
    converted += image.shape[-1] != inference.channels
    level = None if levels is None else functools.partial(levels, src)
    restored = restore_image(apply, image, inference=inference, bucket=bucket, level=level)
    written.append(writing.write_image(dst, restored, info, overwrite=overwrite))
  if converted:
    how = (COLOUR_SAID["per_channel"] + ", colour kept" if inference.channels == 1 else
           "the gray repeated into R, G, B for the model and its output made gray again")
    message = (f"restore: {converted} input(s) had other channels than the model's "
               f"{inference.channels}: {how}")
    print(message, flush=True)
  summary = (
      f"restored {len(written)} image(s) into {output_dir} with the {trained.which} checkpoint "
      f"(step {trained.step}) in {time.time() - start:.1f}s"
  )
  logging.info(summary)
  print(summary, flush=True)
  if failed:
    raise RestoreFailures(failed)
  return written


class RestoreFailures(SystemExit):
  """Some inputs could not be read; the others were restored. Exit status 1."""

  def __init__(self, failed: list[str]):
    more = f" (and {len(failed) - 10} more)" if len(failed) > 10 else ""
    self.failed = failed
    self.message = (f"restore: {len(failed)} input(s) could not be read and were skipped: "
                    f"{'; '.join(failed[:10])}{more}")
    print(self.message, flush=True)
    super().__init__(1)

  def __str__(self) -> str:
    return self.message
