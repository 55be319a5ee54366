"""Training: the pure per-device train step and the loop that drives it.

The loop resumes automatically from the latest checkpoint in the workdir and then continues
exactly as an uninterrupted run would: the state (params, BN stats, optimizer, EMA) and the
input iterator's position are checkpointed together, and every random draw is derived from
(config.seed, step), never carried.

RNG derivation, per step `s` (all `fold_in`):
  step key       k_s   = fold_in(key(seed), s)
  corruption     per training example with GLOBAL index g: fold_in(fold_in(k_s, 1), g), so
                 results do not depend on how the global batch is split over devices/hosts
  device key     fold_in(fold_in(k_s, 4), d) (d = global device index) for dropout and for
                 the device-resident sampler's crops
Each use has its own stream id at the first level, so no two uses can share a key.
"""

import collections
import functools
import itertools
import math
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import tqdm
from absl import logging
from jax import lax

from restoration import checkpoints
from restoration import corruptions
from restoration import data
from restoration import evaluate
from restoration import logging as rlog
from restoration import losses
from restoration import optim
from restoration import parallel
from restoration import state as state_lib
from restoration import visualize

TrainState = state_lib.TrainState
_CORRUPT_STREAM, _DROPOUT_STREAM, _SAMPLE_STREAM, _DEVICE_STREAM = 1, 2, 3, 4


class NonFiniteLossError(FloatingPointError):
  """Training produced a NaN/inf loss or gradient; the last good checkpoint is kept."""


def validate_config(config: ml_collections.ConfigDict, *, local_device_count: int | None = None,
                    process_count: int | None = None) -> None:
  """Checks every field the run reads, raising ValueError naming it, before any compilation."""
  for name in ("total_steps", "batch_size", "patch_size", "log_every_steps",
               "eval_every_steps", "checkpoint_every_steps", "keep_checkpoints"):
    value = config[name]
    if not isinstance(value, int) or value < 1:
      raise ValueError(f"config.{name} must be an integer >= 1, got {value!r}")
  if not 0.0 <= config.ema_decay < 1.0:
    raise ValueError(f"config.ema_decay must be in [0, 1), got {config.ema_decay}")
  local_device_count = local_device_count or jax.local_device_count()
  process_count = process_count or jax.process_count()
  num_devices = local_device_count * process_count
  # batch_size divisibility is data.validate_data_config's check (below).
  if config.data.eval_batch_size % num_devices:
    raise ValueError(f"config.data.eval_batch_size={config.data.eval_batch_size} must be "
                     f"divisible by the {num_devices} devices")
  model = state_lib.build_model(config)
  corruptions.validate(list(config.corruption), image_shape=(config.patch_size,) * 2)
  evaluate.validate_eval_config(config)
  _validate_shapes(config, model)
  losses.validate(dict(config.loss))
  optim.validate(config)
  data.validate_data_config(config, process_count=process_count,
                            local_device_count=local_device_count)


def _validate_shapes(config: ml_collections.ConfigDict, model) -> None:
  """Traces (no compute) corruption -> model on one training batch; checks the channels."""
  x = jax.ShapeDtypeStruct(state_lib.input_shape(config), jnp.float32)
  corrupt = corruptions.chain(list(config.corruption), image_shape=(config.patch_size,) * 2)
  corrupted = jax.eval_shape(lambda x: corrupt(jax.random.key(0), x)[0], x)
  if corrupted.shape != x.shape:
    raise ValueError(f"config.corruption changes the image shape {x.shape} -> "
                     f"{corrupted.shape}; restorers need same-shape input (e.g. grayscale "
                     "with keep_channels=True)")
  out, _ = jax.eval_shape(
      lambda x: model.init_with_output(jax.random.key(0), x, train=False), corrupted)
  if out.shape != x.shape:
    raise ValueError(
        f"config.model ({config.model.name}, kwargs={dict(config.model.kwargs)}) outputs "
        f"{out.shape[-1]} channels but data.channels={config.data.channels}: the loss compares "
        "them; set model.kwargs.out_channels to data.channels (colourisation: data.channels=3 "
        "with a grayscale corruption that keeps 3 channels)")


