"""The adversarial task: pix2pix (Isola et al., "Image-to-Image Translation with Conditional
Adversarial Networks", CVPR 2017) for restoration.

The generator G is the config's restorer (`config.model`, any of the zoo); the discriminator
D (`config.adversarial.discriminator`, the conditional PatchGAN) scores (corrupted,
candidate) pairs. One training step = `d_steps` updates of D, then one update of G:

  D minimises  discriminator_loss(kind, D(y, x), D(y, G(y)))  [+ R1 at real x if r1_gamma]
  G minimises  g_adv = generator_loss(kind, D(y, G(y)))  +  l1_weight * config.loss(G(y), x)

with x the clean crops and y their corruption; `config.loss` may hold `perceptual` (VGG
variables in `consts()`). pix2pix scales D's loss by 0.5 to slow D; with Adam (invariant to
the loss scale up to eps) its own learning rate does that here. Both models are in training
mode throughout (BatchNorm on batch statistics, synced over devices), but each model's
running statistics are updated only by its own update. The inference side is the plain
restorer (`base.Inference`): eval and restore see G only.

Hooks a subclass overrides (`restoration.tasks.inpaint.InpaintAdversarialTask` does):
  model_input(key, clean)          G's input, also D's condition y (here: the corruption)
  d_candidate(image, model_input)  what D judges of a clean crop or of G's output (here: the
                                   image itself; inpainting: its composite with the input's
                                   known pixels, so that D can only judge the holes)
  task_loss(output, target, model_input, consts)  G's reconstruction loss (here: config.loss)
  inference_class                  eval / restore's side (here: the plain restorer's)
The logged g_l1 is L1(d_candidate(G(y), y), x): the candidate D judges, against the clean.

RNG, per step s (all `fold_in`; streams 1-4 as `restoration.tasks.supervised`):
  G's corruption   per GLOBAL example g: fold_in(fold_in(k_s, 1), g); G's dropout: stream 2
  clean crops      device stream 3 (data.on_device), shared by D and G
  D update i       corruption key fold_in(fold_in(k_s, 5), i) (then per example as above);
                   G's dropout while making D's fakes: fold_in(fold_in(device key, 6), i)
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from restoration.losses import gan
from restoration import losses
from restoration import models
from restoration import optim
from restoration.runtime import parallel
from restoration.runtime import run_log
from restoration.tasks import base
from restoration.tasks import restorer
from restoration.tasks import supervised

D_CORRUPT_STREAM, D_DROPOUT_STREAM = 5, 6
_A = "config.adversarial"


@flax.struct.dataclass
class GanState:
  """G's params / BN statistics / optimizer state (named as the supervised task's, so generic
  readers of `params` see the generator), D's, the step, and G's EMA (None unless
  `config.ema_decay > 0`)."""
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  d_params: Any
  d_batch_stats: Any
  d_opt_state: Any
  ema_params: Any = None


def build_discriminator(config) -> nn.Module:
  """`config.adversarial.discriminator` (name + kwargs), computing in `config.model.dtype`."""
  d = config.adversarial.discriminator
  if d.name not in base.DISCRIMINATORS:
    raise ValueError(f"{_A}.discriminator.name={d.name!r}; allowed: "
                     f"{sorted(base.DISCRIMINATORS)}")
  kwargs = dict(d.kwargs)
  if "bn_axis_name" in models.model_fields(d.name):
    kwargs.setdefault("bn_axis_name", parallel.AXIS)  # D's BN statistics of the global batch
  try:
    return models.get_model(d.name, dtype=base.DTYPES[config.model.dtype], **kwargs)
  except (TypeError, ValueError) as e:
    raise ValueError(f"{_A}.discriminator (name={d.name!r}, kwargs={dict(d.kwargs)}): {e}"
                     ) from e


def _check_block(config) -> None:
  a = config.adversarial
  gan.validate_kind(a.loss, f"{_A}.loss")
  for name in ("l1_weight", "r1_gamma"):
    if isinstance(a[name], bool) or not isinstance(a[name], (int, float)) or a[name] < 0:
      raise ValueError(f"{_A}.{name} must be a number >= 0, got {a[name]!r}")
  if (not isinstance(a.d_steps, (int, np.integer)) or isinstance(a.d_steps, bool)
      or a.d_steps < 1):
    raise ValueError(f"{_A}.d_steps must be an integer >= 1, got {a.d_steps!r}")


class AdversarialTask(base.Task):
  """pix2pix: the restorer against a conditional discriminator (see the module doc)."""

  name = "adversarial"
  finite_metrics = ("g_loss", "d_loss", "g_grad_norm", "d_grad_norm")

  def __init__(self, config, **kwargs):
    _check_block(config)
    super().__init__(config, **kwargs)
    a = config.adversarial
    self.kind, self.l1_weight = a.loss, float(a.l1_weight)
    self.d_steps, self.r1_gamma = int(a.d_steps), float(a.r1_gamma)
    self.tx, self.schedule = restorer.make_tx(config)
    self.d_tx, self.d_schedule = optim.make_optimizer(config, block=a.d_optimizer,
                                                      field=f"{_A}.d_optimizer")
    self.discriminator = build_discriminator(config)
    self.check_shapes()
    self.encoder = restorer.encoder_variables(config)
    self.loss_fn = losses.TrainingLoss(config)

  # ------------------------------------------------------------------------------- hooks

  # G's input (also D's condition) and (G's input, clean crops): the supervised task's.
  model_input = supervised.SupervisedTask.model_input
  example = supervised.SupervisedTask.example

  def d_candidate(self, image: jax.Array, model_input: jax.Array) -> jax.Array:
    """What D judges of `image` (a clean crop or G's output) given `model_input`: itself."""
    del model_input
    return image

  # G's reconstruction loss `(loss, terms)`: config.loss (perceptual term included).
  task_loss = supervised.SupervisedTask.task_loss

  def check_shapes(self) -> None:
    """The restorer's shapes (base), and that D gives logits at the training crop size."""
    super().check_shapes()
    x = jax.ShapeDtypeStruct(self.input_shape(), jnp.float32)
    y = jax.ShapeDtypeStruct(self.output_shape(), jnp.float32)
    try:
      logits = jax.eval_shape(lambda x, y: self.discriminator.init_with_output(
          jax.random.key(0), x, y, train=False)[0], x, y)
    except (TypeError, ValueError) as e:
      logits = e
    if not isinstance(logits, jax.ShapeDtypeStruct) or min(logits.shape[1:3]) < 1:
      d = self.config.adversarial.discriminator
      raise ValueError(f"{_A}.discriminator ({d.name}, kwargs={dict(d.kwargs)}) gives no "
                       f"logits on patch_size={self.config.patch_size} crops ({logits}); "
                       "use fewer layers (patchgan: n_layers) or a larger patch_size")

  def frozen_consts(self) -> dict[str, Any]:
    return self.loss_fn.consts()

  def model_meta(self) -> dict[str, Any]:
    d = self.config.adversarial.discriminator
    return {**super().model_meta(),
            "discriminator": {"name": d.name, "kwargs": run_log.plain(d.kwargs)}}

  def init_state(self) -> GanState:
    key = self.init_key()
    x = jnp.zeros(self.input_shape(), jnp.float32)
    g = self.model.init({"params": key, "dropout": key}, x, train=False)
    # D takes (condition = G's input, candidate of the target's shape).
    d = self.discriminator.init(jax.random.fold_in(key, 1), x,
                                jnp.zeros(self.output_shape(), jnp.float32), train=False)
    params, d_params = g["params"], d["params"]
    return GanState(step=jnp.zeros((), jnp.int32), params=params,
                    batch_stats=g.get("batch_stats", {}), opt_state=self.tx.init(params),
                    d_params=d_params, d_batch_stats=d.get("batch_stats", {}),
                    d_opt_state=self.d_tx.init(d_params),
                    ema_params=params if self.config.ema_decay > 0 else None)

  def initial_state(self) -> GanState:
    return restorer.load_pretrained(super().initial_state(), self.encoder)

  def inference_variables(self, state: GanState) -> dict[str, Any]:
    return restorer.inference_variables(state)

  # ----------------------------------------------------------------------------- the step

  def train_step(self, state: GanState, batch: Any, consts: Any
                 ) -> tuple[GanState, dict[str, jax.Array]]:
    step_key, device_key = supervised.step_keys(self.config.seed, state.step)
    clean = self.clean_batch(jax.random.fold_in(device_key, supervised.SAMPLE_STREAM), batch,
                             consts)
    metrics = {}
    for i in range(self.d_steps):
      state, metrics = self.d_step(state, clean, step_key, device_key, i)
    state, g_metrics = self.g_step(state, clean, step_key, device_key, consts)
    return state.replace(step=state.step + 1), {**metrics, **g_metrics}

  def _d_logits(self, d_params, d_batch_stats, corrupted, candidate):
    """(logits, new batch_stats) of D in training mode."""
    logits, updates = self.discriminator.apply(
        restorer.variables(d_params, d_batch_stats), corrupted, candidate, train=True,
        mutable=["batch_stats"])
    return logits, updates.get("batch_stats", {})

  def d_step(self, state: GanState, clean: jax.Array, step_key: jax.Array,
             device_key: jax.Array, i: int) -> tuple[GanState, dict[str, jax.Array]]:
    """D's update `i` of this step, on a fresh corruption of `clean`; G is only read."""
    corrupted = self.model_input(
        jax.random.fold_in(jax.random.fold_in(step_key, D_CORRUPT_STREAM), i), clean)
    fake, _ = restorer.apply_train(
        self.model, state.params, state.batch_stats, corrupted,
        jax.random.fold_in(jax.random.fold_in(device_key, D_DROPOUT_STREAM), i))
    fake = lax.stop_gradient(self.d_candidate(fake, corrupted))
    real = self.d_candidate(clean, corrupted)

    def loss_of(d_params):
      # Fake then real, each with its own batch statistics, as pix2pix does.
      fake_logits, stats = self._d_logits(d_params, state.d_batch_stats, corrupted, fake)
      real_logits, stats = self._d_logits(d_params, stats, corrupted, real)
      loss = gan.discriminator_loss(self.kind, real_logits, fake_logits)
      aux = {"d_real": jnp.mean(real_logits), "d_fake": jnp.mean(fake_logits)}
      if self.r1_gamma:
        # Eval-mode D: R1's per-example gradients need examples that do not share BN stats.
        d_eval = lambda x: self.discriminator.apply(
            restorer.variables(d_params, stats), corrupted, x, train=False)
        aux["d_r1"] = gan.r1_penalty(d_eval, real, self.r1_gamma)
        loss = loss + aux["d_r1"]
      return loss, (stats, aux)

    (loss, (stats, aux)), grads = jax.value_and_grad(loss_of, has_aux=True)(state.d_params)
    grads, loss, stats, aux = lax.pmean((grads, loss, stats, aux), parallel.AXIS)
    updates, d_opt_state = self.d_tx.update(grads, state.d_opt_state, state.d_params,
                                            value=loss)
    metrics = {"d_loss": loss, **aux, "d_grad_norm": optax.global_norm(grads),
               "d_learning_rate": optim.learning_rate(self.d_schedule, state.d_opt_state,
                                                      d_opt_state, state.step)}
    return state.replace(d_params=optax.apply_updates(state.d_params, updates),
                         d_batch_stats=stats, d_opt_state=d_opt_state), metrics

  def g_step(self, state: GanState, clean: jax.Array, step_key: jax.Array,
             device_key: jax.Array, consts: Any) -> tuple[GanState, dict[str, jax.Array]]:
    """G's update (and EMA); D is only read (its statistics updates are dropped)."""
    corrupted = self.model_input(step_key, clean)

    def loss_of(params):
      restored, stats = restorer.apply_train(
          self.model, params, state.batch_stats, corrupted,
          jax.random.fold_in(device_key, supervised.DROPOUT_STREAM))
      candidate = self.d_candidate(restored, corrupted)
      fake_logits, _ = self._d_logits(state.d_params, state.d_batch_stats, corrupted,
                                      candidate)
      adv = gan.generator_loss(self.kind, fake_logits)
      recon, terms = self.task_loss(restored, clean, corrupted, consts)
      aux = {"g_adv": adv, "g_l1": losses.l1(candidate.astype(jnp.float32), clean),
             **{f"g_{k}": v for k, v in terms.items()}}
      return adv + self.l1_weight * recon, (stats, aux)

    (loss, (stats, aux)), grads = jax.value_and_grad(loss_of, has_aux=True)(state.params)
    grads, loss, stats, aux = lax.pmean((grads, loss, stats, aux), parallel.AXIS)
    updates, opt_state = self.tx.update(grads, state.opt_state, state.params, value=loss)
    params = optax.apply_updates(state.params, updates)
    ema = state.ema_params
    if ema is not None:
      ema = optax.incremental_update(params, ema, step_size=1.0 - self.config.ema_decay)
    metrics = {"g_loss": loss, **aux, "g_grad_norm": optax.global_norm(grads),
               "learning_rate": optim.learning_rate(self.schedule, state.opt_state, opt_state,
                                                    state.step)}
    return state.replace(params=params, batch_stats=stats, opt_state=opt_state,
                         ema_params=ema), metrics
