"""Perceptual (VGG feature) loss (Johnson et al., "Perceptual Losses for Real-Time Style
Transfer and Super-Resolution", ECCV 2016), configured by `config.perceptual`.

`make_perceptual(config.perceptual)` validates the block, reads the VGG19 weights file once
and returns `(loss_fn, vgg_variables)`. `loss_fn(restored, clean, vgg_variables)` is
sum_i layer_weights[i] * distance(VGG_i(restored), VGG_i(clean)), each distance averaged over
batch, positions and channels. The VGG variables are an explicit argument (pass them to the
jitted step as a replicated constant) rather than closed over, so ~80 MB of weights are not
baked into every compiled program; `stop_gradient` keeps any gradient from reaching them.
"""

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from restoration.weights import vgg
from restoration.models.vgg import VGG19, VGG19_WIDTHS, trim_variables, validate_layers

PerceptualFn = Callable[[jax.Array, jax.Array, Any], jax.Array]
DISTANCES: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {
    "l1": lambda a, b: jnp.mean(jnp.abs(a - b)),
    "l2": lambda a, b: jnp.mean(jnp.square(a - b)),
}
_F = "config.perceptual"


def validate(cfg: Mapping[str, Any]) -> None:
  """Raises ValueError naming `config.perceptual.<field>` for a bad value (file not read)."""
  layers = cfg["layers"]
  validate_layers(layers, f"{_F}.layers")
  weights = cfg["layer_weights"]
  if isinstance(weights, (int, float, str)) or len(weights) != len(layers):
    raise ValueError(f"{_F}.layer_weights={weights!r}: needs one number per layer in "
                     f"{_F}.layers ({len(layers)})")
  if any(not isinstance(w, (int, float)) or w < 0 for w in weights) or not any(weights):
    raise ValueError(f"{_F}.layer_weights={weights!r}: numbers >= 0, not all 0")
  if cfg["distance"] not in DISTANCES:
    raise ValueError(f"{_F}.distance={cfg['distance']!r}; allowed: {sorted(DISTANCES)}")


def make_perceptual(cfg: Mapping[str, Any], *, widths: tuple[int, ...] = VGG19_WIDTHS,
                    dtype: Any = jnp.float32) -> tuple[PerceptualFn, dict]:
  """Builds the loss from `config.perceptual`; returns (loss_fn, vgg_variables).

  `vgg_variables` holds only the convs the deepest requested layer needs. Inputs of
  `loss_fn`: float NHWC in [0, 1], 1 or 3 channels (same shape); it returns a float32
  scalar. `widths` (VGG19 channels per block) differ from the real VGG19 only in tests;
  `dtype` is the VGG computation dtype (bfloat16 halves its cost on GPU/TPU).
  """
  validate(cfg)
  layers = tuple(cfg["layers"])
  variables = vgg.load_vgg19(cfg["weights_path"], field=f"{_F}.weights_path",
                                     widths=widths)
  variables = jax.tree.map(jnp.asarray, trim_variables(variables, layers))
  vgg19 = VGG19(layers=layers, widths=widths, dtype=dtype)
  terms = [(name, float(w)) for name, w in zip(layers, cfg["layer_weights"]) if w]
  distance = DISTANCES[cfg["distance"]]

  def loss_fn(restored: jax.Array, clean: jax.Array, vgg_variables: Any) -> jax.Array:
    if restored.shape != clean.shape:
      raise ValueError(f"perceptual loss: restored {restored.shape} != clean {clean.shape}")
    n = restored.shape[0]
    # One VGG pass over both halves of the batch; the clean features are targets only.
    both = jnp.concatenate([restored, jax.lax.stop_gradient(clean)]).astype(jnp.float32)
    feats = vgg19.apply(jax.lax.stop_gradient(vgg_variables), both)
    total = jnp.zeros((), jnp.float32)
    for name, w in terms:
      f = feats[name].astype(jnp.float32)
      total = total + w * distance(f[:n], jax.lax.stop_gradient(f[n:]))
    return total

  return loss_fn, variables
