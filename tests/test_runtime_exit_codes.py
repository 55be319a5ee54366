"""Distinct exit statuses with one `error:` line for the runtime outcomes a job script must
tell apart (runtime.exit_codes), raised by the real code paths."""

import errno
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

from restoration import cli
from restoration import tasks
from restoration.modes import train
from restoration.runtime import checkpoints
from restoration.runtime import trained_run
from restoration.runtime import exit_codes
from restoration.runtime import workdir_lock
from tests.test_reliability import flip_bytes
from tests.tiny import tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def guarded(fn, capsys, debug=False):
  """(exit status, stderr) of `fn` under launch.py's guard."""
  with pytest.raises(SystemExit) as stop:
    cli.run_guarded(fn, debug=debug)
  return stop.value.code, capsys.readouterr().err


def test_each_runtime_stop_has_its_status_and_one_error_line(tmp_path, capsys):
  def diverged():
    ckpt = checkpoints.Checkpointer(str(tmp_path / "div"))
    try:
      train._check_finite_state({"w": jnp.array([1.0, jnp.nan])}, 3, ckpt)  # pylint: disable=protected-access
    finally:
      ckpt.close()

  def locked():
    workdir_lock.acquire(str(tmp_path / "lock"))
    workdir_lock.acquire(str(tmp_path / "lock"))

  def no_intact():
    workdir = str(tmp_path / "exported")
    c = tiny_config()
    task = tasks.build(c, local_device_count=1, process_count=1)
    trained_run.export(workdir, c, task.inference_variables(jax.jit(task.init_state)()),
                       task.model_meta())
    flip_bytes(os.path.join(workdir, "best", "0", "model"))
    trained_run.load_run(workdir)

  def disk_full():
    raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "metrics.jsonl"))

  for fn, status, start in [
      (diverged, exit_codes.DIVERGED, "error: non-finite state at step 3"),
      (locked, exit_codes.WORKDIR_IN_USE, "error: workdir "),
      (no_intact, exit_codes.NO_INTACT_CHECKPOINT, "error: no intact checkpoint in "),
      (disk_full, exit_codes.IO_ERROR, "error: [Errno 28] No space left on device"),
  ]:
    code, err = guarded(fn, capsys)
    assert code == status, (fn.__name__, err)
    assert err.startswith(start) and err.count("\n") == 1, (fn.__name__, err)
  assert len({exit_codes.USAGE, exit_codes.DIVERGED, exit_codes.WORKDIR_IN_USE,
              exit_codes.NO_INTACT_CHECKPOINT, exit_codes.IO_ERROR, exit_codes.FAILED,
              exit_codes.PREEMPTED_SIGINT, exit_codes.PREEMPTED_SIGTERM}) == 8
  code, err = guarded(disk_full, capsys, debug=True)  # --debug: traceback, same status
  assert code == exit_codes.IO_ERROR and err.startswith("Traceback") and "\nerror: " in err


def test_a_failed_save_exits_with_the_io_status(capsys):
  def save_failed():
    raise checkpoints.SaveError("saving a checkpoint under /x failed: OSError: disk full")
  assert guarded(save_failed, capsys)[0] == exit_codes.IO_ERROR
  assert exit_codes.status_of(FileNotFoundError("x")) == exit_codes.USAGE
  assert exit_codes.status_of(PermissionError(errno.EACCES, "denied")) == exit_codes.IO_ERROR
  assert exit_codes.status_of(KeyError("bug")) is None


def test_readme_lists_every_status():
  readme = open(os.path.join(ROOT, "README.md")).read()
  for name in ("USAGE", "DIVERGED", "WORKDIR_IN_USE", "NO_INTACT_CHECKPOINT", "IO_ERROR",
               "PREEMPTED_SIGINT", "PREEMPTED_SIGTERM"):
    assert f"| {getattr(exit_codes, name)} |" in readme, name


@pytest.mark.slow
def test_launch_exits_4_with_one_line_when_the_workdir_is_in_use(tmp_path):
  cfg = tmp_path / "cfg.py"
  cfg.write_text("from tests.tiny import tiny_config\n\ndef get_config(arg=None):\n"
                 "  return tiny_config()\n")
  workdir = tmp_path / "run"
  workdir.mkdir()
  (workdir / workdir_lock.LOCK_NAME).write_text(json.dumps(
      {"host": "elsewhere", "pid": 1, "since": "x"}))
  proc = subprocess.run([sys.executable, "launch.py", f"--config={cfg}", f"--workdir={workdir}"],
                        cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert proc.returncode == exit_codes.WORKDIR_IN_USE, proc.stderr[-2000:]
  assert proc.stderr.strip().splitlines()[-1].startswith("error: workdir ")
  assert "Traceback" not in proc.stderr
