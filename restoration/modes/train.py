"""`launch.py --mode=train`: the one generic loop that runs any task.

The task (`restoration.tasks.build`) owns models, optimizers, losses, the corruption and the
per-device step; this loop owns what every run does: pmap once, prefetch, logging, latest and
best checkpoints, evals, the non-finite stop, the progress bar.

The loop resumes automatically from the latest checkpoint in the workdir and then continues
exactly as an uninterrupted run would: the state and the input iterator's position are
checkpointed together, and every random draw is derived from (config.seed, step), never carried.
"""

from __future__ import annotations

import collections
import functools
import itertools
import math
import os
import time
from collections.abc import Sequence
from typing import Any

import jax
import ml_collections
import numpy as np
import tqdm
from absl import logging

from restoration.runtime import checkpoints
from restoration.runtime import exit_codes
from restoration import config_fields
from restoration import data
from restoration.eval import evaluator
from restoration.runtime import parallel
from restoration.runtime import precise_bn
from restoration.runtime import preemption
from restoration.runtime import progress
from restoration.runtime import resume
from restoration.runtime import run_log
from restoration.runtime import trained_run
from restoration import tasks
from restoration.eval import visualize
from restoration.runtime import workdir_lock
from restoration.tasks import base

_CADENCES = ("total_steps", "log_every_steps", "eval_every_steps", "checkpoint_every_steps",
             "keep_checkpoints")


class NonFiniteLossError(FloatingPointError):
  """Training produced a NaN/inf metric; the last good checkpoint is kept."""
  exit_status = exit_codes.DIVERGED


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *,
                       devices: Sequence[jax.Device] | None = None,
                       step: int | None = None) -> Any:
  """Trains (resuming from the workdir's latest checkpoint) and evaluates; returns the state.

  `devices` restricts the run to some local devices (tests compare 1 vs 2 devices).
  `step` (--step=N) resumes from that kept checkpoint instead, or starts over (0): the later
  checkpoints are moved to <workdir>/rewound/ (`resume.rewind`).
  Holds the workdir's lock (`workdir_lock`) and stops gracefully on SIGTERM/SIGINT
  (`preemption`: checkpoint at the step reached, then `Preempted`, exit status 128+signal).
  """
  config_fields.check(config)
  resume.check_mode(config)
  if step is not None and (not isinstance(step, int) or step < 0):
    raise ValueError(f"--step={step!r}: a kept checkpoint step, or 0 to start over")
  source = trained_run.load_run(config.init_from) if config.init_from else None
  if source is not None:  # fine-tuning keeps the source run's architecture (warns if it differs)
    config = trained_run.with_trained_model(config, source.meta, config.init_from)
  for name in _CADENCES:
    base.check_int(config, name)
  # pmap gets devices=None (all devices of all processes) unless a test restricts it.
  devices = list(devices) if devices is not None else None
  task = tasks.build(config, local_device_count=parallel.local_device_count(devices),
                     process_count=jax.process_count())
  parallel.describe(config.batch_size, devices)
  lead = jax.process_index() == 0
  with workdir_lock.hold(workdir, enabled=lead), preemption.StopOnSignal() as stop:
    return _loop(task, config, workdir, devices, lead, stop, source, step)


