"""The one place that knows how steps are parallelised (data parallel `jax.pmap` over 'batch').

Everything else writes per-device step functions that may use `lax.pmean(x, AXIS)` and calls
`parallelize`, `replicate`, `to_devices` and `unreplicate` from here, so a later move to
`shard_map` / `jit` with named shardings touches this module only.
"""

import functools
import os
import re
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from absl import logging

AXIS = "batch"


def _tasks_on_this_node(environ) -> int:
  """How many tasks of this SLURM job step run on this node (1 outside SLURM).

  SLURM_STEP_TASKS_PER_NODE (srun) or SLURM_TASKS_PER_NODE reads like '4(x2),3': per node, in
  node order; SLURM_NODEID says which entry is this node's.
  """
  spec = environ.get("SLURM_STEP_TASKS_PER_NODE") or environ.get("SLURM_TASKS_PER_NODE")
  if not spec:
    return 1
  counts = []
  for part in spec.split(","):
    match = re.fullmatch(r"(\d+)(?:\(x(\d+)\))?", part.strip())
    if not match:
      return 1
    counts += [int(match[1])] * int(match[2] or 1)
  node = int(environ.get("SLURM_NODEID", "0") or 0)
  return counts[node] if node < len(counts) else counts[-1]


def visible_gpus(environ=None) -> int | None:
  """GPUs this process may use as the scheduler set them, read before JAX starts (None: not
  said). CUDA_VISIBLE_DEVICES (set by SLURM's --gres/--gpus), else SLURM_GPUS_ON_NODE."""
  environ = os.environ if environ is None else environ
  cvd = environ.get("CUDA_VISIBLE_DEVICES")
  if cvd is not None:
    ids = [d.strip() for d in cvd.split(",") if d.strip()]
    return 0 if ids[:1] == ["-1"] else len(ids)
  n = environ.get("SLURM_GPUS_ON_NODE", "")
  return int(n) if n.isdigit() else None


def distributed_args(environ=None) -> dict[str, Any] | None:
  """What `jax.distributed.initialize` gets for this environment; None: a single-process run.

  JAX_COORDINATOR_ADDRESS (+ JAX_NUM_PROCESSES, JAX_PROCESS_ID) given explicitly, or a SLURM
  job step with more than one task. JAX's SLURM detection fills in the rest but gives each task
  only the GPU numbered by its SLURM_LOCALID: right for one task per GPU, one GPU per node for
  one task per node. The launch this project documents is one task per node driving all of its
  GPUs (pmap over local devices, one input pipeline and one host copy of the data per node), so
  a task alone on its node, or one that SLURM bound to fewer GPUs than there are tasks on the
  node, is given every GPU it sees.
  """
  environ = os.environ if environ is None else environ
  addr = environ.get("JAX_COORDINATOR_ADDRESS")
  if addr:
    num, pid = environ.get("JAX_NUM_PROCESSES"), environ.get("JAX_PROCESS_ID")
    return {"coordinator_address": addr, "num_processes": int(num) if num else None,
            "process_id": int(pid) if pid else None}
  if int(environ.get("SLURM_NTASKS", "1") or 1) <= 1:
    return None
  gpus, tasks = visible_gpus(environ), _tasks_on_this_node(environ)
  if gpus and (tasks == 1 or gpus < tasks):
    return {"local_device_ids": list(range(gpus))}
  return {}  # one task per GPU: JAX's own SLURM_LOCALID choice


def maybe_initialize_distributed() -> None:
  """Calls `jax.distributed.initialize` when the environment says the job is multi-process
  (`distributed_args`). Must run before any other JAX call touches the backend."""
  args = distributed_args()
  if args is None:
    return
  # CPU-only multi-process runs need a collectives backend; no effect on GPU/TPU.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(**args)
  logging.info("jax.distributed: process %d of %d, %d local devices",
               jax.process_index(), jax.process_count(), jax.local_device_count())


def describe(batch_size: int, devices: Sequence[jax.Device] | None = None,
             environ=None) -> str:
  """Logs (and returns) 'P processes x D local devices = N devices; global batch B (b per
  device)', and warns in one line when the job sees GPUs that JAX does not use."""
  environ = os.environ if environ is None else environ
  local, processes = local_device_count(devices), jax.process_count()
  total = local * processes
  line = (f"{processes} process{'es' if processes > 1 else ''} x {local} local "
          f"{jax.default_backend()} device{'s' if local > 1 else ''} = {total} devices; global "
          f"batch {batch_size} ({batch_size // max(total, 1)} per device)")
  logging.info("%s", line)
  gpus, tasks = visible_gpus(environ), _tasks_on_this_node(environ)
  if gpus:
    # Tasks that SLURM bound to their own GPUs each see fewer than the node has.
    seen = gpus * tasks if gpus < tasks else gpus
    used = local * tasks if jax.default_backend() == "gpu" else 0
    if seen > used:
      logging.warning(
          "this node has %d GPUs for the job but JAX uses %d (%d task(s) x %d %s device(s)): "
          "see the README's 'Cluster runs' section", seen, used, tasks, local,
          jax.default_backend())
  return line


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