def train_step(state: TrainState, batch: Any, *, model, tx: optax.GradientTransformation,
               schedule: optax.Schedule, corrupt: Callable, loss_fn: Callable,
               sample: Callable[[jax.Array, Any], jax.Array], seed: int,
               ema_decay: float) -> tuple[TrainState, dict[str, jax.Array]]:
  """One optimizer step on one device's share of the global batch (call via parallel)."""
  device = lax.axis_index(parallel.AXIS)
  step_key = jax.random.fold_in(jax.random.key(seed), state.step)
  device_key = jax.random.fold_in(jax.random.fold_in(step_key, _DEVICE_STREAM), device)
  clean = sample(jax.random.fold_in(device_key, _SAMPLE_STREAM), batch)
  clean = clean.astype(jnp.float32) / 255.0
  n = clean.shape[0]
  corrupted, _ = corruptions.per_example(corrupt, jax.random.fold_in(step_key, _CORRUPT_STREAM),
                                         clean, device * n + jnp.arange(n))

  def loss_of(params):
    variables = {"params": params}
    if state.batch_stats:
      variables["batch_stats"] = state.batch_stats
    restored, updates = model.apply(
        variables, corrupted, train=True, mutable=["batch_stats"],
        rngs={"dropout": jax.random.fold_in(device_key, _DROPOUT_STREAM)})
    return loss_fn(restored, clean), updates.get("batch_stats", {})

  (loss, batch_stats), grads = jax.value_and_grad(loss_of, has_aux=True)(state.params)
  grads, loss, batch_stats = lax.pmean((grads, loss, batch_stats), parallel.AXIS)
  updates, opt_state = tx.update(grads, state.opt_state, state.params, value=loss)
  params = optax.apply_updates(state.params, updates)
  ema = state.ema_params
  if ema is not None:
    ema = optax.incremental_update(params, ema, step_size=1.0 - ema_decay)
  metrics = {"loss": loss, "grad_norm": optax.global_norm(grads),
             "learning_rate": optim.current_learning_rate(schedule, state.opt_state, state.step)}
  new_state = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats,
                            opt_state=opt_state, ema_params=ema)
  return new_state, metrics


