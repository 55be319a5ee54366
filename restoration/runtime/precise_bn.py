"""PreciseBN: the final BatchNorm statistics re-estimated over many training batches.

A BN layer's running statistics are an exponential average dominated by the last few batches
(KAIR's DnCNN setting, flax momentum 0.1: ~90% the last batch's 64 crops), and they are read
only at inference. Wu & Johnson 2021 ("Rethinking 'Batch' in BatchNorm") re-estimate them
after training, weights fixed: each layer's mean and variance become the averages of its
per-batch statistics over N batches of the training stream, the network in training mode.
Measured on the DnCNN CPU hour (WORKSPACE, "Time to quality"): +0.035 dB on BSD68 sigma 25
for 50 batches (~40 s on 2 cores); 200 batches gave the same.

`config.precise_bn_batches = N` makes this a step of the training loop at the last step: the
inference variables saved with the final checkpoint (latest/ and, if it wins, best/) and the
final eval carry the re-estimated statistics. The TRAINING state keeps the running averages,
and the final checkpoint stores the data position after the last training batch, so a run
whose total_steps is raised later resumes exactly as if this had not happened. The batches
continue the run's own stream (the next items of the data iterator; corruption keys of steps
total_steps + 1 ... + N, the steps a longer run would take): the test set is never read.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging
from jax import lax

from restoration import models
from restoration.runtime import parallel

FIELD = "precise_bn_batches"


def check(config: ml_collections.ConfigDict, task_name: str, model_name: str,
          batch_stats: Any, *, supported: bool) -> int:
  """config.precise_bn_batches as an int; ValueError (naming the field) when it is negative,
  the task cannot re-estimate statistics, or the model has no BatchNorm to re-estimate."""
  n = config.get(FIELD, 0)
  if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
    raise ValueError(f"config.{FIELD} must be an integer >= 0 (0: off), got {n!r}")
  if not n:
    return 0
  if not supported:
    raise ValueError(f"config.{FIELD}={n}: task {task_name!r} does not re-estimate BatchNorm "
                     "statistics (supervised, paired, inpaint, mask and ffdnet tasks do); "
                     "set it to 0")
  if not jax.tree.leaves(batch_stats):
    raise ValueError(f"config.{FIELD}={n}: model {model_name!r} as configured has no "
                     "BatchNorm statistics to re-estimate (dncnn, ffdnet, unet with "
                     "model.kwargs.batch_norm=True have); set it to 0")
  if "bn_momentum" not in models.model_fields(model_name):
    raise ValueError(f"config.{FIELD}={n}: model {model_name!r} has no bn_momentum field, "
                     "which the re-estimation sets to 0; set it to 0")
  return int(n)


def batch_statistics_step(task: Any, params: Any, batch_stats: Any, batch: Any, consts: Any,
                          step: jax.Array) -> Any:
  """Per-device: the BN statistics of the global training batch of `step` (pmean'd).

  With momentum 0 a BN layer's updated "running" statistics are that batch's own. Inside the
  step the layers already normalise with global-batch statistics (bn_axis_name); the pmean
  only makes the replicas bitwise identical.
  """
  model = task.model.clone(bn_momentum=0.0)
  model_input, _, dropout_key = task.training_input(batch, consts, step)
  _, updates = model.apply({"params": params, "batch_stats": batch_stats}, model_input,
                           train=True, mutable=["batch_stats"], rngs={"dropout": dropout_key})
  return lax.pmean(updates["batch_stats"], parallel.AXIS)


def recalibrate(task: Any, variables: dict[str, Any], batches: Iterator[tuple[Any, Any]],
                consts: Any, *, first_step: int, num_batches: int,
                devices: Sequence[jax.Device] | None = None,
                should_stop: Callable[[], bool] = lambda: False) -> dict[str, Any]:
  """`variables` (inference: params + batch_stats) with batch_stats averaged over the next
  `num_batches` device batches of `batches` (the loop's prefetching iterator, yielding
  (device batch, data state)); batch i is corrupted with the keys of step first_step + i.

  Means average exactly; variances are the average per-batch (biased) variances, the
  quantity each training step normalised with (PreciseBN's estimator). When `should_stop()`
  turns true (a stop signal in a one-process run) the re-estimation is abandoned and
  `variables` come back unchanged, so the final checkpoint is saved at once; a partial
  average would be a different estimator than the config asked for.
  """
  p_stats = parallel.parallelize(functools.partial(batch_statistics_step, task),
                                 devices=devices)
  n_local = parallel.local_device_count(devices)
  rvars = parallel.to_devices(parallel.replicate(
      {"params": variables["params"], "batch_stats": variables["batch_stats"]}, devices),
                              devices)
  total = None
  for i in range(num_batches):
    if should_stop():
      logging.warning("stop requested: BatchNorm re-estimation abandoned after %d of %d "
                      "batches; the final variables keep the running statistics", i,
                      num_batches)
      return variables
    batch, _ = next(batches)
    step = np.full((n_local,), first_step + i, np.int32)
    stats = p_stats(rvars["params"], rvars["batch_stats"], batch, consts, step)
    host = jax.tree.map(lambda x: np.asarray(x[0], np.float64), jax.device_get(stats))
    total = host if total is None else jax.tree.map(np.add, total, host)
  averaged = jax.tree.map(lambda t, old: (t / num_batches).astype(np.asarray(old).dtype),
                          total, variables["batch_stats"])
  return {**variables, "batch_stats": averaged}

