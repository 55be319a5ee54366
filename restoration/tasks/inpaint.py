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

`config.task = 'inpaint_adversarial'` trains the same network (same input, loss and
inference) as pix2pix's generator (`restoration.tasks.adversarial`, `config.adversarial`):
G minimises g_adv + adversarial.l1_weight * the loss above. D is conditioned on the model
input (image with holes + mask channel) and judges the composite mask * image + (1 - mask) *
input, of G's output (fake) or of the clean crop (real): both carry the input's known pixels,
so D can only tell them apart in the holes. Its logged g_l1 is the filled image's L1.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from restoration import corruptions
from restoration.tasks import adversarial
from restoration.tasks import base
from restoration.tasks import mask as mask_task
from restoration.tasks import supervised


MASK_SOURCES = ("corruption", "zeros")


def with_mask(image: jax.Array, mask: jax.Array) -> jax.Array:
  """The inpainting model's input: image channels, then the 0/1 hole mask."""
  return jnp.concatenate([image, mask.astype(image.dtype)], axis=-1)


def zeros_mask(image: jax.Array) -> jax.Array:
  """(N, H, W, 1) 1 where a pixel is 0 in every channel: the holes zero-filling masks leave,
  found without being told (a naturally black pixel counts too; the net then fills it from
  its neighbours)."""
  return jnp.all(image == 0, axis=-1, keepdims=True).astype(image.dtype)


def mask_source(config) -> str:
  """config.inpaint.mask, checked: ValueError naming the field and the allowed values."""
  source = config.inpaint.get("mask", "corruption")
  if source not in MASK_SOURCES:
    raise ValueError(f"config.inpaint.mask={source!r}; allowed: {list(MASK_SOURCES)}")
  return source


def composite(image: jax.Array, model_input: jax.Array) -> jax.Array:
  """`image` in the holes of `model_input` (`with_mask`'s), the input's known pixels elsewhere."""
  mask = model_input[..., -1:]
  return mask * image + (1.0 - mask) * model_input[..., :-1]


class InpaintInference(base.Inference):
  """(image with holes, mask) -> filled image; the known pixels pass through unchanged."""

  needs_mask = True

  def __init__(self, meta, config, **kwargs):
    self.mask_source = mask_source(config)
    super().__init__(meta, config, **kwargs)

  def prepare(self, corrupt, seed, images, index):
    clean = images.astype(jnp.float32) / 255.0
    corrupted, mask = corruptions.per_example(corrupt, jax.random.key(seed), clean, index)
    if self.mask_source == "zeros":
      mask = zeros_mask(corrupted)
    return with_mask(corrupted, mask), clean

  def predict(self, variables, model_input):
    net = self.model.apply(variables, model_input, train=False).astype(jnp.float32)
    return composite(net, model_input)

  def measure(self, output, corrupted, clean, *, variables=None):
    del variables  # not a likelihood model
    return super().measure(output, corrupted[..., :-1], clean)

  def show(self, model_input, output, target):
    return model_input[..., :-1], output, target


class Inpainting:
  """What both inpainting tasks share (a mixin listed before their base task): the checks,
  the masked input, the hole-weighted loss and `InpaintInference`."""

  inference_class = InpaintInference
  same_shape_input = False
  output_hint = ("set model.kwargs.out_channels to data.channels and residual=False (the "
                 "input has one more channel: the mask)")

  def __init__(self, config, **kwargs):
    mask_task.require_masking(config, self.name)
    weight = config.inpaint.valid_weight
    if not isinstance(weight, (int, float)) or isinstance(weight, bool) or weight < 0:
      raise ValueError(f"config.inpaint.valid_weight must be a number >= 0, got {weight!r}")
    self.valid_weight = float(weight)
    self.mask_source = mask_source(config)
    super().__init__(config, **kwargs)

  def model_input(self, key, clean, index=None):
    """The chain's corruption of `clean` (keyed per global example, or per `index`) plus its
    mask channel."""
    corrupted, mask = supervised.corrupt_batch(self.corrupt, key, clean, with_mask=True,
                                               index=index)
    if self.mask_source == "zeros":
      mask = zeros_mask(corrupted)
    return with_mask(corrupted, mask)

  def task_loss(self, output, target, model_input, consts):
    mask = model_input[..., -1:]
    filled = mask * output + (1.0 - mask) * target  # the network's error on the holes only
    loss, terms = self.loss_fn(filled, target, consts)
    if self.valid_weight:
      loss = loss + self.valid_weight * self.loss_fn(output, target, consts)[0]
    return loss, terms


class InpaintTask(Inpainting, supervised.SupervisedTask):
  """Holes of the chain's masking steps filled; loss on the holes (+ known pixels, weighted)."""

  name = "inpaint"


class InpaintAdversarialTask(Inpainting, adversarial.AdversarialTask):
  """Inpainting against a conditional PatchGAN that judges the filled image (module doc)."""

  name = "inpaint_adversarial"

  def d_candidate(self, image, model_input):
    return composite(image, model_input)
