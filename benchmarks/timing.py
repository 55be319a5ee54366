"""Wall-time helpers shared by the benchmark scripts (one timing convention for all of them).

A timed call ends when its result is ready (`jax.block_until_ready`); medians, not means, since
the shared CPU's load comes in bursts; interleaved rounds (every variant once per round) so
that a burst hits all variants alike.
"""

import time
from collections.abc import Callable, Hashable, Mapping

import jax
import numpy as np


def seconds(fn: Callable, *args) -> float:
  """Wall seconds of one call `fn(*args)`, until its result is ready."""
  t0 = time.perf_counter()
  jax.block_until_ready(fn(*args))
  return time.perf_counter() - t0


def median_ms(fn: Callable, *args, n: int = 5) -> float:
  """Median ms of `n` calls after one untimed (compiling) call."""
  jax.block_until_ready(fn(*args))
  return 1e3 * float(np.median([seconds(fn, *args) for _ in range(n)]))


def interleaved(runs: Mapping[Hashable, Callable[[], float]], rounds: int,
                warmup: int = 1) -> dict[Hashable, list[float]]:
  """Each `run()` times itself and returns seconds; `warmup` untimed rounds, then `rounds`
  rounds in which every run is called once, in order. Returns the times per run."""
  for _ in range(warmup):
    for run in runs.values():
      run()
  times = {k: [] for k in runs}
  for _ in range(rounds):
    for k, run in runs.items():
      times[k].append(run())
  return times


def ms_text(seconds: float) -> str:
  """Milliseconds for a table: 3 significant digits below 100 ms (GPU steps), whole above."""
  ms = seconds * 1e3
  return f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"
