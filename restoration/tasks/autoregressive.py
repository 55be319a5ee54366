"""The autoregressive task: a conditional PixelCNN learns p(clean | corrupted) by exact NLL.

Training (teacher forcing): the clean crop, as 8-bit levels, and its corruption go through
`PixelCNN(clean, corrupted)` once; the loss is the exact negative log-likelihood of the clean
crop's 256-level sub-pixels (`restoration.models.pixelcnn_decode.nll`), averaged over the global batch's
sub-pixels, in NATS per dim. Train metrics: loss (nats/dim), bits_per_dim (= loss / ln 2),
grad_norm, learning_rate. RNG derivation as in `supervised` (corruption keyed by the GLOBAL
example index; the model has no dropout). `config.loss` is not used.

Inference (`AutoregressiveInference`) is rebuilt from the checkpoint meta (task, model name and
kwargs, channels) and the config's `autoregressive.*` fields:
  predict   the deterministic decode `autoregressive.decode`: 'mean' (each sub-pixel in raster
            order its rounded conditional expectation) or 'mode' (its most probable value);
            float images in [0, 1] (multiples of 1/255)
  measure   psnr / ssim / input_psnr / input_ssim of that decode (`evaluator.restoration_metrics`),
            `loss` = the clean image's NLL in nats/dim (the train loss's units), `nll_bpd` (the
            same in bits/dim), and `psnr_sample` / `ssim_sample` of one ancestral sample at
            `autoregressive.temperature` from the fixed key `autoregressive.sample_seed`; every
            image uses that same key, so its sample does not depend on its batch or device.

Decoding cost: a decode of an H x W x C image is H * W * C forward passes of the whole network
on the whole (batch of) image(s), i.e. O((H W)^2 C) work: an eval runs two decodes (predict and
the sample). Restore mode decodes whole bucket-padded images; for large images set
`eval.tile` (each T x T tile costs T^2 C passes of a T x T network, O(H W T^2 C) in all; tiles
are decoded independently and blended, an approximation) — see WORKSPACE.md for the speed.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from restoration.models import pixelcnn_decode as ar
from restoration.eval import evaluator
from restoration.eval import metrics
from restoration import models
from restoration import optim
from restoration.eval import study_ssim
from restoration.runtime import parallel
from restoration.tasks import base
from restoration.tasks import supervised

DECODES = {"mean": ar.decode_mean, "mode": ar.decode_mode}


def build_model(model_config: dict[str, Any]) -> nn.Module:
  """The autoregressive model of `config.model`; ValueError naming `config.model.*`."""
  name, dtype = model_config["name"], model_config["dtype"]
  if name not in base.AUTOREGRESSIVE:
    raise ValueError(f"config.model.name={name!r}: task 'autoregressive' needs one of "
                     f"{sorted(base.AUTOREGRESSIVE)}")
  if dtype not in base.DTYPES:
    raise ValueError(f"config.model.dtype={dtype!r}; allowed: {sorted(base.DTYPES)}")
  kwargs = dict(model_config["kwargs"])
  try:
    return models.get_model(name, dtype=base.DTYPES[dtype], **kwargs)
  except (TypeError, ValueError) as e:
    raise ValueError(f"config.model (name={name!r}, kwargs={kwargs}): {e}") from e


def to_levels(images: jax.Array) -> jax.Array:
  """Float [0, 1] images that are k / 255 (as the data pipeline gives) -> uint8 k."""
  return jnp.round(jnp.clip(images, 0.0, 1.0) * 255.0).astype(jnp.uint8)


def nats_per_dim(logits: jax.Array, clean_u8: jax.Array) -> jax.Array:
  """Per-image NLL of `clean_u8` in nats per sub-pixel, shape (N,)."""
  nats, _ = ar.nll(logits, clean_u8)
  return nats / math.prod(clean_u8.shape[1:])


class AutoregressiveInference(base.Inference):
  """Decoding and likelihood metrics of a trained PixelCNN (module docstring)."""

  def __init__(self, meta, config, **kwargs):
    super().__init__(meta, config, **kwargs)
    a = config.autoregressive
    if a.decode not in DECODES:
      raise ValueError(f"config.autoregressive.decode={a.decode!r}; allowed: {sorted(DECODES)}")
    if (not isinstance(a.temperature, (int, float)) or isinstance(a.temperature, bool)
        or not a.temperature > 0):
      raise ValueError(f"config.autoregressive.temperature must be a number > 0, got "
                       f"{a.temperature!r}")
    if not isinstance(a.sample_seed, (int, np.integer)) or isinstance(a.sample_seed, bool):
      raise ValueError(f"config.autoregressive.sample_seed must be an integer, got "
                       f"{a.sample_seed!r}")
    self.decode = DECODES[a.decode]
    self.temperature = float(a.temperature)
    self.sample_seed = int(a.sample_seed)
    # One object for every call: the decoding loop is jitted with it as a static argument.
    self.apply_fn = functools.partial(self.model.apply, train=False)

  def build_model(self, model_config: dict[str, Any]) -> nn.Module:
    return build_model(model_config)

  def predict(self, variables: Any, corrupted: jax.Array) -> jax.Array:
    """The deterministic decode given the corrupted images, float [0, 1]."""
    decoded = self.decode(self.apply_fn, variables, corrupted.astype(jnp.float32),
                          channels=self.channels)
    return decoded.astype(jnp.float32) / 255.0

  def sample(self, variables: Any, corrupted: jax.Array) -> jax.Array:
    """One ancestral sample per image, float [0, 1]; image n's depends only on image n."""
    key = jax.random.key(self.sample_seed)

    def one(cond):  # the same unbatched key for every image: batch-independent draws
      return ar.sample(self.apply_fn, variables, cond[None], key, self.temperature,
                       self.channels)[0]

    return jax.vmap(one)(corrupted.astype(jnp.float32)).astype(jnp.float32) / 255.0

  def measure(self, output, corrupted, clean, *, variables=None):
    if variables is None:
      raise ValueError("AutoregressiveInference.measure needs variables= (likelihood, sample)")
    options = self.options.metric_options
    values = evaluator.restoration_metrics(output, corrupted, clean, loss_fn=self.loss_fn,
                                           options=options,
                                           ssim_convention=self.options.ssim_convention)
    target = to_levels(clean)
    nats = nats_per_dim(self.apply_fn(variables, target, corrupted.astype(jnp.float32)),
                        target)
    # The likelihood replaces config.loss's column: it is what this task is trained on.
    values["loss"] = nats
    values["nll_bpd"] = nats / math.log(2.0)
    sampled = self.sample(variables, corrupted)
    values["psnr_sample"] = metrics.psnr(sampled, clean, **options)
    values["ssim_sample"] = study_ssim.ssim_fn(self.options.ssim_convention)(sampled, clean,
                                                                             **options)
    return values


