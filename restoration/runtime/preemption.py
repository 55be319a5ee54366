"""Graceful stop on SIGTERM / SIGINT: finish the step, checkpoint, stop workers, exit 128+signal.

SLURM (`scancel`, preemption, `--time` with `--signal`) and cloud schedulers stop jobs with
SIGTERM, then SIGKILL after a grace period. While `StopOnSignal` is active the first SIGTERM or
SIGINT only sets a flag; the training loop sees it after the current step, saves a checkpoint
at that step, closes the input pipeline (grain worker processes included) and raises
`Preempted`, a SystemExit whose status is 128 + the signal number:

  143  SIGTERM (128 + 15)      130  SIGINT / Ctrl-C (128 + 2)

the statuses shells and schedulers report for a job killed by that signal, so a job script can
requeue on them (`[ $? -eq 143 ] && scontrol requeue $SLURM_JOB_ID`). Rerunning the same command
resumes exactly. A second signal while stopping gets the default behaviour (immediate exit).

Single-host only: each process watches its own signals; on several hosts the processes would
have to agree on the stopping step (not done here).
"""

from __future__ import annotations

import signal
import sys
import threading

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Preempted(SystemExit):
  """Raised by the loop after the checkpoint of a signalled stop; exit status 128 + signum."""

  def __init__(self, signum: int, message: str):
    super().__init__(128 + int(signum))
    self.signum = int(signum)
    self.message = message

  def __str__(self) -> str:
    return self.message


class StopOnSignal:
  """Context manager: while active, SIGTERM/SIGINT set `requested` instead of killing.

  Outside the main thread (signal handlers cannot be installed there) it does nothing and
  `requested` stays False.
  """

  def __init__(self, signals=SIGNALS):
    self.signals = tuple(signals)
    self.signum: int | None = None
    self._previous: dict[int, object] = {}

  @property
  def requested(self) -> bool:
    return self.signum is not None

  def _handle(self, signum, frame):  # pylint: disable=unused-argument
    self.signum = signum
    self._restore()  # a second signal: default behaviour, i.e. stop now
    print(f"received {signal.Signals(signum).name}: finishing the current step, then saving a "
          "checkpoint and exiting", file=sys.stderr, flush=True)

  def _restore(self) -> None:
    for s, handler in self._previous.items():
      signal.signal(s, handler)
    self._previous.clear()

  def __enter__(self) -> "StopOnSignal":
    if threading.current_thread() is threading.main_thread():
      for s in self.signals:
        self._previous[s] = signal.signal(s, self._handle)
    return self

  def __exit__(self, *exc) -> None:
    self._restore()

  def exit(self, step: int, checkpoint_dir: str) -> Preempted:
    """The exception to raise once the step's checkpoint is on disk."""
    name = signal.Signals(self.signum).name
    message = (f"stopped by {name} after step {step}: checkpoint {checkpoint_dir}; rerun the "
               f"same command to resume (exit status {128 + self.signum})")
    print(message, file=sys.stderr, flush=True)
    return Preempted(self.signum, message)
