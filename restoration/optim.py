"""Optimizer and learning-rate schedule from `config.optimizer` (optax).

Schedules, each after an optional linear warmup: `constant`, `cosine`, `step` (piecewise
constant decay at fractions of total_steps) and `plateau` (optax.contrib.reduce_on_plateau on
the training loss, which the train step passes as `value=`, averaged over windows of
log_every_steps steps; patience counts such windows). The plateau scale lives in the optimizer
state, so it is checkpointed and resumes exactly like everything else.
"""

import jax
import jax.numpy as jnp
import ml_collections
import optax

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine", "step", "plateau")


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the bad `config.optimizer` field."""
  o = config.optimizer
  if o.name not in OPTIMIZERS:
    raise ValueError(f"config.optimizer.name={o.name!r}; allowed: {list(OPTIMIZERS)}")
  if o.schedule not in SCHEDULES:
    raise ValueError(f"config.optimizer.schedule={o.schedule!r}; allowed: {list(SCHEDULES)}")
  if not o.learning_rate > 0:
    raise ValueError(f"config.optimizer.learning_rate must be > 0, got {o.learning_rate}")
  if o.warmup_steps < 0 or o.warmup_steps >= max(config.total_steps, 1) and o.warmup_steps:
    raise ValueError(f"config.optimizer.warmup_steps={o.warmup_steps} must be in "
                     f"[0, total_steps={config.total_steps})")
  if o.grad_clip_norm < 0:
    raise ValueError(f"config.optimizer.grad_clip_norm must be >= 0, got {o.grad_clip_norm}")
  if o.schedule == "step" and not all(0 < f < 1 for f in o.decay_steps):
    raise ValueError(f"config.optimizer.decay_steps={tuple(o.decay_steps)}: fractions of "
                     "total_steps in (0, 1)")
  if not 0 < o.decay_factor <= 1:
    raise ValueError(f"config.optimizer.decay_factor must be in (0, 1], got {o.decay_factor}")
  if not 0 <= o.end_factor <= 1:
    raise ValueError(f"config.optimizer.end_factor must be in [0, 1], got {o.end_factor}")
  if not isinstance(o.plateau_patience, int) or o.plateau_patience < 1:
    raise ValueError(f"config.optimizer.plateau_patience must be an integer >= 1, got "
                     f"{o.plateau_patience!r}")


def make_schedule(config: ml_collections.ConfigDict) -> optax.Schedule:
  """The base schedule (without the plateau factor, which depends on the loss history)."""
  o, total = config.optimizer, config.total_steps
  lr, warm = o.learning_rate, o.warmup_steps
  if o.schedule == "cosine":
    # optax's own warmup + cosine: decay_steps counts the warmup too.
    return optax.warmup_cosine_decay_schedule(
        0.0, lr, warmup_steps=warm, decay_steps=max(total, warm + 1), end_value=lr * o.end_factor)
  if o.schedule == "step":
    main = optax.piecewise_constant_schedule(
        lr, {int(f * total) - warm: o.decay_factor for f in o.decay_steps})
  else:  # constant, plateau
    main = optax.constant_schedule(lr)
  if not warm:
    return main
  return optax.join_schedules([optax.linear_schedule(0.0, lr, warm), main], [warm])


def make_optimizer(
    config: ml_collections.ConfigDict) -> tuple[optax.GradientTransformationExtraArgs, optax.Schedule]:
  """Returns (tx, schedule). `tx.update` accepts `value=loss` (used by the plateau schedule)."""
  validate(config)
  o = config.optimizer
  schedule = make_schedule(config)
  if o.name == "adam":
    base = optax.adam(schedule)
  elif o.name == "adamw":
    base = optax.adamw(schedule, weight_decay=o.weight_decay)
  else:
    base = optax.sgd(schedule, momentum=o.momentum or None)
  parts = []
  if o.grad_clip_norm:
    parts.append(optax.clip_by_global_norm(o.grad_clip_norm))
  parts.append(base)
  if o.schedule == "plateau":
    parts.append(optax.contrib.reduce_on_plateau(
        factor=o.decay_factor, patience=o.plateau_patience,
        accumulation_size=config.log_every_steps))
  return optax.chain(*parts), schedule


def current_learning_rate(schedule: optax.Schedule, opt_state, step: jax.Array) -> jax.Array:
  """Learning rate in effect at `step`: schedule value times any reduce-on-plateau scale."""
  scale = jnp.float32(1.0)
  for s in jax.tree.leaves(opt_state, is_leaf=_is_plateau):
    if _is_plateau(s):
      scale = s.scale
  return schedule(step) * scale


def _is_plateau(x) -> bool:
  return isinstance(x, optax.contrib.ReduceLROnPlateauState)

