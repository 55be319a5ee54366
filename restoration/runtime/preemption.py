"""Graceful stop on SIGTERM / SIGINT: finish the step, checkpoint, stop workers, exit 128+signal.

SLURM (`scancel`, preemption, `--time` with `--signal`) and cloud schedulers stop jobs with
SIGTERM, then SIGKILL after a grace period. While `StopOnSignal` is active the first SIGTERM or
SIGINT does not kill: the training loop asks `stop.reached(step)` after every step; once it
says so, the loop saves a checkpoint at that step, closes the input pipeline (grain worker
processes included) and raises `Preempted`, a SystemExit whose status is 128 + the signal:

  143  SIGTERM (128 + 15)      130  SIGINT / Ctrl-C (128 + 2)

the statuses shells and schedulers report for a job killed by that signal, so a job script can
requeue on them (`[ $? -eq 143 ] && scontrol requeue $SLURM_JOB_ID`). Rerunning the same command
resumes exactly.

One process: a Python handler sets a flag; the loop stops after the step it is in. A second
signal while stopping gets the default behaviour (immediate exit).

Several processes (`jax.distributed`): every process must stop after the same step (the next
step's collectives would wait for a process that left) and save its part of the same
checkpoint. Schedulers signal every task, but not at the same instant, and sometimes only one.
The agreement is JAX's preemption sync point, enabled by `jax.distributed.initialize`: a
C-level SIGTERM handler that JAX installs tells the coordination service, which propagates the
notice to every process; each then reports the step it is at and all take max + 1 as the stop
step (`multihost_utils.reached_preemption_sync_point`, asked after every step with the global
step number, the counter Orbax's own calls use too). A Python
SIGTERM handler would replace JAX's, so none is installed there; SIGINT (which JAX does not
watch) is recorded in the coordination service's key-value store and handed on to JAX's
mechanism as a SIGTERM to this process. Every process then exits with the same status: 130
when any process got SIGINT, else 143. A second SIGTERM is absorbed by JAX's handler (the
scheduler's SIGKILL ends the job); a second SIGINT interrupts at once.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

import jax
from absl import logging
from jax.experimental import multihost_utils

SIGNALS = (signal.SIGTERM, signal.SIGINT)
_KEY = "restoration/stop_signal/"  # + process index -> the signal number it received


class Preempted(SystemExit):
  """Raised by the loop after the checkpoint of a signalled stop; exit status 128 + signum."""

  def __init__(self, signum: int, message: str):
    super().__init__(128 + int(signum))
    self.signum = int(signum)
    self.message = message

  def __str__(self) -> str:
    return self.message


def _distributed_client():
  """The coordination service's client of a multi-process job with JAX's preemption service
  on, else None."""
  if jax.process_count() < 2 or not jax.distributed.is_initialized():
    return None
  # No public accessor: multihost_utils itself reads these.
  from jax._src import distributed  # pylint: disable=g-import-not-at-top
  if distributed.global_state.preemption_sync_manager is None:
    logging.warning("jax_enable_preemption_service is off: SIGTERM is not caught, a signalled "
                    "multi-process run stops without a checkpoint")
    return None
  return distributed.global_state.client


class StopOnSignal:
  """Context manager: while active, SIGTERM/SIGINT ask for a stop instead of killing.

  `reached(step)`, called by every process after every step, says when to stop. Outside the
  main thread (signal handlers cannot be installed there) single-process runs cannot be
  stopped this way and `reached` stays False.
  """

  def __init__(self, signals=SIGNALS):
    self.signals = tuple(signals)
    self.signum: int | None = None  # the signal this process received (or stops for)
    self._previous: dict[int, object] = {}
    self._multi = None

  @property
  def requested(self) -> bool:
    """Whether this process received a signal (with several, the stop step comes later)."""
    return self.signum is not None

  def _handle(self, signum, frame):  # pylint: disable=unused-argument
    self.signum = signum
    self._restore()  # a second signal: default behaviour, i.e. stop now
    print(f"received {signal.Signals(signum).name}: finishing the current step, then saving a "
          "checkpoint and exiting", file=sys.stderr, flush=True)
    if self._multi is not None:
      try:  # for the exit status only: the stop itself must not depend on it
        self._multi.key_value_set(f"{_KEY}{jax.process_index()}", str(int(signum)))
      except Exception as e:  # pylint: disable=broad-except
        logging.warning("could not record %s for the other processes: %s",
                        signal.Signals(signum).name, e)
      os.kill(os.getpid(), signal.SIGTERM)  # JAX's handler: tells every process

  def _restore(self) -> None:
    for s, handler in self._previous.items():
      signal.signal(s, handler)
    self._previous.clear()

  def __enter__(self) -> "StopOnSignal":
    self._multi = _distributed_client()
    if threading.current_thread() is threading.main_thread():
      for s in self.signals:
        if self._multi is not None and s == signal.SIGTERM:
          continue  # JAX's C-level handler (installed by jax.distributed.initialize) owns it
        self._previous[s] = signal.signal(s, self._handle)
    return self

  def __exit__(self, *exc) -> None:
    self._restore()

  def begin(self, step: int) -> None:
    """Tells JAX's preemption sync the step training starts from (before any compile): a
    notice that arrives before the first step is then agreed relative to it, not to step 0."""
    if self._multi is not None:
      multihost_utils.reached_preemption_sync_point(int(step))

  def reached(self, step: int) -> bool:
    """Whether to checkpoint and stop after `step`; the same answer on every process."""
    if self._multi is None:
      return self.requested
    if not multihost_utils.reached_preemption_sync_point(int(step)):
      return False
    self.signum = self._job_signal()
    return True

  def _job_signal(self) -> int:
    """SIGINT when any process received it (recorded by `_handle`), else SIGTERM."""
    received = [int(v) for _, v in self._multi.key_value_dir_get(_KEY)]
    if self.signum is not None:
      received.append(self.signum)
    return signal.SIGINT if signal.SIGINT in received else signal.SIGTERM

  def exit(self, step: int, checkpoint_dir: str) -> Preempted:
    """The exception to raise once the step's checkpoint is on disk."""
    name = signal.Signals(self.signum).name
    who = (f" (all {jax.process_count()} processes stop after the same step)"
           if self._multi is not None else "")
    message = (f"stopped by {name} after step {step}{who}: checkpoint {checkpoint_dir}; rerun "
               f"the same command to resume (exit status {128 + self.signum})")
    print(message, file=sys.stderr, flush=True)
    return Preempted(self.signum, message)
