"""Reconstruction losses, configured as a weighted sum: `config.loss = {'mse': 1.0, 'ssim': 0.1}`.

Every loss maps (restored, clean), float NHWC in [0, 1], to a scalar averaged over the batch.
`perceptual` (`PERCEPTUAL`) is the VGG feature loss of `restoration.losses.perceptual`: it needs the
VGG variables, so only `TrainingLoss` computes it (taking them as a step constant);
`make_loss` (eval tables) sums the pixel terms.
"""

from collections.abc import Callable, Mapping
from typing import Any

import dm_pix as pix
import jax
import jax.numpy as jnp
import ml_collections

from restoration.losses import perceptual

LossFn = Callable[[jax.Array, jax.Array], jax.Array]


def mse(restored: jax.Array, clean: jax.Array) -> jax.Array:
  return jnp.mean(jnp.square(restored - clean))


def l1(restored: jax.Array, clean: jax.Array) -> jax.Array:
  return jnp.mean(jnp.abs(restored - clean))


def charbonnier(restored: jax.Array, clean: jax.Array, eps: float = 1e-3) -> jax.Array:
  # Differentiable L1 (Lai et al., LapSRN); eps**2 inside the root keeps the gradient finite at 0.
  return jnp.mean(jnp.sqrt(jnp.square(restored - clean) + eps**2))


def ssim_loss(restored: jax.Array, clean: jax.Array) -> jax.Array:
  # 1 - SSIM with the standard 11x11 Gaussian window; images must be at least 11 px a side.
  return 1.0 - jnp.mean(pix.ssim(restored, clean, max_val=1.0))


LOSSES: dict[str, LossFn] = {"mse": mse, "l1": l1, "charbonnier": charbonnier, "ssim": ssim_loss}
PERCEPTUAL = "perceptual"
VGG_CONST = "vgg"   # key of the VGG variables in a task's consts


def validate(weights: Mapping[str, float]) -> None:
  """Raises ValueError for unknown loss names, non-numeric or negative weights, or no loss."""
  if not weights:
    raise ValueError(f"config.loss is empty; give name -> weight with names from {sorted(LOSSES)}")
  for name, w in weights.items():
    if name not in LOSSES and name != PERCEPTUAL:
      raise ValueError(f"config.loss: unknown loss {name!r}; valid names: "
                       f"{sorted([*LOSSES, PERCEPTUAL])}")
    if not isinstance(w, (int, float)) or w < 0:
      raise ValueError(f"config.loss.{name}: weight must be a number >= 0, got {w!r}")
  if all(w == 0 for w in weights.values()):
    raise ValueError("config.loss: all weights are 0; nothing would be optimised")


def make_loss(weights: Mapping[str, float]) -> LossFn:
  """Returns `loss(restored, clean)`: the weighted sum of the named pixel losses (all but
  `perceptual`; 0 when it is the only one)."""
  validate(weights)
  terms = [(LOSSES[name], float(w)) for name, w in sorted(weights.items())
           if w and name != PERCEPTUAL]

  def loss(restored: jax.Array, clean: jax.Array) -> jax.Array:
    restored = restored.astype(jnp.float32)
    return sum((w * fn(restored, clean) for fn, w in terms), jnp.zeros((), jnp.float32))

  return loss


class TrainingLoss:
  """`config.loss` as a training objective: the pixel terms plus `perceptual` x VGG loss.

  `consts()` holds the VGG variables ({VGG_CONST: ...}, empty without a perceptual term):
  the task passes them to every step as a replicated constant, so they are neither baked
  into the compiled step nor seen by an optimizer, and `perceptual` stops their gradient.
  Reads `config.loss`, `config.perceptual` (the weights file, once) and `config.model.dtype`
  (the VGG's compute dtype).
  """

  def __init__(self, config: ml_collections.ConfigDict):
    weights = dict(config.loss)
    self.pixel = make_loss(weights)
    self.perceptual_weight = float(weights.get(PERCEPTUAL, 0.0))
    self._vgg: dict = {}
    if self.perceptual_weight:
      cfg = config.perceptual
      widths = tuple(cfg.widths)
      if len(widths) != 5 or not all(isinstance(w, int) and w > 0 for w in widths):
        raise ValueError(f"config.perceptual.widths={widths!r}: 5 positive integers (VGG19's "
                         "are (64, 128, 256, 512, 512))")
      self._perceptual_fn, self._vgg = perceptual.make_perceptual(
          cfg, widths=widths, dtype=jnp.dtype(config.model.dtype))

  def consts(self) -> dict[str, Any]:
    return {VGG_CONST: self._vgg} if self.perceptual_weight else {}

  def __call__(self, restored: jax.Array, clean: jax.Array, consts: Mapping[str, Any] | None
               ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """(weighted total, {'perceptual': unweighted VGG loss} when it is on)."""
    total = self.pixel(restored, clean)
    terms = {}
    if self.perceptual_weight:
      terms[PERCEPTUAL] = self._perceptual_fn(restored.astype(jnp.float32), clean,
                                              consts[VGG_CONST])
      total = total + self.perceptual_weight * terms[PERCEPTUAL]
    return total, terms
