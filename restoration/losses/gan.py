"""Adversarial losses on discriminator logits, and the R1 gradient penalty.

Kinds (`KINDS`), with r = D(real) and f = D(fake) logits of any shape (e.g. PatchGAN's
(N, h, w, 1)), each term averaged over all its elements:

  vanilla  D: BCE(r, 1) + BCE(f, 0)         G: BCE(f, 1)   (non-saturating; Goodfellow 2014)
  lsgan    D: (r - 1)^2 + f^2               G: (f - 1)^2   (Mao et al. 2017)
  hinge    D: relu(1 - r) + relu(1 + f)     G: -f          (Lim & Ye 2017; Miyato 2018)

The discriminator loss is the sum of its real and fake terms; a caller wanting pix2pix's
"D loss x 0.5" scales it. Logits are promoted to float32 (a bfloat16 D still gets a
float32 loss).
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

KINDS = ("vanilla", "lsgan", "hinge")


def validate_kind(kind: str, field: str = "gan loss kind") -> None:
  if kind not in KINDS:
    raise ValueError(f"{field}={kind!r}; allowed: {', '.join(KINDS)}")


def _bce(logits: jax.Array, label: float) -> jax.Array:
  return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, jnp.full_like(logits, label)))


def discriminator_loss(kind: str, real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """D's loss: push D(real) up and D(fake) down (scalar, float32)."""
  validate_kind(kind)
  r, f = real_logits.astype(jnp.float32), fake_logits.astype(jnp.float32)
  if kind == "vanilla":
    return _bce(r, 1.0) + _bce(f, 0.0)
  if kind == "lsgan":
    return jnp.mean(jnp.square(r - 1.0)) + jnp.mean(jnp.square(f))
  return jnp.mean(jax.nn.relu(1.0 - r)) + jnp.mean(jax.nn.relu(1.0 + f))


def generator_loss(kind: str, fake_logits: jax.Array) -> jax.Array:
  """G's adversarial loss: make D call its output real (scalar, float32)."""
  validate_kind(kind)
  f = fake_logits.astype(jnp.float32)
  if kind == "vanilla":
    return _bce(f, 1.0)
  if kind == "lsgan":
    return jnp.mean(jnp.square(f - 1.0))
  return -jnp.mean(f)


def r1_penalty(d_apply: Callable[[jax.Array], jax.Array], real: jax.Array,
               gamma: float = 10.0) -> jax.Array:
  """R1 regulariser (Mescheder et al., "Which Training Methods for GANs do actually
  Converge?", ICML 2018): gamma / 2 * E_batch ||d sum(D(x)) / d x||^2 at real images x.

  `d_apply(x) -> logits` closes over D's variables (and its condition, for a conditional
  D). Summing the logits first gives each example's gradient in one backward pass, since
  example i's logits depend only on x_i (true unless D uses batch statistics: apply a
  BatchNorm D in eval mode here). Differentiable w.r.t. D's parameters (add it to D's loss).
  """
  grads = jax.grad(lambda x: jnp.sum(d_apply(x).astype(jnp.float32)))(real)
  per_example = jnp.sum(jnp.square(grads.astype(jnp.float32)),
                        axis=tuple(range(1, grads.ndim)))
  return 0.5 * gamma * jnp.mean(per_example)
