"""Long jobs never lose work (issue 27): failed asynchronous saves seen at once, kill -9
during an eval, leftovers of killed saves and workers, recovering from a divergence."""

import errno
import os
import shutil
import signal
import subprocess
import sys
import time

import jax
import pytest
from orbax.checkpoint._src.path import atomicity

from restoration.modes import train
from restoration.runtime import checkpoints
from restoration.runtime import exit_codes
from tests.test_modes_train import train_events
from tests.test_reliability import flip_bytes
from tests.tiny import tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ONE = jax.local_devices()[:1]


def config(**kw):
  return tiny_config(**{"total_steps": 6, "eval_every_steps": 6, **kw})


def events(workdir, kind):
  return [e["step"] for e in train_events(workdir, kind)]


# Save failures --------------------------------------------------------------------------------

def test_a_save_failing_in_orbaxs_thread_stops_the_run_before_the_next_save(tmp_path,
                                                                           monkeypatch):
  """The failure happens where a full disk hits: in Orbax's background commit of step 2, whose
  finalize thread takes the error (check_for_errors never sees it)."""
  finalize = atomicity.AtomicRenameTemporaryPath.finalize
  saved = []
  save = checkpoints.Checkpointer.save_latest

  def save_and_let_it_finish(self, step, *args):
    saved.append(step)
    save(self, step, *args)
    while self.latest.is_saving_in_progress():  # the thread is done (and took the error)
      time.sleep(0.05)                           # before the next step's poll

  monkeypatch.setattr(checkpoints.Checkpointer, "save_latest", save_and_let_it_finish)

  async def failing(self):
    if "checkpoints" in str(self._final_path) and self._final_path.name == "2":  # pylint: disable=protected-access
      raise OSError(errno.ENOSPC, "No space left on device")
    return await finalize(self)

  monkeypatch.setattr(atomicity.AtomicRenameTemporaryPath, "finalize", failing)
  workdir = str(tmp_path / "run")
  with pytest.raises(checkpoints.SaveError, match="step 2 .*failed") as err:
    train.train_and_evaluate(config(), workdir, devices=ONE)
  assert exit_codes.status_of(err.value) == exit_codes.IO_ERROR
  assert saved == [2]  # stopped at step 3, not after the run
  assert events(workdir, "train") == [1, 2]  # step 3's log line comes after its poll


# kill -9 during an eval -----------------------------------------------------------------------

KILLED_IN_EVAL = """
import time
from restoration.eval import evaluator
from tests.tiny import tiny_config

def _stuck(self, *args, **kwargs):  # the first eval (step 2) never ends: killed in it
  open({marker!r}, "w").close()
  time.sleep(600)

evaluator.Evaluator.evaluate = _stuck

def get_config(arg=None):
  return tiny_config(total_steps=4)
"""


@pytest.mark.slow
def test_kill_9_during_an_eval_leaves_a_checksummed_checkpoint_and_the_eval_is_redone(
    tmp_path):
  marker = tmp_path / "in_eval"
  cfg = tmp_path / "cfg.py"
  cfg.write_text(KILLED_IN_EVAL.format(marker=str(marker)))
  workdir = str(tmp_path / "run")
  proc = subprocess.Popen([sys.executable, "launch.py", f"--config={cfg}",
                           f"--workdir={workdir}"], cwd=ROOT, stderr=subprocess.DEVNULL)
  deadline = time.time() + 300
  while not marker.exists() and proc.poll() is None and time.time() < deadline:
    time.sleep(0.2)
  assert marker.exists(), "the run never reached its eval"
  proc.kill()
  proc.wait()
  step2 = os.path.join(workdir, "checkpoints", "2")
  assert os.path.exists(os.path.join(step2, checkpoints.MANIFEST))  # written before the eval
  assert events(workdir, "eval") == []
  damaged = str(tmp_path / "damaged")  # flipped bytes in it are now caught
  shutil.copytree(step2, damaged)
  flip_bytes(os.path.join(damaged, "state"))
  assert "fails its checksum" in checkpoints.verify_manifest(damaged)

  train.train_and_evaluate(tiny_config(total_steps=4), workdir, devices=ONE)
  straight = str(tmp_path / "straight")
  train.train_and_evaluate(tiny_config(total_steps=4), straight, devices=ONE)
  assert events(workdir, "eval") == events(straight, "eval") == [2, 4]  # step 2's redone
  # (approx: the killed leg ran in another process, whose XLA may round differently)
  for kind in ("eval", "train"):
    for got, want in zip(train_events(workdir, kind), train_events(straight, kind)):
      assert got.pop("kind") == want.pop("kind") and got.keys() == want.keys()
      assert got == pytest.approx(want, rel=1e-4)


