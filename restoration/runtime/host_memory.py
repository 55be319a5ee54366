"""Process set-up for training on a CPU: keep freed memory instead of page-faulting it back.

Why (WORKSPACE, issue 17): XLA:CPU allocates a compiled step's scratch at every call (2.5 GiB
for DnCNN's train step) and frees it when the step ends. glibc serves blocks over 32 MiB with
mmap and unmaps them on free, so every step page-faults its whole scratch in again: 685k
faults and ~1.5 s of system time in a ~7 s DnCNN step. `configure()`, called once at start-up
by run.main (launch.py's process set-up) and the benchmarks, makes two process-wide settings:

- glibc `mallopt`: no mmap for large blocks (M_MMAP_MAX = 0) and no trimming of the heap's free
  top (M_TRIM_THRESHOLD = -1), so a freed block stays in the process for the next step. The
  process keeps its peak heap: resident memory does not shrink after the largest step.
- synchronous dispatch on the CPU backend: a step then allocates and frees on the calling
  thread, in glibc's main heap. Run asynchronously it runs on a worker thread, whose glibc
  arena cannot hold blocks over 64 MiB and maps them anyway. The trainer waits for every CPU
  step (modes/train.py), so no overlap is lost. This one only takes effect before JAX starts its
  backends, hence "at start-up".

Linux with glibc only; a no-op elsewhere. Switch: RESTORATION_HOST_MEMORY=retain (default) or
`system` (change neither setting).
"""

import ctypes
import os
import platform
import sys

import jax

_M_TRIM_THRESHOLD = -1   # glibc's mallopt parameter numbers (malloc.h)
_M_MMAP_MAX = -4
MODES = ("retain", "system")


def mode() -> str:
  """The switch RESTORATION_HOST_MEMORY, checked."""
  value = os.environ.get("RESTORATION_HOST_MEMORY", "retain").strip().lower() or "retain"
  if value not in MODES:
    raise ValueError(f"RESTORATION_HOST_MEMORY={value!r}; allowed: {', '.join(MODES)}")
  return value


def available() -> bool:
  """True on Linux with glibc, where the settings exist."""
  return sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


def configure() -> bool:
  """Applies the settings above (switch 'retain', Linux/glibc); True when they were made."""
  if mode() == "system" or not available():
    return False
  libc = ctypes.CDLL("libc.so.6")
  # mallopt returns 1 on success; -1 for the trim threshold means "never trim" (man mallopt).
  if libc.mallopt(_M_MMAP_MAX, 0) != 1 or libc.mallopt(_M_TRIM_THRESHOLD, -1) != 1:
    return False
  jax.config.update("jax_cpu_enable_async_dispatch", False)
  return True


__all__ = ["available", "configure", "mode", "MODES"]