def _loop(task: base.Task, config: ml_collections.ConfigDict, workdir: str,
          devices: list[jax.Device] | None, lead: bool, stop: preemption.StopOnSignal,
          source: trained_run.TrainedRun | None, rewind_to: int | None = None) -> Any:
  """The loop. Kept as one function on purpose: the order of operations within a step
  (train, log, checkpoint, eval, best) is what exact resume relies on; it reads top to bottom.
  """
  os.makedirs(workdir, exist_ok=True)
  meta = task.model_meta()
  clock = progress.Clock(config.total_steps, checkpoint_minutes=config.checkpoint_every_minutes)

  ckpt = checkpoints.Checkpointer(workdir, keep=config.keep_checkpoints)
  if rewind_to is not None:
    resume.rewind(ckpt, workdir, rewind_to)
  train_data = task.train_data(process_index=jax.process_index())
  consts = task.consts()
  start_step = 0
  if ckpt.latest_step() is None:
    state = task.initial_state()
    if source is not None:  # fine-tuning: another run's model, this run's fresh optimizer
      state = task.start_from(state, source.variables, config.init_from)
      logging.info("Starting from the %s checkpoint (step %d) of %s", source.which, source.step,
                   config.init_from)
  else:
    run_log.check_resumable(workdir, config, ckpt.latest_step())
    state, data_state = resume.restore(ckpt, task, config, workdir)
    start_step = int(state.step)
    if train_data is not None:
      train_data.set_state(data_state)
  clock.start(workdir, start_step)
  stop.begin(start_step)
  if lead:
    if rewind_to is not None or start_step == 0:  # not an exact resume: keep the old log
      resume.keep_log(workdir, start_step)
    run_log.write_config(workdir, config, step=start_step)
  writer = run_log.MetricWriter(workdir, enabled=lead, resume_step=start_step)
  eval_images = data.load_eval_images(config, task.sources.eval)
  ev = evaluator.Evaluator(task.inference, eval_images, devices=devices)

  p_train = parallel.parallelize(task.train_step, donate_argnums=(0,), devices=devices)
  rstate = parallel.to_devices(parallel.replicate(state, devices), devices)
  rconsts = (None if consts is None
             else parallel.to_devices(parallel.replicate(consts, devices), devices))
  block_each_step = jax.default_backend() == "cpu"  # CPU collectives can deadlock otherwise

  def evaluate(step: int, variables: Any) -> None:
    result = ev.evaluate(parallel.to_devices(parallel.replicate(variables, devices), devices),
                         list(config.corruption))
    writer.write(step, "eval", about=eval_images.label, **result.means)
    grid = result.grid_arrays(config.eval.num_grid_images)
    if lead and grid:
      pixels = visualize.save_grid(
          os.path.join(workdir, "images", f"step_{step:07d}.png"), **grid)
      writer.image(step, "eval/grid", pixels)
    # The task's selection metric (PSNR for restorers) is what best/ keeps the max of.
    ckpt.save_best(step, variables, meta, result.means[task.inference.selection_metric])

  pending: list[tuple[int, dict]] = []
  data_state: dict | None = None
  batches = (_prefetch_to_devices(train_data, devices, config.data.prefetch)
             if train_data is not None else itertools.repeat((None, None)))
  last_log_time, last_log_step = time.time(), start_step
  bar = tqdm.tqdm(total=config.total_steps, initial=start_step, disable=not lead,
                  desc="train", unit="step", dynamic_ncols=True)
  console = progress.logs_above(bar)
  check = functools.partial(_flush, names=task.finite_metrics, ckpt=ckpt)
  if start_step < config.total_steps:  # the first step is silent while XLA compiles it
    logging.info("compiling the train step (the first step includes it)")
  try:
    final = start_step == config.total_steps
    if start_step and (start_step % config.eval_every_steps == 0 or final) and not _evaluated(
        writer.path, start_step):  # the run stopped (killed) during this step's eval: redo it
      logging.info("step %d was checkpointed but not evaluated: evaluating it now", start_step)
      # The final checkpoint's inference variables may differ from the state's (PreciseBN).
      evaluate(start_step, trained_run.load_run(workdir, step=start_step).variables
               if final and task.precise_bn_batches else task.inference_variables(state))
    for step in range(start_step + 1, config.total_steps + 1):  # `step` = steps done after it
      batch, data_state = next(batches)
      rstate, metrics = p_train(rstate, batch, rconsts)
      if block_each_step:
        jax.block_until_ready(metrics)
      pending.append((step, metrics))
      bar.update(1)
      ckpt.poll()  # a failed asynchronous save stops the run now, not an interval later
      last = step == config.total_steps
      log_step = step % config.log_every_steps == 0 or last
      if log_step:
        values = check(pending)
        now = time.time()
        sps = (step - last_log_step) / max(now - last_log_time, 1e-9)
        last_log_time, last_log_step = now, step
        writer.write(step, "train", **values, steps_per_sec=sps)
        # The task's main loss ('loss', 'g_loss', ...); 'loss' when no metric is checked.
        shown = task.finite_metrics[0] if task.finite_metrics else "loss"
        bar.set_postfix({shown: f"{values.get(shown, float('nan')):.4g}"}, refresh=False)
      if block_each_step or log_step:  # steps are timed where they are known to be done
        clock.step_done(step)
      stopping = stop.reached(step)  # with several processes: the same step on every one
      checkpoint = (step % config.checkpoint_every_steps == 0 or last or stopping
                    or clock.checkpoint_due(log_step=log_step))
      evaluate_now = step % config.eval_every_steps == 0 or last
      if not (checkpoint or evaluate_now):
        continue
      check(pending)
      host_state = parallel.unreplicate(rstate)  # fetched once for both
      variables = task.inference_variables(host_state)
      if last and task.precise_bn_batches:  # final inference variables only: exact resume
        variables = _precise_bn(task, variables, batches, rconsts, step, devices, stop)
      if checkpoint:
        _check_finite_state(host_state, step, ckpt)
        ckpt.save_latest(step, host_state, data_state, variables, meta)
        clock.saved()
      if evaluate_now:
        if checkpoint:  # on disk and checksummed before the eval: a kill during it loses nothing
          ckpt.commit("latest")
        evaluate(step, variables)
      if stopping and not last:
        ckpt.wait()
        raise stop.exit(step, ckpt.step_dir("latest", step))
  finally:
    bar.close()
    console.close()
    if train_data is not None:
      train_data.close()
    try:
      ckpt.wait()
    finally:
      ckpt.close()
      writer.close()
  if lead:
    visualize.plot_curves(writer.path, os.path.join(workdir, "plots"))
  return parallel.unreplicate(rstate)


