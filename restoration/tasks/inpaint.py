"""Inpainting (`config.task = 'inpaint'`): fill the holes of a damaged image, given its mask.

The model sees the corrupted image plus the corruption chain's mask as one more channel
(C + 1 channels in, C out: `model.kwargs.out_channels = data.channels, residual=False`).
Prediction keeps the known pixels: output = mask * net + (1 - mask) * input, so eval PSNR is
that of the filled image. Training loss, with `config.loss` (any reconstruction losses):

  loss(composite, clean) + inpaint.valid_weight * loss(net, clean)

where composite = mask * net + (1 - mask) * clean carries the network's error on the holes
only (a per-pixel loss is then the hole error summed over the image's pixels, the quantity the
eval PSNR of the filled image measures); the second term, at a lower weight, also asks the
network to reproduce the known pixels.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from restoration import corruptions
from restoration.tasks import base
from restoration.tasks import mask as mask_task
from restoration.tasks import supervised


def with_mask(image: jax.Array, mask: jax.Array) -> jax.Array:
  """The inpainting model's input: image channels, then the 0/1 hole mask."""
  return jnp.concatenate([image, mask.astype(image.dtype)], axis=-1)


class InpaintInference(base.Inference):
  """(image with holes, mask) -> filled image; the known pixels pass through unchanged."""

  needs_mask = True

  def prepare(self, corrupt, seed, images, index):
    clean = images.astype(jnp.float32) / 255.0
    corrupted, mask = corruptions.per_example(corrupt, jax.random.key(seed), clean, index)
    return with_mask(corrupted, mask), clean

  def predict(self, variables, model_input):
    net = self.model.apply(variables, model_input, train=False).astype(jnp.float32)
    mask = model_input[..., -1:]
    return mask * net + (1.0 - mask) * model_input[..., :-1]

  def measure(self, output, corrupted, clean, *, variables=None):
    del variables  # not a likelihood model
    return super().measure(output, corrupted[..., :-1], clean)

  def show(self, model_input, output, target):
    return model_input[..., :-1], output, target


class InpaintTask(supervised.SupervisedTask):
  """Holes of the chain's masking steps filled; loss on the holes (+ known pixels, weighted)."""

  name = "inpaint"
  inference_class = InpaintInference
  same_shape_input = False
  output_hint = ("set model.kwargs.out_channels to data.channels and residual=False (the "
                 "input has one more channel: the mask)")

  def __init__(self, config, **kwargs):
    mask_task.require_masking(config, "inpaint")
    weight = config.inpaint.valid_weight
    if not isinstance(weight, (int, float)) or isinstance(weight, bool) or weight < 0:
      raise ValueError(f"config.inpaint.valid_weight must be a number >= 0, got {weight!r}")
    self.valid_weight = float(weight)
    super().__init__(config, **kwargs)

  def example(self, step_key, device_key, batch, consts):
    clean = self.clean_batch(jax.random.fold_in(device_key, supervised.SAMPLE_STREAM), batch,
                             consts)
    corrupted, mask = supervised.corrupt_batch(self.corrupt, step_key, clean, with_mask=True)
    return with_mask(corrupted, mask), clean

  def task_loss(self, output, target, model_input, consts):
    mask = model_input[..., -1:]
    composite = mask * output + (1.0 - mask) * target
    loss, terms = self.loss_fn(composite, target, consts)
    if self.valid_weight:
      loss = loss + self.valid_weight * self.loss_fn(output, target, consts)[0]
    return loss, terms
