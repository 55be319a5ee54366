"""The noise level restore mode gives an FFDNet run: --sigma, --sigma_map, or an estimate.

  --sigma=15          every image denoised as sigma 15 on the 0-255 scale (higher: smoother)
  --sigma_map=M.png   a grayscale image of each input's size; its gray level (0-255) is the
                      sigma at that pixel (e.g. stronger denoising in flat dark regions)
  neither             sigma estimated per image (`skimage.restoration.estimate_sigma`, the
                      wavelet MAD estimate of Gaussian noise), and logged

Only runs whose inference takes a noise-level map (task 'ffdnet': `noise_level_input`)
accept the flags; for any other run they are refused with one line.
"""

from __future__ import annotations

import os
from typing import Callable

import numpy as np
from absl import logging
from skimage import restoration as sk_restoration

from restoration.image_files import reading

MAX_SIGMA = 255.0


def check_flags(inference, meta: dict, workdir: str, sigma: float | None,
                sigma_map: str | None) -> None:
  """Raises ValueError (one line) for flags this run cannot use, before any work."""
  given = sigma is not None or bool(sigma_map)
  if given and not getattr(inference, "noise_level_input", False):
    raise ValueError(f"--sigma/--sigma_map: {workdir!r} is a {meta['model']['name']!r} run "
                     f"(task {meta.get('task', 'supervised')!r}); only FFDNet runs (task "
                     "'ffdnet') take a noise level")
  if sigma is not None and sigma_map:
    raise ValueError("--sigma and --sigma_map: give one of them (a level or a map)")
  if sigma is not None and not 0.0 <= sigma <= MAX_SIGMA:
    raise ValueError(f"--sigma={sigma:g}: must be in [0, 255] (the 0-255 scale: 25 means a "
                     "noise std of 25/255)")
  if sigma_map and not os.path.isfile(sigma_map):
    raise FileNotFoundError(f"--sigma_map={sigma_map!r}: no such file")


def read_map(path: str) -> np.ndarray:
  """A grayscale sigma map file as [H, W, 1] float32 sigma on the 0-255 scale."""
  image, _ = reading.read_image(path)
  if image.shape[-1] != 1:
    raise ValueError(f"--sigma_map={path!r} has {image.shape[-1]} channels; it must be a "
                     "grayscale image (its gray level 0-255 is the sigma at that pixel)")
  return np.asarray(image, np.float32) * MAX_SIGMA


def estimate(image: np.ndarray) -> float:
  """skimage's estimate of a Gaussian noise std of a float HWC image in [0, 1], 0-255 scale."""
  axis = -1 if image.shape[-1] > 1 else None
  x = image if axis is not None else image[..., 0]
  return float(sk_restoration.estimate_sigma(x, channel_axis=axis, average_sigmas=True)
               ) * MAX_SIGMA


def level_fn(sigma: float | None, sigma_map: str | None
             ) -> Callable[[str, np.ndarray], np.ndarray]:
  """`(name, image HWC) -> its map [H, W, 1] on the 0-1 scale`, logging the sigma used."""
  fixed = read_map(sigma_map) if sigma_map else None

  def level(name: str, image: np.ndarray) -> np.ndarray:
    shape = image.shape[:2] + (1,)
    if fixed is not None:
      if fixed.shape != shape:
        raise ValueError(f"--sigma_map={sigma_map!r} is {fixed.shape[1]}x{fixed.shape[0]} "
                         f"px but {name!r} is {shape[1]}x{shape[0]}: the map must have the "
                         "image's size")
      logging.info("restore: %s: sigma map %s (sigma %.1f-%.1f)", name, sigma_map,
                   fixed.min(), fixed.max())
      return fixed / MAX_SIGMA
    if sigma is not None:
      value, how = float(sigma), "--sigma"
    else:
      value, how = estimate(image), "estimated by skimage.restoration.estimate_sigma"
    logging.info("restore: %s: sigma %.2f (%s)", name, value, how)
    return np.full(shape, value / MAX_SIGMA, np.float32)

  return level
