"""Small helpers shared by the restoration models (residual output; padding is `image_ops`).

Every restorer follows one data contract (see `restoration.models`): float NHWC in, same
height/width out, computation in the module's `dtype`, output cast back to the input dtype.
The helpers below implement the shared parts of that contract so each model stays short.
"""

from typing import Any

import jax
import jax.numpy as jnp

Dtype = Any


def residual_base(x: jax.Array, out_channels: int, model: str) -> jax.Array:
  """The input as seen by a residual output with `out_channels` channels.

  Same channel count: `x` itself. One input channel and more output channels (grayscale ->
  RGB colourisation): the gray input broadcast to every output channel, so a residual
  model starts from the gray image and predicts the colour correction. Any other mismatch
  is ambiguous and raises (set `residual=False`).
  """
  c = x.shape[-1]
  if c == out_channels:
    return x
  if c == 1:
    return jnp.broadcast_to(x, x.shape[:-1] + (out_channels,))
  raise ValueError(
      f"{model}: residual=True needs out_channels == in_channels or in_channels == 1, got "
      f"{c} -> {out_channels}; set residual=False")


def finish(y: jax.Array, x: jax.Array, *, residual: bool, sign: float = 1.0,
           model: str = "model") -> jax.Array:
  """Casts the network output `y` to `x.dtype` and adds the (broadcast) input if residual.

  The residual sum is done in the input's precision (float32), not the compute dtype, so a
  bfloat16 model still passes the identity through exactly. `sign=-1` gives DnCNN's
  `input - predicted_noise`.
  """
  y = y.astype(x.dtype)
  if residual:
    y = residual_base(x, y.shape[-1], model) + sign * y
  return y
