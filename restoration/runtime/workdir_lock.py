"""One training run per workdir: `<workdir>/LOCK` holds the host and pid of the run using it.

Taken with O_CREAT | O_EXCL (atomic, also on NFS v3+), so of two runs started together exactly
one wins; the other raises `WorkdirLocked` at once, naming the holder. A lock left by a dead
process (kill -9, node crash) is stale: on the same host a pid that no longer runs is detected
and the lock taken over (with a warning); a lock from another host cannot be checked from here,
so the message says how to remove it. Taking over renames the stale file first: only one of two
runs racing for the same stale lock can rename it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time

from absl import logging

from restoration.runtime import exit_codes

LOCK_NAME = "LOCK"
_HALF_WRITTEN_S = 10.0  # an unreadable lock older than this was left by a killed run


class WorkdirLocked(RuntimeError):
  """Another live run holds the workdir."""
  exit_status = exit_codes.WORKDIR_IN_USE


def _pid_alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # exists, owned by someone else
    return True
  return True


def _read(path: str) -> dict | None:
  try:
    with open(path) as f:
      holder = json.load(f)
    return holder if isinstance(holder, dict) else {}
  except FileNotFoundError:
    return None
  except (OSError, ValueError):
    return {}  # half-written by a process killed while taking it


def _age(path: str) -> float:
  try:
    return time.time() - os.path.getmtime(path)
  except FileNotFoundError:
    return 0.0


def _try_create(path: str, me: dict) -> bool:
  try:
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
  except FileExistsError:
    return False
  with os.fdopen(fd, "w") as f:
    json.dump(me, f)
  return True


def acquire(workdir: str) -> str:
  """Takes the workdir's lock; returns its path. Raises WorkdirLocked naming the holder."""
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, LOCK_NAME)
  host = socket.gethostname()
  me = {"host": host, "pid": os.getpid(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
  for _ in range(3):  # create; or clear a stale lock and create again
    if _try_create(path, me):
      return path
    holder = _read(path)
    if holder is None:
      continue  # released meanwhile
    pid, where = holder.get("pid"), holder.get("host")
    dead = where == host and isinstance(pid, int) and not _pid_alive(pid)
    if dead or (not holder and _age(path) > _HALF_WRITTEN_S):
      stale = f"{path}.stale.{os.getpid()}"
      with contextlib.suppress(FileNotFoundError):  # another run took it first
        os.rename(path, stale)
        os.remove(stale)
        logging.warning("workdir %s: removed the stale lock of pid %s (no longer running)",
                        workdir, pid)
      continue
    if where == host and pid == os.getpid():
      raise WorkdirLocked(f"workdir {workdir} is already in use by this process")
    why = ("" if where == host else
           f" (a process on another host cannot be checked from {host})")
    raise WorkdirLocked(
        f"workdir {workdir} is in use by pid {pid} on host {where} since "
        f"{holder.get('since', '?')}{why}; wait for it, use another --workdir, or, if that "
        f"run is dead, delete the lock file: rm {path}")
  raise WorkdirLocked(f"workdir {workdir}: could not take the lock {path}")


def release(path: str) -> None:
  """Removes the lock if it is still ours."""
  holder = _read(path)
  if holder and holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
    with contextlib.suppress(FileNotFoundError):
      os.remove(path)


@contextlib.contextmanager
def hold(workdir: str, *, enabled: bool = True):
  """Holds the lock for the duration of the block (a no-op when not `enabled`)."""
  if not enabled:
    yield None
    return
  path = acquire(workdir)
  try:
    yield path
  finally:
    release(path)
