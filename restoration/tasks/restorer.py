"""What training a restorer needs in any task (supervised, or as pix2pix's generator).

  make_tx            `config.optimizer`, with the vgg_unet encoder frozen when
                     `config.model.freeze_encoder` (optax.multi_transform + set_to_zero)
  encoder_variables  the VGG19 weights of `config.model.encoder_weights`, read once at
                     construction; `load_pretrained` puts them into a fresh state
  apply_train        the restorer in training mode, BatchNorm statistics threaded
  inference_variables  what eval/restore load: EMA params when kept (+ BN statistics)
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import ml_collections
import optax

from restoration import models
from restoration import optim
from restoration.weights import vgg
from restoration.models import vgg_unet

VGG_UNET = "vgg_unet"
_TRAIN, _FROZEN = "train", "frozen"


def check_switches(config: ml_collections.ConfigDict) -> None:
  """`config.model.freeze_encoder` / `encoder_weights` exist only for vgg_unet."""
  m = config.model
  if not isinstance(m.freeze_encoder, bool):
    raise ValueError(f"config.model.freeze_encoder must be True or False, got "
                     f"{m.freeze_encoder!r}")
  if m.name != VGG_UNET and (m.freeze_encoder or m.encoder_weights):
    raise ValueError(f"config.model.freeze_encoder / encoder_weights need model.name="
                     f"{VGG_UNET!r} (a VGG19 encoder), got {m.name!r}")


def make_tx(config: ml_collections.ConfigDict
            ) -> tuple[optax.GradientTransformationExtraArgs, optax.Schedule]:
  """The restorer's (tx, schedule); frozen encoder leaves get zero updates and no state."""
  check_switches(config)
  tx, schedule = optim.make_optimizer(config)
  if config.model.freeze_encoder:
    labels = lambda params: jax.tree.map(lambda frozen: _FROZEN if frozen else _TRAIN,
                                         vgg_unet.freeze_mask(params))
    tx = optax.multi_transform({_TRAIN: tx, _FROZEN: optax.set_to_zero()}, labels)
  return tx, schedule


def encoder_variables(config: ml_collections.ConfigDict) -> dict | None:
  """VGG19 variables for the vgg_unet encoder (host arrays), or None when not configured."""
  check_switches(config)
  path = config.model.encoder_weights
  if not path:
    return None
  fields = models.model_fields(VGG_UNET)
  fields.update(dict(config.model.kwargs))
  return vgg.load_vgg19(path, field="config.model.encoder_weights",
                                widths=tuple(fields["widths"]))


def load_pretrained(state: Any, encoder: dict | None) -> Any:
  """`state` (with `params`, `ema_params`) whose encoder holds the pretrained weights.

  Done on the host after init rather than inside the compiled init, so ~80 MB of weights
  are not embedded as program constants. Optimizer states (Adam moments, zeros at init)
  do not depend on the parameter values.
  """
  if encoder is None:
    return state
  params = vgg_unet.load_encoder(state.params, encoder)
  ema = params if state.ema_params is not None else None
  return state.replace(params=params, ema_params=ema)


def variables(params: Any, batch_stats: Any) -> dict[str, Any]:
  """Flax variables of a model whose batch_stats may be empty (no BatchNorm)."""
  return {"params": params, "batch_stats": batch_stats} if batch_stats else {"params": params}


def apply_train(model: nn.Module, params: Any, batch_stats: Any, x: jax.Array,
                dropout_key: jax.Array) -> tuple[jax.Array, Any]:
  """(output, new batch_stats) of the restorer in training mode (batch statistics, dropout)."""
  out, updates = model.apply(variables(params, batch_stats), x, train=True,
                             mutable=["batch_stats"], rngs={"dropout": dropout_key})
  return out, updates.get("batch_stats", {})


def inference_variables(state: Any) -> dict[str, Any]:
  """EMA params when kept, else the raw params (+ BN statistics), of a state with `params`,
  `batch_stats` and `ema_params`."""
  params = state.ema_params if state.ema_params is not None else state.params
  return variables(params, state.batch_stats)
