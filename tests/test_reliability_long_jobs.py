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
  for redone, uninterrupted in zip(train_events(workdir, "eval"), train_events(straight, "eval")):
    assert redone == pytest.approx(uninterrupted, rel=1e-5)
  assert train_events(workdir) == train_events(straight)
