"""The workdir lock across nodes: host and pid recorded; a stale lock is taken over only on
its own host; otherwise the refusal names the holder and the override."""

import json
import os
import socket
import subprocess
import sys

import pytest

from restoration.runtime import workdir_lock


def dead_pid() -> int:
  """The pid of a process that has exited (and been reaped) on this host."""
  p = subprocess.Popen([sys.executable, "-c", "pass"])
  p.wait()
  return p.pid


def write_lock(workdir, **holder):
  path = os.path.join(workdir, workdir_lock.LOCK_NAME)
  with open(path, "w") as f:
    json.dump({"since": "2026-01-01 00:00:00", **holder}, f)
  return path


def test_lock_records_host_and_pid(tmp_path):
  path = workdir_lock.acquire(str(tmp_path))
  holder = json.load(open(path))
  assert holder["host"] == socket.gethostname() and holder["pid"] == os.getpid()
  workdir_lock.release(path)
  assert not os.path.exists(path)


def test_stale_lock_of_this_host_is_taken_over(tmp_path):
  pid = dead_pid()
  write_lock(str(tmp_path), host=socket.gethostname(), pid=pid)
  path = workdir_lock.acquire(str(tmp_path))
  assert json.load(open(path))["pid"] == os.getpid()
  workdir_lock.release(path)


def test_lock_of_another_host_is_never_taken_over(tmp_path):
  """A pid that is dead here proves nothing about a process on another node."""
  pid = dead_pid()
  path = write_lock(str(tmp_path), host="gpu-node-17", pid=pid)
  before = open(path).read()
  with pytest.raises(workdir_lock.WorkdirLocked) as refused:
    workdir_lock.acquire(str(tmp_path))
  message = str(refused.value)
  assert f"in use by pid {pid} on host gpu-node-17 since 2026-01-01 00:00:00" in message
  assert "another host cannot be checked" in message and message.endswith(f"rm {path}")
  assert "\n" not in message
  assert open(path).read() == before  # left as it was
  os.remove(path)  # the override the message names
  workdir_lock.release(workdir_lock.acquire(str(tmp_path)))