# Leftovers of killed runs ---------------------------------------------------------------------

def test_tmp_folders_of_killed_saves_are_removed_when_a_run_opens_the_workdir(tmp_path):
  workdir = tmp_path / "run"
  leftovers = [workdir / "checkpoints" / "8.orbax-checkpoint-tmp-1733300000000000",
               workdir / "best" / "8.orbax-checkpoint-tmp-1733300000000001"]
  for path in leftovers:  # what a save killed midway leaves
    (path / "state").mkdir(parents=True)
    (path / "state" / "d").write_bytes(b"x" * 1000)
  reader = checkpoints.Checkpointer(str(workdir), read_only=True)  # eval beside a live run
  reader.close()
  assert all(p.exists() for p in leftovers)
  ckpt = checkpoints.Checkpointer(str(workdir))  # a training run (it holds the lock)
  deadline = time.time() + 60
  while any(p.exists() for p in leftovers) and time.time() < deadline:
    time.sleep(0.1)
  ckpt.close()
  assert not any(p.exists() for p in leftovers)
  assert sorted(os.listdir(workdir / "checkpoints")) == []


WITH_WORKERS = """
from tests.tiny import tiny_config

def get_config(arg=None):
  return tiny_config(total_steps=100000, eval_every_steps=100000,
                     checkpoint_every_steps=100000, **{'data.num_workers': 2})
"""


def _descendants(pid):
  from tests.test_reliability import _ppid  # pylint: disable=g-import-not-at-top
  found, frontier = [], [pid]
  while frontier:
    parent = frontier.pop()
    children = [int(p) for p in os.listdir("/proc") if p.isdigit() and _ppid(p) == parent]
    found += children
    frontier += children
  return found


@pytest.mark.slow
def test_grain_workers_die_with_a_killed_training_process(tmp_path):
  """kill -9 (like a second SIGTERM, which skips the graceful stop): no worker survives."""
  from tests.test_reliability import _state  # pylint: disable=g-import-not-at-top
  cfg = tmp_path / "cfg.py"
  cfg.write_text(WITH_WORKERS)
  workdir = str(tmp_path / "run")
  proc = subprocess.Popen([sys.executable, "launch.py", f"--config={cfg}",
                           f"--workdir={workdir}"], cwd=ROOT, stderr=subprocess.DEVNULL)
  metrics = os.path.join(workdir, "metrics.jsonl")
  deadline = time.time() + 300
  while not (os.path.exists(metrics) and os.path.getsize(metrics)) and time.time() < deadline:
    time.sleep(0.2)
  children = _descendants(proc.pid)
  assert len(children) >= 2, "no grain workers were started"
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  deadline = time.time() + 30
  alive = children
  while alive and time.time() < deadline:
    time.sleep(0.5)
    alive = [c for c in children if os.path.exists(f"/proc/{c}") and _state(c) != "Z"]
  for c in alive:  # do not leave them behind on failure
    os.kill(c, signal.SIGKILL)
  assert not alive, f"{len(alive)} of {len(children)} child processes survived"


# Divergence with a checkpoint just taken ---------------------------------------------------------

