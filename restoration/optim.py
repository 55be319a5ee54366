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


def validate(config: ml_collections.ConfigDict, block: ml_collections.ConfigDict | None = None,
             field: str = "config.optimizer") -> None:
  """Raises ValueError naming the bad field of `block` (default `config.optimizer`), which
  `field` names (e.g. 'config.adversarial.d_optimizer')."""
  o = config.optimizer if block is None else block
  if o.name not in OPTIMIZERS:
    raise ValueError(f"{field}.name={o.name!r}; allowed: {list(OPTIMIZERS)}")
  if o.schedule not in SCHEDULES:
    raise ValueError(f"{field}.schedule={o.schedule!r}; allowed: {list(SCHEDULES)}")
  if not o.learning_rate > 0:
    raise ValueError(f"{field}.learning_rate must be > 0, got {o.learning_rate}")
  if o.warmup_steps < 0 or o.warmup_steps >= max(config.total_steps, 1) and o.warmup_steps:
    raise ValueError(f"{field}.warmup_steps={o.warmup_steps} must be in "
                     f"[0, total_steps={config.total_steps})")
  if o.grad_clip_norm < 0:
    raise ValueError(f"{field}.grad_clip_norm must be >= 0, got {o.grad_clip_norm}")
  if o.schedule == "step" and not all(0 < f < 1 for f in o.decay_steps):
    raise ValueError(f"{field}.decay_steps={tuple(o.decay_steps)}: fractions of "
                     "total_steps in (0, 1)")
  if not 0 <= o.b1 < 1:
    raise ValueError(f"{field}.b1 must be in [0, 1), got {o.b1}")
  if not o.get("eps", 1e-8) > 0:
    raise ValueError(f"{field}.eps must be > 0, got {o.eps}")
  if not 0 < o.decay_factor <= 1:
    raise ValueError(f"{field}.decay_factor must be in (0, 1], got {o.decay_factor}")
  if not 0 <= o.end_factor <= 1:
    raise ValueError(f"{field}.end_factor must be in [0, 1], got {o.end_factor}")
  if not isinstance(o.plateau_patience, int) or o.plateau_patience < 1:
    raise ValueError(f"{field}.plateau_patience must be an integer >= 1, got "
                     f"{o.plateau_patience!r}")


def make_schedule(config: ml_collections.ConfigDict,
                  block: ml_collections.ConfigDict | None = None) -> optax.Schedule:
  """The base schedule of `block` (default `config.optimizer`), without the plateau factor
  (which depends on the loss history)."""
  o, total = config.optimizer if block is None else block, config.total_steps
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
    config: ml_collections.ConfigDict, *, block: ml_collections.ConfigDict | None = None,
    field: str = "config.optimizer",
) -> tuple[optax.GradientTransformationExtraArgs, optax.Schedule]:
  """Returns (tx, schedule) of `block` (default `config.optimizer`; a second model's own
  block, e.g. `config.adversarial.d_optimizer`, whose errors name `field`). `tx.update`
  accepts `value=loss` (used by the plateau schedule)."""
  validate(config, block, field)
  o = config.optimizer if block is None else block
  schedule = make_schedule(config, o)
  # inject_hyperparams keeps the learning rate of each update in the state: the logged value.
  # The other constants stay static: as injected float32 arrays, Adam's bias correction
  # would round differently from optax.adam's Python floats.
  adam_static = ("b1", "b2", "eps", "eps_root")
  if o.name == "adam":
    base = optax.inject_hyperparams(optax.adam, static_args=adam_static)(
        learning_rate=schedule, b1=o.b1, eps=o.get("eps", 1e-8))
  elif o.name == "adamw":
    base = optax.inject_hyperparams(optax.adamw, static_args=adam_static)(
        learning_rate=schedule, b1=o.b1, eps=o.get("eps", 1e-8), weight_decay=o.weight_decay)
  else:
    base = optax.inject_hyperparams(optax.sgd, static_args=("momentum", "nesterov"))(
        learning_rate=schedule, momentum=o.momentum or None)
  parts = []
  if o.grad_clip_norm:
    parts.append(optax.clip_by_global_norm(o.grad_clip_norm))
  parts.append(base)
  if o.schedule == "plateau":
    parts.append(optax.contrib.reduce_on_plateau(
        factor=o.decay_factor, patience=o.plateau_patience,
        accumulation_size=config.log_every_steps))
  return optax.chain(*parts), schedule


def learning_rate(schedule: optax.Schedule, opt_state, new_opt_state, step: jax.Array
                  ) -> jax.Array:
  """Learning rate of the update that turned `opt_state` into `new_opt_state`.

  The injected schedule value of that update times the reduce-on-plateau scale in effect
  before it (`schedule` and `step` are used only when no injected value is found).
  """
  scale = jnp.float32(1.0)
  for s in jax.tree.leaves(opt_state, is_leaf=_is_plateau):
    if _is_plateau(s):
      scale = s.scale
  lr = None
  for s in jax.tree.leaves(new_opt_state, is_leaf=_is_injected):
    if _is_injected(s):
      lr = s.hyperparams["learning_rate"]
  return (schedule(step) if lr is None else lr) * scale


def _is_plateau(x) -> bool:
  return isinstance(x, optax.contrib.ReduceLROnPlateauState)


def _is_injected(x) -> bool:
  return isinstance(x, optax.InjectHyperparamsState)
