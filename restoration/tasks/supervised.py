"""The supervised restoration task: corrupt clean crops on the device, regress them back.

RNG derivation, per step `s` (all `fold_in`):
  step key       k_s   = fold_in(key(seed), s)
  corruption     per training example with GLOBAL index g: fold_in(fold_in(k_s, 1), g), so
                 results do not depend on how the global batch is split over devices/hosts
  device key     fold_in(fold_in(k_s, 4), d) (d = global device index) for dropout (stream 2)
                 and the device-resident sampler's crops (stream 3)
Each use has its own stream id at the first level, so no two uses can share a key.

With config.corruption_fixed_per_image the corruption ignores the step: the training image
with SOURCE index i (the batch's 'index', data.TrainData(with_index=True)) is corrupted with
fold_in(fold_in(fold_in(key(seed), FIXED_CORRUPT_ROOT), 1), i) at every step it appears in,
like a data set corrupted once before training (the CIFAR study). FIXED_CORRUPT_ROOT lies
beyond any step count, so it is never a step key.
"""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax
from jax import lax

from restoration import corruptions
from restoration import losses
from restoration import optim
from restoration.runtime import parallel
from restoration.runtime import precise_bn
from restoration.data import pairs
from restoration.tasks import base
from restoration.tasks import restorer

CORRUPT_STREAM, DROPOUT_STREAM, SAMPLE_STREAM, DEVICE_STREAM = 1, 2, 3, 4
FIXED_CORRUPT_ROOT = 0x7FFF_F1ED  # ~2.1e9: no run takes that many steps


@flax.struct.dataclass
class TrainState:
  """Everything that changes during training; nothing derivable (the model, tx, RNG keys).

  `ema_params` is None unless `config.ema_decay > 0`.
  """
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  ema_params: Any = None