def test_divergence_right_after_a_checkpoint_recovers_with_step_0(tmp_path):
  """lr=1e9 with a checkpoint every step: step 1's parameters are finite but exploding and are
  saved; resuming there diverges again at once, so the message offers --step, which works."""
  workdir = str(tmp_path / "run")
  wild = config(checkpoint_every_steps=1, **{"optimizer.learning_rate": 1e9})
  with pytest.raises(train.NonFiniteLossError) as err:
    train.train_and_evaluate(wild, workdir, devices=ONE)
  assert "--step=0 (start over)" in str(err.value)
  assert exit_codes.status_of(err.value) == exit_codes.DIVERGED
  reader = checkpoints.Checkpointer(workdir, read_only=True)
  kept = sorted(reader.latest.all_steps())
  reader.close()
  assert kept and "last finite checkpoint is step %d" % kept[-1] in str(err.value)
  logged = open(os.path.join(workdir, "metrics.jsonl")).read()

  with pytest.raises(ValueError, match=r"--step=99: .* keeps the checkpoints of steps"):
    train.train_and_evaluate(config(), workdir, devices=ONE, step=99)
  state = train.train_and_evaluate(config(), workdir, devices=ONE, step=0)
  assert int(state.step) == 6 and not checkpoints.nonfinite(state)
  assert events(workdir, "train") == [1, 2, 3, 4, 5, 6]
  rewound = sorted(os.listdir(os.path.join(workdir, "rewound")))  # set aside, not deleted
  assert rewound == sorted([f"checkpoints.{s}" for s in kept] + ["metrics.before_step0.jsonl"])
  assert open(os.path.join(workdir, "rewound", "metrics.before_step0.jsonl")).read() == logged


# Range checks and small faults ----------------------------------------------------------------

@pytest.mark.parametrize("overrides, match", [
    ({"model.kwargs": {"depth": 2, "features": -3}},
     r"model 'cnn' field features=-3: an integer >= 1"),
    ({"model.kwargs": {"depth": "five", "features": 8}},
     r"model 'cnn' field depth='five': an integer >= 1"),
    ({"seed": 10**20}, r"config.seed must be an integer in \[0, 4294967295\], got 10{20}"),
    ({"data.num_workers": -1}, r"config.data.num_workers must be an integer >= 0"),
])
def test_out_of_range_values_fail_at_start_naming_the_field(tmp_path, overrides, match):
  with pytest.raises(ValueError, match=match):
    train.train_and_evaluate(config(**overrides), str(tmp_path / "run"), devices=ONE)


def test_a_symlink_loop_in_an_image_folder_is_walked_once(tmp_path):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from restoration.data import specs  # pylint: disable=g-import-not-at-top
  root = tmp_path / "images"
  (root / "sub").mkdir(parents=True)
  for path in (root / "a.png", root / "sub" / "b.png"):
    Image.new("L", (8, 8), 100).save(path)
  os.symlink(".", root / "loop")
  os.symlink("..", root / "sub" / "up")
  assert specs.open_source(f"folder:{root}", 1).files == ["a.png", "sub/b.png"]


def test_restore_keeps_a_replaced_files_mode_and_checks_the_output_first(tmp_path):
  import numpy as np  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from restoration.image_files import reading, writing  # pylint: disable=g-import-not-at-top
  from restoration.modes import restore  # pylint: disable=g-import-not-at-top
  src = tmp_path / "in.png"
  Image.fromarray(np.full((8, 8), 7, np.uint8)).save(src)
  image, info = reading.read_image(str(src))
  out = tmp_path / "private.png"
  out.write_bytes(b"old")
  os.chmod(out, 0o600)
  writing.write_image(str(out), image, info, overwrite=True)
  assert os.stat(out).st_mode & 0o777 == 0o600 and out.read_bytes() != b"old"

  if os.geteuid() == 0:  # root writes through permission bits; sysfs refuses even root
    read_only = "/sys/restore_output_of_a_test"
  else:
    read_only = str(tmp_path / "ro")
    os.mkdir(read_only, 0o500)
  missing_run = str(tmp_path / "no_run")  # loading it would fail differently (no checkpoints)
  with pytest.raises(ValueError, match=r"--output=.*: cannot write in .*writable output"):
    restore.run(tiny_config(), missing_run, str(src), read_only)