def _host_batch(_, batch):
  return batch


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *,
                       devices: Sequence[jax.Device] | None = None) -> TrainState:
  """Trains (resuming from the workdir's latest checkpoint) and evaluates; returns the state.

  `devices` restricts the run to some local devices (tests compare 1 vs 2 devices).
  """
  # pmap gets devices=None (all devices of all processes) unless a test restricts it.
  devices = list(devices) if devices is not None else None
  n_local = parallel.local_device_count(devices)
  n_global = n_local * jax.process_count()
  validate_config(config, local_device_count=n_local, process_count=jax.process_count())
  os.makedirs(workdir, exist_ok=True)
  lead = jax.process_index() == 0

  model = state_lib.build_model(config)
  tx, schedule = optim.make_optimizer(config)
  corrupt = corruptions.chain(list(config.corruption), image_shape=(config.patch_size,) * 2)
  loss_fn = losses.make_loss(dict(config.loss))
  ckpt = checkpoints.Checkpointer(workdir, keep=config.keep_checkpoints)

  if config.data.on_device:
    dev = data.load_device_data(config)
    train_data = None
    batch_arrays = parallel.to_devices(parallel.replicate((dev.images, dev.sizes), devices),
                                       devices)
    sample = functools.partial(_sample_device, batch_size=config.batch_size // n_global,
                               patch_size=config.patch_size, augment=config.data.augment)
  else:
    train_data = data.make_train_data(config, process_index=jax.process_index(),
                                      process_count=jax.process_count(),
                                      local_device_count=n_local)
    sample = _host_batch

  start_step = 0
  if ckpt.latest_step() is None:
    state = jax.jit(lambda: state_lib.create_train_state(config, model, tx))()
  else:
    state, data_state = ckpt.restore_latest(state_lib.abstract_train_state(config, model, tx))
    start_step = int(state.step)
    if train_data is not None:
      train_data.set_state(data_state)
    logging.info("Resumed from %s at step %d", workdir, start_step)
  if lead:
    rlog.write_config(workdir, config, step=start_step)
  writer = rlog.MetricWriter(workdir, enabled=lead, resume_step=start_step)
  evaluator = evaluate.Evaluator(config, model, devices=devices)

  p_train = parallel.parallelize(
      functools.partial(train_step, model=model, tx=tx, schedule=schedule, corrupt=corrupt,
                        loss_fn=loss_fn, sample=sample, seed=config.seed,
                        ema_decay=config.ema_decay),
      donate_argnums=(0,), devices=devices)
  rstate = parallel.to_devices(parallel.replicate(state, devices), devices)
  block_each_step = jax.default_backend() == "cpu"  # CPU collectives can deadlock otherwise

  pending: list[tuple[int, dict]] = []
  data_state: dict | None = None
  batches = (_prefetch_to_devices(train_data, devices, config.data.prefetch)
             if train_data is not None
             else itertools.repeat((batch_arrays, None)))
  last_log_time, last_log_step = time.time(), start_step
  bar = tqdm.tqdm(total=config.total_steps, initial=start_step, disable=not lead,
                  desc="train", unit="step", dynamic_ncols=True)
  try:
    for step in range(start_step + 1, config.total_steps + 1):  # `step` = steps done after it
      batch, data_state = next(batches)
      rstate, metrics = p_train(rstate, batch)
      if block_each_step:
        jax.block_until_ready(metrics)
      pending.append((step, metrics))
      bar.update(1)
      last = step == config.total_steps
      if step % config.log_every_steps == 0 or last:
        values = _flush(pending)
        now = time.time()
        sps = (step - last_log_step) / max(now - last_log_time, 1e-9)
        last_log_time, last_log_step = now, step
        writer.write(step, "train", **values, steps_per_sec=sps)
        bar.set_postfix(loss=f"{values['loss']:.4g}", refresh=False)
      host_state = None  # fetched once when both a checkpoint and an eval need it
      if step % config.checkpoint_every_steps == 0 or last:
        _flush(pending)
        host_state = parallel.unreplicate(rstate)
        ckpt.save_latest(step, host_state, data_state)
      if step % config.eval_every_steps == 0 or last:
        _flush(pending)
        result = evaluator.evaluate(rstate.eval_variables())
        writer.write(step, "eval", **result.means)
        grid = result.grid_arrays(config.eval.num_grid_images)
        if lead and grid:
          visualize.save_grid(os.path.join(workdir, "images", f"step_{step:07d}.png"), **grid)
        if host_state is None:
          host_state = parallel.unreplicate(rstate)
        ckpt.save_best(step, host_state, result.means["psnr"])
  finally:
    bar.close()
    if train_data is not None:
      train_data.close()
    ckpt.wait()
    ckpt.close()
    writer.close()
  if lead:
    visualize.plot_curves(writer.path, os.path.join(workdir, "plots"))
  return parallel.unreplicate(rstate)


def _prefetch_to_devices(train_data: data.TrainData, devices: Sequence[jax.Device] | None,
                         depth: int):
  """Yields (device batch, iterator state after it), `depth` batches ahead.

  The host-to-device copy of the next batches overlaps the current step. Each batch carries
  the iterator position right after it, which is what a checkpoint at that step must store.
  """
  queue = collections.deque()
  while True:
    while len(queue) < max(depth, 1):
      batch = next(train_data)
      queue.append((parallel.to_devices(batch, devices), train_data.get_state()))
    yield queue.popleft()


def _sample_device(key: jax.Array, arrays: tuple[jax.Array, jax.Array], *, batch_size: int,
                   patch_size: int, augment: bool) -> jax.Array:
  images, sizes = arrays
  return data.sample_patches(key, images, sizes, batch_size=batch_size,
                             patch_size=patch_size, augment=augment)


def _flush(pending: list[tuple[int, dict]]) -> dict[str, float]:
  """Fetches the pending per-step metrics; raises on the first non-finite one.

  Returns the last step's values (device 0's copy; they are pmean'd, so all devices agree).
  """
  if not pending:
    return {}
  fetched = jax.device_get([m for _, m in pending])
  steps = [s for s, _ in pending]
  pending.clear()
  for step, metrics in zip(steps, fetched):
    for name in ("loss", "grad_norm"):
      value = float(np.asarray(metrics[name])[0])
      if not math.isfinite(value):
        raise NonFiniteLossError(
            f"non-finite {name} ({value}) at step {step}: training stopped; the last "
            "checkpoint before it is kept. Lower optimizer.learning_rate or set "
            "optimizer.grad_clip_norm.")
  return {k: float(np.asarray(v)[0]) for k, v in fetched[-1].items()}