def _precise_bn(task: base.Task, variables: Any, batches, rconsts: Any, step: int,
                devices: list[jax.Device] | None, stop: preemption.StopOnSignal) -> Any:
  """The final variables with BatchNorm statistics re-estimated (config.precise_bn_batches)
  over the batches after `step`, keyed as steps step + 1, ... (`precise_bn.recalibrate`)."""
  n = task.precise_bn_batches
  logging.info("re-estimating BatchNorm statistics over %d training batches (PreciseBN)", n)
  start = time.time()
  # One process can abandon it on a signal; several must all run the same batches.
  single = jax.process_count() == 1
  out = precise_bn.recalibrate(task, variables, batches, rconsts, first_step=step + 1,
                               num_batches=n, devices=devices,
                               should_stop=lambda: single and stop.requested)
  logging.info("BatchNorm statistics re-estimated in %.1f s", time.time() - start)
  return out


def _evaluated(metrics_path: str, step: int) -> bool:
  """Whether metrics.jsonl holds an eval event of `step`."""
  return os.path.exists(metrics_path) and any(
      e.get("step") == step and e.get("kind") == "eval"
      for e in visualize.read_metrics(metrics_path))


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


def _check_finite_state(state: Any, step: int, ckpt: checkpoints.Checkpointer) -> None:
  """Raises NonFiniteLossError (naming the last saved step) when `state` holds NaN/inf.

  Loss and grad norm can stay finite while a parameter or optimizer moment has already
  overflowed: such a state is never saved, so resuming starts from the last finite one.
  """
  bad = checkpoints.nonfinite(state)
  if bad:
    raise NonFiniteLossError(
        f"non-finite state at step {step} ({len(bad)} arrays, e.g. {bad[0]}): not saved; "
        f"{_last_checkpoint(ckpt)}. {_ADVICE}")


_ADVICE = ("Lower optimizer.learning_rate, or set optimizer.grad_clip_norm (with "
           "--config.resume_optimizer=reinit_changed to resume with it)")


def _last_checkpoint(ckpt: checkpoints.Checkpointer) -> str:
  ckpt.wait()
  kept = sorted(ckpt.latest.all_steps())
  if not kept:
    return "no checkpoint was saved before it"
  last = kept[-1]
  earlier = f"--step={kept[-2]} (an earlier kept checkpoint) or " if len(kept) > 1 else ""
  return (f"the last finite checkpoint is step {last} ({ckpt.step_dir('latest', last)}), "
          "where a rerun resumes; if the rerun diverges at once, that checkpoint already "
          f"holds exploding values: rerun with {earlier}--step=0 (start over), which moves "
          f"the later checkpoints to {os.path.join(ckpt.workdir, resume.REWOUND)}")


def _flush(pending: list[tuple[int, dict]], *, names: Sequence[str],
           ckpt: checkpoints.Checkpointer) -> dict[str, float]:
  """Fetches the pending per-step metrics; raises on the first non-finite one of `names`.

  Returns the last step's values (device 0's copy; they are pmean'd, so all devices agree).
  """
  if not pending:
    return {}
  fetched = jax.device_get([m for _, m in pending])
  steps = [s for s, _ in pending]
  pending.clear()
  for step, metrics in zip(steps, fetched):
    for name in names:
      value = float(np.asarray(metrics[name])[0])
      if not math.isfinite(value):
        raise NonFiniteLossError(
            f"non-finite {name} ({value}) at step {step}: training stopped; "
            f"{_last_checkpoint(ckpt)}. {_ADVICE}")
  return {k: float(np.asarray(v)[0]) for k, v in fetched[-1].items()}