class AutoregressiveTask(base.Task):
  """clean crop + its corruption -> PixelCNN logits -> exact NLL of the clean crop."""

  name = "autoregressive"
  # (corrupted crops, clean crops): the same examples as the supervised task's.
  model_input = supervised.SupervisedTask.model_input
  example = supervised.SupervisedTask.example
  inference_class = AutoregressiveInference

  def __init__(self, config, **kwargs):
    super().__init__(config, **kwargs)
    self.tx, self.schedule = optim.make_optimizer(config)
    self.check_shapes()

  def check_shapes(self) -> None:
    """Traces (no compute) corruption and model init: same-shape corruption, valid model."""
    if self.input_shape() != self.output_shape():  # (corrupted, clean) of one example
      raise ValueError(f"config.corruption changes the image shape {self.output_shape()} -> "
                       f"{self.input_shape()}; the PixelCNN is conditioned on a same-shape "
                       "image")
    try:
      jax.eval_shape(self.init_state)
    except ValueError as e:
      c = self.config
      raise ValueError(f"config.model ({c.model.name}, kwargs={dict(c.model.kwargs)}): {e}"
                       ) from e

  def init_state(self) -> supervised.TrainState:
    # An rbg key for the initialisers: XLA:CPU compiles this model's ~20 threefry draws
    # ~5x slower (40 s vs 7 s on the loaded 2-core VM); still a pure function of the seed.
    key = jax.random.wrap_key_data(jax.random.bits(self.init_key(), (4,), jnp.uint32),
                                   impl="rbg")
    params = self.model.init({"params": key}, jnp.zeros(self.output_shape(), jnp.uint8),
                             jnp.zeros(self.input_shape(), jnp.float32), train=False)["params"]
    ema = params if self.config.ema_decay > 0 else None
    return supervised.TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats={},
                                 opt_state=self.tx.init(params), ema_params=ema)

  def inference_variables(self, state: supervised.TrainState) -> dict[str, Any]:
    """EMA params when kept, else the raw params."""
    return {"params": state.ema_params if state.ema_params is not None else state.params}

  def train_step(self, state, batch, consts):
    step_key, device_key = supervised.step_keys(self.config.seed, state.step)
    clean = self.clean_batch(jax.random.fold_in(device_key, supervised.SAMPLE_STREAM), batch,
                             consts)
    corrupted = supervised.corrupt_batch(self.corrupt, step_key, clean)
    target = to_levels(clean)

    def loss_of(params):
      logits = self.model.apply({"params": params}, target, corrupted, train=True)
      return jnp.mean(nats_per_dim(logits, target))

    loss, grads = jax.value_and_grad(loss_of)(state.params)
    # Equal per-device batches: the mean of device means is the global batch's mean.
    grads, loss = lax.pmean((grads, loss), parallel.AXIS)
    state, step_metrics = supervised.apply_update(self, state, grads, loss)
    step_metrics["bits_per_dim"] = loss / math.log(2.0)
    return state, step_metrics
