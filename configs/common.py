"""Helpers shared by the configs: argument parsing and the pieces several tasks use.

A config argument is a comma-separated list of flags and key=value pairs, e.g.
`configs/dncnn.py:quick,sigma=50` -> {'quick': True, 'sigma': 50}.
"""

import ast
from typing import Any

import ml_collections

from configs import default


def parse_arg(arg: str | None, **defaults: Any) -> ml_collections.ConfigDict:
  """Parses 'a,b=3,c=x' against `defaults`; unknown keys raise ValueError listing the valid."""
  out = dict(defaults)
  for item in filter(None, (arg or "").split(",")):
    key, eq, value = item.partition("=")
    key = key.strip()
    if key not in defaults:
      raise ValueError(f"unknown config argument {key!r}; valid: {sorted(defaults)}")
    if not eq:
      out[key] = True
      continue
    try:
      parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError):
      parsed = value
    if isinstance(defaults[key], bool) and not isinstance(parsed, bool):
      raise ValueError(f"config argument {key} is a flag (true/false), got {value!r}")
    out[key] = parsed
  return ml_collections.ConfigDict(out)


def base() -> ml_collections.ConfigDict:
  return default.get_config()


def make_quick(c: ml_collections.ConfigDict, *, steps: int = 300) -> None:
  """Shrinks a run so it finishes in a few minutes on a 2-core CPU and still shows learning."""
  c.total_steps = steps
  c.optimizer.warmup_steps = min(c.optimizer.warmup_steps, steps // 10)
  c.log_every_steps = 25
  c.eval_every_steps = steps // 2
  c.checkpoint_every_steps = steps // 2
  c.data.eval_crop = 64
  c.data.eval_max_images = 4
  c.data.eval_batch_size = 4


# Camera-shake deblurring with the 8 real Levin et al. (2009) kernels, one drawn per image.
# Reads shared/data/deblur/Levin09/kernels beside the checkout (corruptions.DEFAULT_KERNEL_DIR).
LEVIN_BLUR = [{"name": "blur", "kernel": "levin09:random"}]
# Self-contained default: Gaussian blur of random width, plus faint sensor noise.
GAUSSIAN_BLUR = [{"name": "gaussian_blur", "sigma": (1.0, 2.5)},
                 {"name": "gaussian_noise", "sigma": 1.0}]
# Sweep level names are ConfigDict keys: no dots.
DEBLUR_SWEEP = {
    "gblur_s1_0": [{"name": "gaussian_blur", "sigma": 1.0}, {"name": "gaussian_noise", "sigma": 1.0}],
    "gblur_s1_6": [{"name": "gaussian_blur", "sigma": 1.6}, {"name": "gaussian_noise", "sigma": 1.0}],
    "gblur_s2_4": [{"name": "gaussian_blur", "sigma": 2.4}, {"name": "gaussian_noise", "sigma": 1.0}],
}


def deblurring(*, levin: bool) -> ml_collections.ConfigDict:
  """The deblurring task of 128x128 RGB crops that the U-Net and CvT configs share."""
  c = base()
  c.patch_size = 128
  c.batch_size = 8
  c.total_steps = 100_000
  c.eval_every_steps = 2_000
  c.checkpoint_every_steps = 2_000
  c.data.eval_crop = 128
  c.corruption = LEVIN_BLUR if levin else GAUSSIAN_BLUR
  c.loss = {"l1": 1.0}
  c.optimizer.schedule = "cosine"
  c.optimizer.grad_clip_norm = 1.0
  c.eval.sweep = DEBLUR_SWEEP
  return c


def make_quick_deblurring(c: ml_collections.ConfigDict) -> None:
  """`make_quick` plus the 32 px crops a tiny deblurring model learns from in minutes."""
  make_quick(c, steps=300)
  c.patch_size = 32
  c.batch_size = 8
  c.optimizer.warmup_steps = 20


# Damaged old prints, (block side range, noise-filled blocks, black blocks): the mask task's
# target (configs/mask.py) and the single-model baseline's damage (configs/damaged_gray.py).
DAMAGE = ((4, 24), 6, 3)
QUICK_DAMAGE = ((3, 10), 3, 2)


def damage_blocks(size: tuple[int, int], noise: int, black: int, *,
                  noise_fill: str = "noise") -> list[dict]:
  """Noise-filled and black blocks of random sides in `size`, as scratches and stains on old
  prints; noise_fill='gray_noise' keeps the noise gray on a gray photo stored as RGB."""
  return [{"name": "random_blocks", "num_blocks": noise, "block_size": size, "fill": noise_fill},
          {"name": "random_blocks", "num_blocks": black, "block_size": size, "fill": 0.0}]


def full_size_blocks(c: ml_collections.ConfigDict) -> None:
  """The 128 px damaged-photo schedule the mask and inpainting configs share."""
  c.patch_size = 128
  c.total_steps = 50_000
  c.eval_every_steps = 2_000
  c.checkpoint_every_steps = 2_000
  c.data.eval_crop = 128
  c.optimizer.schedule = "cosine"
  c.optimizer.warmup_steps = 500


def quick_blocks(c: ml_collections.ConfigDict) -> None:
  """`make_quick` plus the 32 px crops the mask and inpainting quick variants train on."""
  make_quick(c, steps=300)
  c.patch_size = 32
  c.batch_size = 8
  c.optimizer.learning_rate = 3e-3
