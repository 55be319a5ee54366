"""Damage-mask prediction (`config.task = 'mask'`): where did the corruption destroy content?

The corruption chain's mask (`corruptions.chain`: 1 where random_blocks / salt_and_pepper
destroyed a pixel, any fill) is the target; the model (a U-Net with
`model.kwargs.out_channels=1, residual=False`) outputs one logit per pixel. Loss
(`config.loss`, name -> weight): `bce` (sigmoid binary cross-entropy, per-pixel mean) and
`dice` (1 - soft Dice of the sigmoid probabilities, per image, batch mean).

Eval columns, per image (pixels predicted damaged where logit > 0):
  iou, f1, precision, recall     of the thresholded prediction; a ratio whose denominator is 0
                                 (nothing damaged and nothing predicted, ...) counts as 1
  psnr, ssim                     of the probability map against the 0/1 mask (what the grid
                                 captions and logs show)
  input_psnr, input_ssim         of the all-zeros map ('no damage') against the mask: the
                                 trivial baseline; +inf PSNR for an undamaged image
  loss                           the configured BCE + Dice
best/ keeps the checkpoint of the highest mean IoU (`selection_metric`). Grid panels:
corrupted input | predicted probability | true mask.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections
import optax

from restoration import corruptions
from restoration.eval import metrics
from restoration import models
from restoration.tasks import base
from restoration.tasks import supervised

MASK_LOSSES = ("bce", "dice")
_EPS = 1.0  # Dice smoothing (pixels): keeps an empty mask's loss finite, gradients bounded


def bce(logits: jax.Array, mask: jax.Array) -> jax.Array:
  return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, mask))


def dice(logits: jax.Array, mask: jax.Array) -> jax.Array:
  p = jax.nn.sigmoid(logits)
  inter = jnp.sum(p * mask, axis=(1, 2, 3))
  total = jnp.sum(p, axis=(1, 2, 3)) + jnp.sum(mask, axis=(1, 2, 3))
  return jnp.mean(1.0 - (2.0 * inter + _EPS) / (total + _EPS))


def make_mask_loss(weights) -> Callable[[jax.Array, jax.Array], jax.Array]:
  """`loss(logits, mask)`: the weighted sum of `bce` / `dice`; ValueError naming config.loss."""
  weights = dict(weights)
  bad = sorted(set(weights) - set(MASK_LOSSES))
  if bad or not weights:
    raise ValueError(f"config.loss={weights}: task 'mask' takes losses {list(MASK_LOSSES)} "
                     "(name -> weight)")
  for name, w in weights.items():
    if not isinstance(w, (int, float)) or isinstance(w, bool) or w < 0:
      raise ValueError(f"config.loss.{name}: weight must be a number >= 0, got {w!r}")
  if not any(weights.values()):
    raise ValueError("config.loss: all weights are 0; nothing would be optimised")
  fns = {"bce": bce, "dice": dice}
  terms = [(fns[n], float(w)) for n, w in sorted(weights.items()) if w]

  def loss(logits, mask):
    logits = logits.astype(jnp.float32)
    return sum(w * fn(logits, mask) for fn, w in terms)

  return loss


def _ratio(num: jax.Array, den: jax.Array) -> jax.Array:
  return jnp.where(den > 0, num / jnp.maximum(den, 1.0), 1.0)


def mask_scores(logits: jax.Array, mask: jax.Array) -> dict[str, jax.Array]:
  """Per-image IoU, F1, precision and recall of `logits > 0` against a 0/1 mask [N, H, W, 1]."""
  pred = (logits > 0).astype(jnp.float32)
  truth = (mask > 0.5).astype(jnp.float32)
  tp = jnp.sum(pred * truth, axis=(1, 2, 3))
  fp = jnp.sum(pred * (1 - truth), axis=(1, 2, 3))
  fn = jnp.sum((1 - pred) * truth, axis=(1, 2, 3))
  return {"iou": _ratio(tp, tp + fp + fn), "f1": _ratio(2 * tp, 2 * tp + fp + fn),
          "precision": _ratio(tp, tp + fp), "recall": _ratio(tp, tp + fn)}


class MaskInference(base.Inference):
  """Logits of the damage mask; measured with IoU / F1 / precision / recall."""

  selection_metric = "iou"

  def make_loss(self, config: ml_collections.ConfigDict):
    return make_mask_loss(config.loss)

  def prepare(self, corrupt, seed, images, index):
    """(corrupted image, the chain's mask): pairs are not used by this task."""
    clean = images.astype(jnp.float32) / 255.0
    return corruptions.per_example(corrupt, jax.random.key(seed), clean, index)

  def measure(self, output, corrupted, clean, *, variables=None):
    del variables  # not a likelihood model
    del corrupted
    mask = clean  # `prepare`'s target
    prob = jax.nn.sigmoid(output.astype(jnp.float32))
    zeros = jnp.zeros_like(mask)
    return {**mask_scores(output, mask),
            "psnr": metrics.psnr(prob, mask), "ssim": metrics.ssim(prob, mask),
            "input_psnr": metrics.psnr(zeros, mask), "input_ssim": metrics.ssim(zeros, mask),
            "loss": jax.vmap(lambda o, m: self.loss_fn(o[None], m[None]))(output, mask)}

  def show(self, model_input, output, target):
    c = model_input.shape[-1]
    grow = lambda m: jnp.broadcast_to(m, m.shape[:-1] + (c,))  # noqa: E731
    return model_input, grow(self.to_image(output)), grow(target)

  def to_image(self, output):
    """Restore mode writes the damage probability (white = damaged)."""
    return jax.nn.sigmoid(output.astype(jnp.float32))


class MaskTask(supervised.SupervisedTask):
  """corrupted crop -> mask logits, against the corruption chain's mask."""

  name = "mask"
  inference_class = MaskInference
  same_shape_input = False
  output_hint = "set model.kwargs.out_channels=1 and residual=False (one logit per pixel)"

  def __init__(self, config, **kwargs):
    require_masking(config, "mask")
    super().__init__(config, **kwargs)

  def training_loss(self, config):
    """BCE / Dice on the logits (`make_mask_loss`): no perceptual term, no consts."""
    loss = self.inference.loss_fn
    return _NoConstsLoss(loss)

  def example(self, step_key, device_key, batch, consts):
    clean = self.clean_batch(jax.random.fold_in(device_key, supervised.SAMPLE_STREAM), batch,
                             consts)
    return supervised.corrupt_batch(self.corrupt, step_key, clean, with_mask=True)


class _NoConstsLoss:
  """A `(logits, mask) -> loss` as the training loss contract `(.., consts) -> (loss, {})`."""

  def __init__(self, fn):
    self.fn = fn

  def consts(self) -> dict:
    return {}

  def __call__(self, output, target, consts):
    del consts
    return self.fn(output, target), {}


def require_masking(config: ml_collections.ConfigDict, task: str) -> None:
  """Task `task` needs the chain's mask and a non-residual model (its output is not the
  input plus a correction); ValueError naming config.corruption / config.model.kwargs."""
  names = [s.get("name") for s in config.corruption]
  if not any(n in corruptions.MASKING for n in names):
    raise ValueError(f"config.corruption={names} has no masking step; task {task!r} needs one "
                     f"of {list(corruptions.MASKING)} (its mask is the damage to find)")
  try:
    residual = models.model_fields(config.model.name).get("residual", False)
  except ValueError as e:
    raise ValueError(f"config.model.name: {e}") from e
  if config.model.kwargs.get("residual", residual):
    raise ValueError(f"config.model.kwargs.residual must be False for task {task!r} (the "
                     "output is not the input plus a correction)")
