"""Denoising with the noise level as an input (`config.task = 'ffdnet'`, model 'ffdnet').

The model sees the noisy image plus its noise-level map as one more channel (C + 1 in, C out;
the map on the 0-1 scale, sigma / 255 per pixel): the "packed" input that `models.FFDNet`
takes when called without `sigma`. Training and eval feed it exactly the map that made the
noise: the corruption chain is built with `noise_map=True` (`corruptions.chain`), whose one
gaussian_noise / gaussian_noise_map step reports its level per pixel, drawn with the same
keys as the plain chain (so the noisy images are those every other task sees). An eval level
may tell the model a different level than the true one: a `gaussian_noise_map` step with
`map_sigma` (configs/ffdnet.py's mismatch levels). Restore mode supplies the map from
--sigma / --sigma_map or an estimate (`restoration.modes.noise_level`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from restoration import corruptions
from restoration.tasks import base
from restoration.tasks import supervised

MODEL = "ffdnet"


def pack(noisy: jax.Array, level: jax.Array) -> jax.Array:
  """The model input: the image channels, then the noise-level map (0-1 scale)."""
  return jnp.concatenate([noisy, level.astype(noisy.dtype)], axis=-1)


class FFDNetInference(base.Inference):
  """(noisy image, noise-level map) -> denoised image; metrics on the image channels."""

  noise_level_input = True  # restore mode appends a map (restoration.modes.noise_level)

  def prepare(self, corrupt, seed, images, index):
    clean = images.astype(jnp.float32) / 255.0
    noisy, _, level = corruptions.per_example(corruptions.with_noise_map(corrupt),
                                              jax.random.key(seed), clean, index)
    return pack(noisy, level), clean

  def measure(self, output, corrupted, clean, *, variables=None):
    del variables  # not a likelihood model
    return super().measure(output, corrupted[..., :-1], clean)

  def show(self, model_input, output, target):
    return model_input[..., :-1], output, target


class FFDNetTask(supervised.SupervisedTask):
  """Noisy crops + the map of the noise actually added -> FFDNet -> loss against the clean."""

  name = "ffdnet"
  inference_class = FFDNetInference
  same_shape_input = False
  output_hint = "leave model.kwargs without out_channels: FFDNet outputs the image channels"

  def __init__(self, config, **kwargs):
    if config.model.name != MODEL:
      raise ValueError(f"config.task='ffdnet' feeds a noise-level map to the model: "
                       f"config.model.name must be {MODEL!r}, got {config.model.name!r}")
    names = [spec["name"] for spec in config.corruption]
    if not any(n in corruptions.NOISE_LEVEL for n in names):
      raise ValueError(f"config.corruption={names} has no noise step: task 'ffdnet' needs "
                       f"one of {list(corruptions.NOISE_LEVEL)} (the map it feeds the model)")
    patch = base.check_int(config, "patch_size")
    # Built before the base class traces the model input (check_shapes) with it.
    self.noisy_chain = corruptions.chain(list(config.corruption), (patch, patch),
                                         noise_map=True)
    super().__init__(config, **kwargs)

  def model_input(self, key, clean):
    """The chain's noise on `clean`, keyed per GLOBAL example as every task's (with_mask
    returns the whole (noisy, mask, level) tuple of the noise-map chain), plus the map."""
    noisy, _, level = supervised.corrupt_batch(self.noisy_chain, key, clean, with_mask=True)
    return pack(noisy, level)
