"""Image corruptions as pure JAX functions, applied on the device inside the jitted train step.

Data contract
-------------
* `fn(key, images, *, params) -> images` in the dm-pix style: `key` first, parameters keyword-only.
* `images`: float NHWC in [0, 1], 1 or 3 channels, any height and width (odd sizes too).
  The output has the same shape and dtype (exception: `grayscale(keep_channels=False)` returns
  N x H x W x 1). `random_blocks` / `study_blocks` / `salt_and_pepper` with `return_mask=True`
  also return a float mask N x H x W x 1, 1 where content was destroyed.
* `key`: a `jax.random.key` (legacy uint32 `PRNGKey`s are accepted and wrapped). Each image
  draws its own randomness from `jax.random.split(key, N)[i]`; `key` may instead be N per-image
  keys, used as is, so `fn(keys[i:i + 1], images[i:i + 1])` reproduces image i of
  `fn(keys, images)` (see `per_image_keys`). Same key, same output. (This loop equivalence holds
  for threefry keys, the default. Under vmap, JAX draws a whole batch of 'rbg'-key bits from the
  batch's first key, so with 'rbg' keys outputs are random and deterministic but a loop over
  images does not reproduce the batch.)
* Parameters that accept a range `(lo, hi)` (tuple or list) draw a value uniformly per image.
  Static parameters (num_blocks, block sizes, kernel sizes, quality tables) are Python values,
  so shapes are static under `jax.jit`; every function also works under `jax.vmap`.
* Invalid parameters raise `ValueError` naming the function, the parameter and the allowed
  values: at trace time for direct calls, and when `chain` is built (or `validate` is called)
  for config specs, before anything is compiled.

Config specs: `chain([{'name': 'gaussian_noise', 'sigma': 25.0}, ...])` ->
`(key, images) -> (corrupted, mask)`; `CORRUPTIONS` is the name -> function registry.
`chain(specs, noise_map=True)` also returns the noise-level map (FFDNet's input; noise_map.py).
"""

from restoration.corruptions._common import per_image_keys
from restoration.corruptions.blocks import random_blocks
from restoration.corruptions.blur import (DEFAULT_KERNEL_DIR, blur, gaussian_blur, line_kernel,
                                          load_kernel, motion_blur)
from restoration.corruptions.chain import (CORRUPTIONS, MASKING, NOISE_LEVEL, chain, per_example,
                                           validate, with_noise_map)
from restoration.corruptions.jpeg import jpeg
from restoration.corruptions.noise_map import gaussian_noise_map
from restoration.corruptions.noise import (gaussian_noise, grayscale, low_light, poisson_noise,
                                           salt_and_pepper, speckle_noise)
from restoration.corruptions.study_blocks import study_block_centres, study_blocks

__all__ = [
    "CORRUPTIONS", "DEFAULT_KERNEL_DIR", "MASKING", "NOISE_LEVEL", "blur", "chain",
    "gaussian_blur", "per_example", "gaussian_noise", "gaussian_noise_map", "grayscale",
    "with_noise_map", "jpeg", "line_kernel", "load_kernel", "low_light",
    "motion_blur", "per_image_keys", "poisson_noise", "random_blocks", "salt_and_pepper",
    "speckle_noise", "study_block_centres", "study_blocks", "validate",
]
