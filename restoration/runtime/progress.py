"""What the training loop tells its user, and when it saves by the clock.

  where             "no checkpoint in W, starting from step 0" / "resuming W from step N"
  estimate          once the first steps after compilation are timed: seconds per step, the
                    time the remaining steps take and when they end; on a CPU, a run of hours
                    gets a one-line hint towards the configs' `:quick` variants
  timed saves       `config.checkpoint_every_minutes`: a checkpoint also every N minutes of wall
                    time, so an interrupted long run keeps its work (exact resume holds at any
                    step: the state and the iterator position are saved together)
  logs_above(bar)   log lines printed above the progress bar instead of glued onto it
"""

from __future__ import annotations

import contextlib
import datetime
import sys
import time

import jax
import numpy as np
import tqdm
from absl import logging
from jax.experimental import multihost_utils
from tqdm.contrib import DummyTqdmFile

QUICK_HINT_SECONDS = 3600.0  # on a CPU, runs estimated longer than this get the `:quick` hint
_MIN_TIMED_STEPS, _MIN_TIMED_SECONDS, _MAX_TIMED_STEPS = 3, 2.0, 100


def format_duration(seconds: float) -> str:
  seconds = int(round(seconds))
  days, rest = divmod(seconds, 86400)
  hours, rest = divmod(rest, 3600)
  minutes, secs = divmod(rest, 60)
  if days:
    return f"{days} d {hours} h"
  if hours:
    return f"{hours} h {minutes:02d} min"
  return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def estimate_message(seconds_per_step: float, remaining: int, *, backend: str,
                     now: float | None = None) -> str:
  """One line: s/step, how long the remaining steps take, when they end (+ the CPU hint)."""
  total = seconds_per_step * remaining
  end = datetime.datetime.fromtimestamp((time.time() if now is None else now) + total)
  line = (f"{seconds_per_step:.3g} s/step: the remaining {remaining:,} steps take about "
          f"{format_duration(total)} (ends around {end:%a %Y-%m-%d %H:%M}; evals extra)")
  if backend == "cpu" and total > QUICK_HINT_SECONDS:
    line += (". This is a full-size run on a CPU: add `:quick` to the --config file (e.g. "
             "--config=configs/unet1024.py:quick) for a run of minutes")
  return line


class Clock:
  """Times the loop: the one-off estimate, and when a timed checkpoint is due."""

  def __init__(self, total_steps: int, *, checkpoint_minutes: float,
               backend: str | None = None):
    if isinstance(checkpoint_minutes, bool) or not checkpoint_minutes >= 0:
      raise ValueError("config.checkpoint_every_minutes must be a number >= 0 (0: only "
                       f"checkpoint_every_steps), got {checkpoint_minutes!r}")
    self.total_steps = total_steps
    self.backend = backend or jax.default_backend()
    self.every_s = 60.0 * float(checkpoint_minutes)
    self.last_save = time.monotonic()
    self._first: tuple[int, float] | None = None  # (step, time) when the first step ended
    self._reported = False

  def start(self, workdir: str, start_step: int) -> None:
    """Says where the run starts; the clock for timed checkpoints starts now."""
    total = self.total_steps
    if start_step == 0:
      logging.info("no checkpoint in %s, starting from step 0 (of %d)", workdir, total)
    elif start_step >= total:
      logging.warning("%s already holds step %d >= total_steps=%d: nothing to train (raise "
                      "--config.total_steps to continue it)", workdir, start_step, total)
    else:
      logging.info("resuming %s from step %d (of %d)", workdir, start_step, total)
    self._reported = start_step >= total
    self.last_save = time.monotonic()

  def step_done(self, step: int) -> None:
    """Logs the estimate once enough steps after the first (which compiles) are timed."""
    if self._reported:
      return
    now = time.monotonic()
    if self._first is None:
      self._first = (step, now)
      return
    steps, seconds = step - self._first[0], now - self._first[1]
    if (steps >= _MIN_TIMED_STEPS and seconds >= _MIN_TIMED_SECONDS) or steps >= _MAX_TIMED_STEPS:
      self._reported = True
      if step < self.total_steps:
        logging.info("%s", estimate_message(seconds / steps, self.total_steps - step,
                                            backend=self.backend))

  def checkpoint_due(self, *, log_step: bool) -> bool:
    """Whether `checkpoint_every_minutes` have passed since the last save. Processes must agree
    (every one saves), so with several the lead's clock decides, on log steps only."""
    if self.every_s <= 0:
      return False
    due = time.monotonic() - self.last_save >= self.every_s
    if jax.process_count() == 1:
      return due
    if not log_step:
      return False
    return bool(multihost_utils.broadcast_one_to_all(np.asarray(due)))

  def saved(self) -> None:
    self.last_save = time.monotonic()


def logs_above(bar: tqdm.tqdm) -> contextlib.ExitStack:
  """Routes stderr (absl's log lines) through `tqdm.write` while `bar` is shown; `.close()` it.

  The bar keeps drawing on the real stderr; a log line clears it, prints, and redraws it.
  """
  stack = contextlib.ExitStack()
  if bar.disable:
    return stack
  proxy = DummyTqdmFile(sys.stderr)
  stack.enter_context(contextlib.redirect_stderr(proxy))
  handler = logging.get_absl_handler().python_handler
  old = handler.stream
  handler.stream = proxy
  stack.callback(setattr, handler, "stream", old)
  stack.callback(proxy.flush)  # pylint: disable=no-member
  return stack
