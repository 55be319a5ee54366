"""The training state and how it is built from a config (shared by train and evaluate)."""

from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import optax

from restoration import models
from restoration import parallel

DISCRIMINATORS = frozenset({"patchgan"})  # take (corrupted, candidate): not trainable alone
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


@flax.struct.dataclass
class TrainState:
  """Everything that changes during training; nothing derivable (the model, tx, RNG keys).

  RNG is derived from (config.seed, step) inside the step, so it is not part of the state.
  `ema_params` is None unless `config.ema_decay > 0`.
  """
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  ema_params: Any = None

  def eval_variables(self) -> dict[str, Any]:
    """Variables for inference: EMA params when kept, else the raw params."""
    params = self.ema_params if self.ema_params is not None else self.params
    variables = {"params": params}
    if self.batch_stats:
      variables["batch_stats"] = self.batch_stats
    return variables


def build_model(config: ml_collections.ConfigDict) -> nn.Module:
  """The config's model; raises ValueError naming `config.model.*` for bad values."""
  if config.model.dtype not in DTYPES:
    raise ValueError(f"config.model.dtype={config.model.dtype!r}; allowed: {sorted(DTYPES)}")
  if config.model.name in DISCRIMINATORS:
    raise ValueError(f"config.model.name={config.model.name!r} is a discriminator, not a "
                     "restorer; choose one of "
                     f"{sorted(set(models.MODELS) - DISCRIMINATORS)}")
  kwargs = dict(config.model.kwargs)
  if "bn_axis_name" in models.model_fields(config.model.name):
    # Sync BN over the trainer's device axis: batch statistics of the global batch.
    kwargs.setdefault("bn_axis_name", parallel.AXIS)
  try:
    return models.get_model(config.model.name, dtype=DTYPES[config.model.dtype], **kwargs)
  except (TypeError, ValueError) as e:
    raise ValueError(f"config.model (name={config.model.name!r}, kwargs={kwargs}): {e}") from e


def input_shape(config: ml_collections.ConfigDict, batch: int = 1) -> tuple[int, int, int, int]:
  return (batch, config.patch_size, config.patch_size, config.data.channels)


def create_train_state(config: ml_collections.ConfigDict, model: nn.Module,
                       tx: optax.GradientTransformation) -> TrainState:
  """Initialises params from a key derived from config.seed on its own stream (not a step's)."""
  key = jax.random.fold_in(jax.random.key(config.seed), 0x1A17)  # init stream, not a step
  x = jnp.zeros(input_shape(config), jnp.float32)
  variables = model.init({"params": key, "dropout": key}, x, train=False)
  params = variables["params"]
  batch_stats = variables.get("batch_stats", {})
  ema = params if config.ema_decay > 0 else None
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                    opt_state=tx.init(params), ema_params=ema)


def abstract_train_state(config: ml_collections.ConfigDict, model: nn.Module,
                         tx: optax.GradientTransformation) -> TrainState:
  """Shapes and dtypes of the state, without computing anything (for restoring)."""
  return jax.eval_shape(lambda: create_train_state(config, model, tx))
