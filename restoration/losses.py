"""Reconstruction losses, configured as a weighted sum: `config.loss = {'mse': 1.0, 'ssim': 0.1}`.

Every loss maps (restored, clean), float NHWC in [0, 1], to a scalar averaged over the batch.
"""

from collections.abc import Callable, Mapping

import dm_pix as pix
import jax
import jax.numpy as jnp

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


def validate(weights: Mapping[str, float]) -> None:
  """Raises ValueError for unknown loss names, non-numeric or negative weights, or no loss."""
  if not weights:
    raise ValueError(f"config.loss is empty; give name -> weight with names from {sorted(LOSSES)}")
  for name, w in weights.items():
    if name not in LOSSES:
      raise ValueError(f"config.loss: unknown loss {name!r}; valid names: {sorted(LOSSES)}")
    if not isinstance(w, (int, float)) or w < 0:
      raise ValueError(f"config.loss.{name}: weight must be a number >= 0, got {w!r}")
  if all(w == 0 for w in weights.values()):
    raise ValueError("config.loss: all weights are 0; nothing would be optimised")


def make_loss(weights: Mapping[str, float]) -> LossFn:
  """Returns `loss(restored, clean)`: the weighted sum of the named losses."""
  validate(weights)
  terms = [(LOSSES[name], float(w)) for name, w in sorted(weights.items()) if w]

  def loss(restored: jax.Array, clean: jax.Array) -> jax.Array:
    restored = restored.astype(jnp.float32)
    return sum(w * fn(restored, clean) for fn, w in terms)

  return loss