def step_keys(seed: int, step: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(step key, this device's key) of the documented derivation."""
  step_key = jax.random.fold_in(jax.random.key(seed), step)
  device = lax.axis_index(parallel.AXIS)
  return step_key, jax.random.fold_in(jax.random.fold_in(step_key, DEVICE_STREAM), device)


def fixed_corruption_key(seed: int) -> jax.Array:
  """The 'step key' of config.corruption_fixed_per_image: the same at every step."""
  return jax.random.fold_in(jax.random.key(seed), FIXED_CORRUPT_ROOT)


def corrupt_batch(corrupt, step_key: jax.Array, clean: jax.Array, *, with_mask: bool = False,
                  index: jax.Array | None = None) -> jax.Array | tuple[jax.Array, jax.Array]:
  """Corrupts this device's examples with keys from their GLOBAL indices (device-count free)
  or, given, from `index` (source indices: corruption_fixed_per_image);
  with_mask: (corrupted, the chain's damage mask [B, H, W, 1])."""
  n = clean.shape[0]
  if index is None:
    index = lax.axis_index(parallel.AXIS) * n + jnp.arange(n)
  out = corruptions.per_example(corrupt, jax.random.fold_in(step_key, CORRUPT_STREAM), clean,
                                index)
  return out if with_mask else out[0]


class SupervisedTask(base.Task):
  """corrupted -> restorer -> weighted reconstruction loss against the clean crop.

  `config.loss` may include `perceptual` (VGG variables in `consts()`); with vgg_unet,
  `config.model.freeze_encoder` / `encoder_weights` freeze / initialise its encoder.
  """

  name = "supervised"
  supports_precise_bn = True

  def __init__(self, config, **kwargs):
    super().__init__(config, **kwargs)
    self.tx, self.schedule = restorer.make_tx(config)
    self.check_shapes()
    self.encoder = restorer.encoder_variables(config)
    self.loss_fn = self.training_loss(config)
    self.precise_bn_batches = precise_bn.check(
        config, self.name, config.model.name,
        self.abstract_state().batch_stats if config.get(precise_bn.FIELD, 0) else {},
        supported=True)

  def frozen_consts(self) -> dict[str, Any]:
    return self.loss_fn.consts()

  def initial_state(self) -> TrainState:
    return restorer.load_pretrained(super().initial_state(), self.encoder)

  def init_state(self) -> TrainState:
    key = self.init_key()
    variables = self.model.init({"params": key, "dropout": key},
                                jnp.zeros(self.input_shape(), jnp.float32), train=False)
    params = variables["params"]
    ema = params if self.config.ema_decay > 0 else None
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      batch_stats=variables.get("batch_stats", {}),
                      opt_state=self.tx.init(params), ema_params=ema)

  def inference_variables(self, state: TrainState) -> dict[str, Any]:
    return restorer.inference_variables(state)

  def start_from(self, state: TrainState, variables: dict[str, Any], source: str) -> TrainState:
    """Params (and BN statistics) from another run, a fresh optimizer; EMA restarts there."""
    params = jax.tree.map(jnp.asarray, variables["params"])
    base.check_same_shapes(state.params, params, source, "params")
    batch_stats = variables.get("batch_stats", {})
    base.check_same_shapes(state.batch_stats, batch_stats, source, "batch_stats")
    return state.replace(params=params, batch_stats=jax.tree.map(jnp.asarray, batch_stats),
                         opt_state=self.tx.init(params),
                         ema_params=params if state.ema_params is not None else None)

  def model_input(self, key: jax.Array, clean: jax.Array,
                  index: jax.Array | None = None) -> jax.Array:
    """The model's input for this device's clean crops: their corruption, drawn with `key`
    per GLOBAL example, or per `index` (`corrupt_batch`). Inpainting adds the mask channel."""
    return corrupt_batch(self.corrupt, key, clean, index=index)

  def example(self, step_key, device_key, batch, consts) -> tuple[jax.Array, jax.Array]:
    """(model input, clean crops)."""
    clean = self.clean_batch(jax.random.fold_in(device_key, SAMPLE_STREAM), batch, consts)
    if self.fixed_per_image:
      return self.model_input(fixed_corruption_key(self.config.seed), clean,
                              batch["index"]), clean
    return self.model_input(step_key, clean), clean

  def training_loss(self, config) -> Any:
    """`(output, target, consts) -> (loss, terms)`: config.loss, perceptual term included."""
    return losses.TrainingLoss(config)

  def task_loss(self, output: jax.Array, target: jax.Array, model_input: jax.Array,
                consts: Any) -> tuple[jax.Array, dict[str, jax.Array]]:
    del model_input  # the inpainting task's loss needs it (its mask channel)
    return self.loss_fn(output, target, consts)

  def training_input(self, batch: Any, consts: Any, step: jax.Array
                     ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(model input, target, dropout key) of training step `step` on this device."""
    step_key, device_key = step_keys(self.config.seed, step)
    corrupted, target = self.example(step_key, device_key, batch, consts)
    return corrupted, target, jax.random.fold_in(device_key, DROPOUT_STREAM)

  def train_step(self, state: TrainState, batch: Any, consts: Any
                 ) -> tuple[TrainState, dict[str, jax.Array]]:
    corrupted, target, dropout_key = self.training_input(batch, consts, state.step)

    def loss_of(params):
      restored, batch_stats = restorer.apply_train(
          self.model, params, state.batch_stats, corrupted, dropout_key)
      loss, terms = self.task_loss(restored, target, corrupted, consts)
      return loss, (batch_stats, terms)

    (loss, (batch_stats, terms)), grads = jax.value_and_grad(loss_of, has_aux=True)(
        state.params)
    grads, loss, batch_stats, terms = lax.pmean((grads, loss, batch_stats, terms),
                                                parallel.AXIS)
    state, metrics = apply_update(self, state, grads, loss)
    return state.replace(batch_stats=batch_stats), {**terms, **metrics}


def apply_update(task: base.Task, state: TrainState, grads: Any, loss: jax.Array
                 ) -> tuple[TrainState, dict[str, jax.Array]]:
  """The optimizer step every task shares, on pmean'd `grads` / `loss`: optax update
  (`task.tx`), EMA (`config.ema_decay`), step + 1, and the loss / grad_norm / lr metrics."""
  updates, opt_state = task.tx.update(grads, state.opt_state, state.params, value=loss)
  params = optax.apply_updates(state.params, updates)
  ema = state.ema_params
  if ema is not None:
    ema = optax.incremental_update(params, ema, step_size=1.0 - task.config.ema_decay)
  metrics = {"loss": loss, "grad_norm": optax.global_norm(grads),
             "learning_rate": optim.learning_rate(task.schedule, state.opt_state, opt_state,
                                                  state.step)}
  return state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                       ema_params=ema), metrics


class PairedTask(SupervisedTask):
  """Trains on `pairs:INPUT_DIR,TARGET_DIR` data: input half -> config.corruption (may be
  empty) -> restorer, loss against the target half. Crops and flips are shared by both
  halves (one stacked array through the pipeline, `restoration.data.pairs`)."""

  name = "paired"
  paired = True

  def example(self, step_key, device_key, batch, consts) -> tuple[jax.Array, jax.Array]:
    stacked = self.clean_batch(jax.random.fold_in(device_key, SAMPLE_STREAM), batch, consts)
    inp, target = pairs.split_pair(stacked, self.config.data.channels)
    return corrupt_batch(self.corrupt, step_key, inp), target
