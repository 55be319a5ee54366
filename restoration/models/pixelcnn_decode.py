"""Likelihood, sampling and deterministic decoding for autoregressive (PixelCNN) models.

The model is any `apply_fn(variables, x_uint8, cond) -> logits (N, H, W, C, 256)` whose
logits at sub-pixel (i, j, c) depend only on sub-pixels of `x` before it in raster-then-
channel order (e.g. `functools.partial(PixelCNN(...).apply, train=False)`).

Decoding cost: generation is sequential. `sample`, `decode_mode` and `decode_mean` run ONE
jitted `lax.fori_loop` over the H * W * C sub-pixel positions; each step re-runs the whole
network on the partially decoded batch and keeps the logits of one sub-pixel, so an image
costs H * W * C full forward passes (e.g. 3,072 for 32x32 RGB), batched over the N images.
Pass the same `apply_fn` object on every call to reuse the compiled loop (it is a static
argument of the jit, compared by identity for a `functools.partial`).
"""

import functools
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

LEVELS = 256
ApplyFn = Callable[[Any, jax.Array, jax.Array], jax.Array]


def nll(logits: jax.Array, clean: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Exact negative log-likelihood of uint8 images under per-sub-pixel softmax logits.

  Args:
    logits: float (N, H, W, C, 256).
    clean: integer (N, H, W, C), values 0..255.

  Returns:
    (nats, bits_per_dim): per-image total NLL in nats, shape (N,), and the same per
    sub-pixel in bits, nats / (H * W * C * ln 2); uniform logits give exactly 8 bits/dim.
  """
  if logits.ndim != 5 or logits.shape[-1] != LEVELS or logits.shape[:-1] != clean.shape:
    raise ValueError(f"nll: logits {logits.shape} must be clean.shape + (256,); clean "
                     f"{clean.shape}")
  if not jnp.issubdtype(clean.dtype, jnp.integer):
    raise ValueError(f"nll: clean must be integer (uint8 0..255), got {clean.dtype}")
  per_sub = optax.softmax_cross_entropy_with_integer_labels(
      logits.astype(jnp.float32), clean.astype(jnp.int32))
  nats = per_sub.reshape(per_sub.shape[0], -1).sum(axis=1)
  return nats, nats / (math.prod(clean.shape[1:]) * math.log(2.0))


def sample(apply_fn: ApplyFn, variables: Any, cond: jax.Array, key: jax.Array,
           temperature: float = 1.0, channels: int | None = None) -> jax.Array:
  """Ancestral sample x ~ p(x | cond), uint8 (N, H, W, channels).

  `channels` defaults to cond's. Sub-pixel p (raster-then-channel index) is drawn with
  `fold_in(key, p)` from softmax(logits / temperature): the same key gives the same images.
  Cost: H * W * channels forward passes (module docstring).
  """
  if not temperature > 0:
    raise ValueError(f"sample: temperature must be > 0, got {temperature}")
  return _decode(apply_fn, variables, cond, key, jnp.float32(temperature), "sample",
                 _channels(cond, channels))


def decode_mode(apply_fn: ApplyFn, variables: Any, cond: jax.Array,
                channels: int | None = None) -> jax.Array:
  """Greedy decode: each sub-pixel in turn set to its most probable value given the ones
  already decoded (not the joint mode). uint8 (N, H, W, channels); deterministic."""
  return _decode(apply_fn, variables, cond, jax.random.key(0), jnp.float32(1), "mode",
                 _channels(cond, channels))


def decode_mean(apply_fn: ApplyFn, variables: Any, cond: jax.Array,
                channels: int | None = None) -> jax.Array:
  """Greedy decode with each sub-pixel set to its conditional expectation sum_v v p(v),
  rounded to the nearest integer (the network reads uint8 context). uint8; deterministic."""
  return _decode(apply_fn, variables, cond, jax.random.key(0), jnp.float32(1), "mean",
                 _channels(cond, channels))


def _channels(cond: jax.Array, channels: int | None) -> int:
  if cond.ndim != 4:
    raise ValueError(f"cond must be NHWC, got shape {cond.shape}")
  channels = cond.shape[-1] if channels is None else channels
  if channels < 1:
    raise ValueError(f"channels must be >= 1, got {channels}")
  return channels


@functools.partial(jax.jit, static_argnames=("apply_fn", "mode", "channels"))
def _decode(apply_fn: ApplyFn, variables: Any, cond: jax.Array, key: jax.Array,
            temperature: jax.Array, mode: str, channels: int) -> jax.Array:
  n, h, w = cond.shape[:3]
  levels = jnp.arange(LEVELS, dtype=jnp.float32)

  def step(p, x):
    i, rest = jnp.divmod(p, w * channels)
    j, c = jnp.divmod(rest, channels)
    logits = apply_fn(variables, x, cond)
    logits = jax.lax.dynamic_index_in_dim(logits, i, axis=1, keepdims=False)
    logits = jax.lax.dynamic_index_in_dim(logits, j, axis=1, keepdims=False)
    logits = jax.lax.dynamic_index_in_dim(logits, c, axis=1, keepdims=False)  # (N, 256)
    if mode == "sample":
      value = jax.random.categorical(jax.random.fold_in(key, p), logits / temperature)
    elif mode == "mode":
      value = jnp.argmax(logits, axis=-1)
    else:
      value = jnp.round(jax.nn.softmax(logits, axis=-1) @ levels)
    return x.at[:, i, j, c].set(value.astype(jnp.uint8))

  x0 = jnp.zeros((n, h, w, channels), jnp.uint8)
  return jax.lax.fori_loop(0, h * w * channels, step, x0)
