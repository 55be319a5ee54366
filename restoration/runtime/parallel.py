"""The one place that knows how steps are parallelised (data parallel `jax.pmap` over 'batch').

Everything else writes per-device step functions that may use `lax.pmean(x, AXIS)` and calls
`parallelize`, `replicate`, `to_devices` and `unreplicate` from here, so a later move to
`shard_map` / `jit` with named shardings touches this module only.
"""

import functools
import os
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from absl import logging

AXIS = "batch"


def maybe_initialize_distributed() -> None:
  """Calls `jax.distributed.initialize` when the environment says the job is multi-host.

  Recognised: JAX_COORDINATOR_ADDRESS (+ JAX_NUM_PROCESSES, JAX_PROCESS_ID) set explicitly,
  or a SLURM job with more than one task (JAX auto-detects the rest). Must run before any
  other JAX call touches the backend.
  """
  addr = os.environ.get("JAX_COORDINATOR_ADDRESS")
  if addr or int(os.environ.get("SLURM_NTASKS", "1")) > 1:
    # CPU-only multi-process runs need a collectives backend; no effect on GPU/TPU.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  if addr:
    num = os.environ.get("JAX_NUM_PROCESSES")
    pid = os.environ.get("JAX_PROCESS_ID")
    jax.distributed.initialize(
        coordinator_address=addr,
        num_processes=int(num) if num else None,
        process_id=int(pid) if pid else None)
  elif int(os.environ.get("SLURM_NTASKS", "1")) > 1:
    jax.distributed.initialize()
  else:
    return
  logging.info("jax.distributed: process %d of %d, %d local devices",
               jax.process_index(), jax.process_count(), jax.local_device_count())


def parallelize(step_fn: Callable[..., Any], *, donate_argnums: Sequence[int] = (),
                devices: Sequence[jax.Device] | None = None) -> Callable[..., Any]:
  """Wraps a per-device step so its array arguments carry a leading local-device axis."""
  return jax.pmap(step_fn, axis_name=AXIS, donate_argnums=tuple(donate_argnums),
                  devices=devices)


def replicate(tree: Any, devices: Sequence[jax.Device] | None = None) -> Any:
  """A host pytree stacked once per local device (leading axis = local device).

  Returned as host numpy (read-only broadcast views, no copies): the pmapped step transfers
  them on its first call and returns device-resident outputs that later steps reuse. Host
  arrays are the portable input for pmap in single- and multi-process runs alike.
  """
  n = len(devices) if devices is not None else jax.local_device_count()
  return jax.tree.map(lambda x: np.broadcast_to(np.asarray(x), (n, *np.shape(x))), tree)


def unreplicate(tree: Any) -> Any:
  """First device's copy of a replicated pytree, as host numpy arrays."""
  return jax.device_get(jax.tree.map(lambda x: x[0], tree))


def local_device_count(devices: Sequence[jax.Device] | None = None) -> int:
  return len(devices) if devices is not None else jax.local_device_count()


def to_devices(tree: Any, devices: Sequence[jax.Device] | None = None) -> Any:
  """Places a host pytree shaped [local_devices, ...] on the devices, laid out as pmap expects.

  Use for inputs that stay on the device across steps (the state, the device-resident
  dataset), so pmap does not transfer them again at every call. An identity pmap produces
  exactly pmap's own output layout, in single- and multi-process runs alike (a hand-built
  global array is not accepted by multi-process pmap).
  """
  return _identity(tuple(devices) if devices is not None else None)(tree)


@functools.cache
def _identity(devices: tuple[jax.Device, ...] | None) -> Callable[[Any], Any]:
  return jax.pmap(lambda x: x, axis_name=AXIS, devices=devices)


def sum_over_processes(x: np.ndarray) -> np.ndarray:
  """Elementwise sum of a host array over all processes (every process gets the result)."""
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  return np.asarray(multihost_utils.process_allgather(np.asarray(x))).sum(axis=0)
