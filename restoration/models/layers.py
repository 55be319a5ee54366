"""Small helpers shared by the restoration models (padding, cropping, residual output).

Every restorer follows one data contract (see `restoration.models`): float NHWC in, same
height/width out, computation in the module's `dtype`, output cast back to the input dtype.
The helpers below implement the shared parts of that contract so each model stays short.
"""

from typing import Any

import jax
import jax.numpy as jnp

Dtype = Any


def pad_to_multiple(x: jax.Array, multiple: int, mode: str = "reflect") -> jax.Array:
  """Pads NHWC `x` at the bottom/right so that H and W are multiples of `multiple`.

  `mode` is a `jnp.pad` mode. 'reflect' needs the pad to be smaller than the side it
  reflects; for sides that are too small (e.g. a 5-pixel image padded to 16) that side falls
  back to 'edge' so any size >= 1 works. Undo with `crop_to(y, h, w)`.
  """
  h, w = x.shape[1], x.shape[2]
  ph, pw = (-h) % multiple, (-w) % multiple
  for axis, (pad, size) in ((1, (ph, h)), (2, (pw, w))):
    if pad == 0:
      continue
    m = "edge" if (mode == "reflect" and pad >= size) else mode
    widths = [(0, 0)] * x.ndim
    widths[axis] = (0, pad)
    x = jnp.pad(x, widths, mode=m)
  return x


def crop_to(x: jax.Array, h: int, w: int) -> jax.Array:
  """Crops NHWC `x` to its top-left `h` x `w` (undoes `pad_to_multiple`)."""
  return x[:, :h, :w, :]


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
