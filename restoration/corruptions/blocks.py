"""Random missing blocks for inpainting (e.g. CIFAR-10 with 10, 50 or 100 blocks)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from restoration.corruptions._common import (PRECISION, ImageShape, batched, check_bool,
                                             check_images, check_number, param_max, to_int,
                                             uniforms)

FILLS = ("zero", "noise", "gray_noise")


def _check_random_blocks(p: dict[str, Any], image_shape: ImageShape) -> dict[str, Any]:
  f = "random_blocks"
  num_blocks = check_number(f, "num_blocks", p["num_blocks"], lo=0, integer=True,
                            allow_range=False)
  block_size = check_number(f, "block_size", p["block_size"], lo=1, integer=True)
  fill = p["fill"]
  if isinstance(fill, str):
    if fill not in FILLS:
      raise ValueError(f"{f}: parameter 'fill' must be one of {list(FILLS)} or a number in "
                       f"[0, 1], got {fill!r}")
  else:
    try:
      fill = check_number(f, "fill", fill, lo=0.0, hi=1.0, allow_range=False)
    except ValueError:
      raise ValueError(f"{f}: parameter 'fill' must be one of {list(FILLS)} or a number in "
                       f"[0, 1], got {fill!r}") from None
  if image_shape is not None:
    h, w = image_shape
    if param_max(block_size) > min(h, w):
      raise ValueError(f"{f}: parameter 'block_size' must be at most the image size "
                       f"min(H, W) = {min(h, w)} for {h}x{w} images (blocks lie fully inside "
                       f"the image), got {block_size!r}")
  return dict(num_blocks=num_blocks, block_size=block_size, fill=fill,
              return_mask=check_bool(f, "return_mask", p["return_mask"]))


def random_blocks(key: jax.Array, images: jax.Array, *, num_blocks: int,
                  block_size: int | tuple[int, int], fill: str | float = "zero",
                  return_mask: bool = False) -> jax.Array | tuple[jax.Array, jax.Array]:
  """Destroys `num_blocks` square blocks per image (blocks may overlap, lie fully inside).

  Args:
    num_blocks: blocks per image (static: Python int >= 0).
    block_size: side length in pixels, or `(min, max)` with a side drawn per block (inclusive).
      Must not exceed min(H, W): a ValueError at trace time otherwise.
    fill: 'zero', 'noise' (uniform [0, 1] per pixel and channel), 'gray_noise' (uniform per
      pixel, the same in every channel: gray noise on a gray photo kept in 3 channels; on
      1-channel images it draws exactly what 'noise' draws) or a constant in [0, 1].
    return_mask: also return the float mask (N, H, W, 1), 1 where content was destroyed.

  The mask is built without materialising one (H, W) plane per block: the per-block row and
  column indicators (num_blocks x H and num_blocks x W) are multiplied, (H x nb) @ (nb x W),
  which counts the blocks covering each pixel in O(num_blocks * (H + W)) memory.
  """
  _, h, w, _ = check_images("random_blocks", images)
  p = _check_random_blocks(dict(num_blocks=num_blocks, block_size=block_size, fill=fill,
                                return_mask=return_mask), (h, w))
  nb, size = p["num_blocks"], p["block_size"]

  def one(k: jax.Array, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    noise_shape = {"noise": x.shape, "gray_noise": x.shape[:-1] + (1,)}.get(p["fill"], (0,))
    u_size, u_y, u_x, u_fill = uniforms(k, (nb,), (nb,), (nb,), noise_shape)
    lo, hi = size if isinstance(size, tuple) else (size, size)
    s = to_int(u_size, lo, hi)
    # Top-left corners uniform over the positions that keep the block inside the image.
    y0 = to_int(u_y, 0, h - s)
    x0 = to_int(u_x, 0, w - s)
    rows, cols = jnp.arange(h), jnp.arange(w)
    in_y = ((rows >= y0[:, None]) & (rows < (y0 + s)[:, None])).astype(jnp.float32)
    in_x = ((cols >= x0[:, None]) & (cols < (x0 + s)[:, None])).astype(jnp.float32)
    hits = jnp.dot(in_y.T, in_x, precision=PRECISION)  # blocks covering each pixel
    mask = (hits > 0.5)[..., None]
    if p["fill"] in ("noise", "gray_noise"):
      value = u_fill.astype(x.dtype)
    elif p["fill"] == "zero":
      value = jnp.zeros((), x.dtype)
    else:
      value = jnp.asarray(p["fill"], x.dtype)
    return jnp.where(mask, value, x), mask.astype(x.dtype)

  out, mask = batched(one, key, images)
  return (out, mask) if p["return_mask"] else out


CHECKS = {"random_blocks": _check_random_blocks}
