"""Faults a cluster run meets: preemption, divergence, corrupt checkpoints, two runs on one
workdir, huge eval images, bad configs, unreadable restore inputs, failed saves (one test per
item of the reliability issue; the truncated-image one is in test_data_sources)."""

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from restoration.runtime import checkpoints
from restoration.runtime import trained_run
from restoration import config_fields
from restoration.eval import evaluator
from restoration.runtime import preemption
from restoration.modes import restore
from restoration.runtime import run_log
from restoration import tasks
from restoration.modes import train
from restoration.runtime import workdir_lock
from restoration.tasks import supervised
from tests.test_modes_train import assert_trees_equal, train_events
from tests.tiny import tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ONE = jax.local_devices()[:1]


def config(**kw):
  return tiny_config(**{"total_steps": 6, "eval_every_steps": 6, **kw})


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """An uninterrupted 6-step run: (workdir, final state); checkpoints 4 and 6, best 6."""
  workdir = str(tmp_path_factory.mktemp("ref") / "run")
  return workdir, train.train_and_evaluate(config(), workdir, devices=ONE)


def copy_run(reference, tmp_path):
  dst = str(tmp_path / "copy")
  shutil.copytree(reference[0], dst)
  return dst


def flip_bytes(step_dir):
  """Flips bytes in the middle of the largest file of a checkpoint (silent bit rot)."""
  path = max((p for p in glob.glob(os.path.join(step_dir, "**"), recursive=True)
              if os.path.isfile(p)), key=os.path.getsize)
  blob = bytearray(open(path, "rb").read())
  blob[len(blob) // 2] ^= 0xFF
  open(path, "wb").write(bytes(blob))


# 1. SIGTERM / SIGINT ------------------------------------------------------------------------

def test_sigterm_checkpoints_the_step_reached_and_resumes_exactly(reference, tmp_path,
                                                                  monkeypatch):
  workdir = str(tmp_path / "run")
  handler = signal.getsignal(signal.SIGTERM)
  polls = []
  poll = checkpoints.Checkpointer.poll

  def poll_then_signal(self):  # polled once per step: the signal lands after step 3
    polls.append(1)
    if len(polls) == 3:
      os.kill(os.getpid(), signal.SIGTERM)
    poll(self)

  monkeypatch.setattr(checkpoints.Checkpointer, "poll", poll_then_signal)
  with pytest.raises(preemption.Preempted) as stop:
    train.train_and_evaluate(config(), workdir, devices=ONE)
  assert stop.value.code == 143 and "after step 3" in str(stop.value)
  assert signal.getsignal(signal.SIGTERM) == handler  # ours is removed
  assert not os.path.exists(os.path.join(workdir, workdir_lock.LOCK_NAME))
  ckpt = checkpoints.Checkpointer(workdir, read_only=True)
  assert ckpt.latest.all_steps() == [2, 3]  # the step reached, not only the cadence's
  ckpt.close()
  monkeypatch.undo()
  state = train.train_and_evaluate(config(), workdir, devices=ONE)
  assert_trees_equal(state, reference[1])
  assert train_events(workdir) == train_events(reference[0])


@pytest.mark.slow
def test_sigterm_to_a_launch_subprocess_with_workers(tmp_path):
  """kill -TERM of launch.py: exit 143, checkpoint at the step reached, grain workers gone."""
  cfg = tmp_path / "cfg.py"
  cfg.write_text("from tests.tiny import tiny_config\n\ndef get_config(arg=None):\n  del arg\n  return tiny_config("
                 "total_steps=100000, eval_every_steps=100000, checkpoint_every_steps=100000,"
                 " **{'data.num_workers': 2})\n")
  workdir = str(tmp_path / "run")
  log = open(tmp_path / "stderr.txt", "w+")  # a pipe could fill up with progress bars
  proc = subprocess.Popen([sys.executable, "launch.py", f"--config={cfg}",
                           f"--workdir={workdir}"], cwd=ROOT, stderr=log)
  metrics = os.path.join(workdir, "metrics.jsonl")
  deadline = time.time() + 240
  while not (os.path.exists(metrics) and os.path.getsize(metrics)) and time.time() < deadline:
    time.sleep(0.2)
  children = [int(p) for p in os.listdir("/proc") if p.isdigit() and _ppid(p) == proc.pid]
  proc.send_signal(signal.SIGTERM)
  proc.wait(timeout=120)
  err = open(tmp_path / "stderr.txt").read()
  assert proc.returncode == 143, err[-2000:]
  logged = max(e["step"] for e in train_events(workdir))
  ckpt = checkpoints.Checkpointer(workdir, read_only=True)
  saved = ckpt.latest_step()
  ckpt.close()
  assert saved >= logged and f"after step {saved}:" in err
  time.sleep(1)
  assert children and not [c for c in children if os.path.exists(f"/proc/{c}")
                           and _state(c) != "Z"], "grain workers survived"


def _ppid(pid):
  try:
    return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
  except (OSError, IndexError, ValueError):
    return None


def _state(pid):
  try:
    return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
  except OSError:
    return "Z"


# 2. divergence --------------------------------------------------------------------------------

def test_non_finite_params_are_never_saved(tmp_path, monkeypatch):
  """Loss checks off: the parameter check alone keeps the inf state out of checkpoints."""
  step = supervised.SupervisedTask.train_step

  def diverging(self, state, batch, consts):
    new, metrics = step(self, state, batch, consts)
    blow = jnp.where(state.step >= 2, jnp.inf, 1.0)  # the state after step 3 overflows
    return new.replace(params=jax.tree.map(lambda p: p * blow, new.params)), metrics

  monkeypatch.setattr(supervised.SupervisedTask, "train_step", diverging)
  monkeypatch.setattr(supervised.SupervisedTask, "finite_metrics", ())
  workdir = str(tmp_path / "run")
  with pytest.raises(train.NonFiniteLossError,
                     match=r"non-finite state at step 4 .*last finite checkpoint is step 2"):
    train.train_and_evaluate(config(), workdir, devices=ONE)
  ckpt = checkpoints.Checkpointer(workdir, read_only=True)
  assert ckpt.latest.all_steps() == [2]
  ckpt.close()


# 3. corrupt checkpoints ------------------------------------------------------------------------

def test_garbled_latest_falls_back_and_training_loses_no_step(reference, tmp_path, caplog):
  workdir = copy_run(reference, tmp_path)
  assert os.path.exists(os.path.join(workdir, "checkpoints", "6", checkpoints.MANIFEST))
  flip_bytes(os.path.join(workdir, "checkpoints", "6", "state"))
  task = tasks.build(config(), local_device_count=1, process_count=1)
  ckpt = checkpoints.Checkpointer(workdir)
  state, _ = ckpt.restore_latest(task.abstract_state())
  ckpt.close()
  assert int(state.step) == 4
  assert "checkpoints/6 is broken (file state/" in caplog.text
  assert os.path.isdir(os.path.join(workdir, "broken", "checkpoints.6"))  # kept, not deleted
  final = train.train_and_evaluate(config(), workdir, devices=ONE)
  assert_trees_equal(final, reference[1])


def test_truncated_checkpoints_without_manifest_fall_back_then_fail_short(reference, tmp_path):
  workdir = copy_run(reference, tmp_path)
  for step in ("4", "6"):  # Orbax's own reading is the check when no manifest exists
    os.remove(os.path.join(workdir, "checkpoints", step, checkpoints.MANIFEST))
  for path in glob.glob(os.path.join(workdir, "checkpoints", "6", "state", "**"),
                        recursive=True):
    if os.path.isfile(path):
      open(path, "wb").close()
  task = tasks.build(config(), local_device_count=1, process_count=1)
  ckpt = checkpoints.Checkpointer(workdir)
  assert int(ckpt.restore_latest(task.abstract_state())[0].step) == 4
  flip_bytes(os.path.join(workdir, "checkpoints", "4", "state"))
  ckpt.latest.reload()
  try:
    state, _ = ckpt.restore_latest(task.abstract_state())
    assert not checkpoints.nonfinite(state)  # a flip Orbax missed must still be finite
  except checkpoints.CheckpointError as e:
    assert "no intact checkpoint" in str(e) and "\n" not in str(e)
  ckpt.close()


def test_corrupt_best_falls_back_to_latest(reference, tmp_path, caplog):
  workdir = copy_run(reference, tmp_path)
  flip_bytes(os.path.join(workdir, "best", "6", "model"))
  run = trained_run.load_run(workdir)
  assert (run.which, run.step) == ("latest", 6)
  assert "best/6 is broken" in caplog.text
  task = tasks.build(config(), local_device_count=1, process_count=1)
  assert_trees_equal(run.variables, task.inference_variables(reference[1]))
  assert os.path.isdir(os.path.join(workdir, "best", "6"))  # read-only: left in place


# 4. two runs on one workdir --------------------------------------------------------------------

@pytest.mark.slow
def test_second_run_refuses_and_stale_lock_is_taken_over(tmp_path, caplog):
  workdir = str(tmp_path / "run")
  holder = subprocess.Popen(
      [sys.executable, "-c", "import sys, time; from restoration.runtime import workdir_lock; "
       f"workdir_lock.acquire({workdir!r}); print('held', flush=True); time.sleep(120)"],
      cwd=ROOT, stdout=subprocess.PIPE, text=True)
  assert holder.stdout.readline().strip() == "held"
  start = time.time()
  with pytest.raises(workdir_lock.WorkdirLocked, match=rf"in use by pid {holder.pid} on host"):
    train.train_and_evaluate(config(), workdir, devices=ONE)
  assert time.time() - start < 60 and not os.path.exists(os.path.join(workdir, "metrics.jsonl"))
  holder.kill()
  holder.wait()
  path = workdir_lock.acquire(workdir)  # kill -9 left the lock: stale, taken over
  assert json.load(open(path))["pid"] == os.getpid()
  assert f"stale lock of pid {holder.pid}" in caplog.text
  workdir_lock.release(path)
  assert not os.path.exists(path)


def test_lock_refuses_a_live_holder_in_process(tmp_path):
  path = workdir_lock.acquire(str(tmp_path))
  with pytest.raises(workdir_lock.WorkdirLocked, match="already in use by this process"):
    workdir_lock.acquire(str(tmp_path))
  workdir_lock.release(path)
  with open(path, "w") as f:  # another host's lock cannot be checked: refused, with the fix
    json.dump({"host": "elsewhere", "pid": 1, "since": "x"}, f)
  with pytest.raises(workdir_lock.WorkdirLocked, match="pid 1 on host elsewhere.*delete"):
    workdir_lock.acquire(str(tmp_path))


# 6. huge eval images --------------------------------------------------------------------------

def test_images_over_the_memory_budget_are_tiled(monkeypatch):
  c = tiny_config(**{"eval.tile_overlap": 4, "data.eval_batch_size": 1})
  task = tasks.build(c, local_device_count=1, process_count=1)
  variables = task.inference_variables(jax.jit(task.init_state)())
  rng = np.random.default_rng(0)
  images = [("small", rng.integers(0, 256, (16, 16, 1), np.uint8)),
            ("huge", rng.integers(0, 256, (96, 80, 1), np.uint8))]
  whole = evaluator.Evaluator(task.inference, images, devices=ONE)
  bpp = evaluator.bytes_per_pixel(task.inference.predict, variables, 1)
  assert bpp >= 8  # at least the input and the output, float32
  budget = bpp * 60 * 60 / 2 ** 20  # the 96x80 image does not fit, 8 tiles of 20 px do
  c.eval.memory_budget_mb = budget
  small = tasks.build(c, local_device_count=1, process_count=1).inference
  tiled = evaluator.Evaluator(small, images, devices=ONE)
  assert tiled.tile_for(variables, (16, 16, 1)) == 0
  assert tiled.tile_for(variables, (96, 80, 1)) == int((60 * 60 / 8) ** 0.5)
  a = whole.evaluate(variables, c.corruption, replicated=False)
  b = tiled.evaluate(variables, c.corruption, replicated=False)
  for k in a.means:  # receptive radius 2 <= overlap / 2: tiling is exact
    np.testing.assert_allclose(a.per_image[k], b.per_image[k], rtol=1e-4, atol=1e-5)
  with pytest.raises(ValueError, match=r"eval.memory_budget_mb=.* fits only"):
    evaluator.auto_tile(bpp, bpp * 4 / 2 ** 20, batch_tiles=8, multiple=1, overlap=4)


# 7. config checks -----------------------------------------------------------------------------

def test_unknown_and_mistyped_fields_and_bad_config_json(tmp_path):
  c = tiny_config()
  c.data.num_worker = 2
  with pytest.raises(ValueError, match=r"unknown field config\.data\.num_worker; .*num_workers"):
    train.train_and_evaluate(c, str(tmp_path / "run"))
  with pytest.raises(ValueError, match=r"config\.total_steps='10' has type str; expected int"):
    config_fields.check(tiny_config(total_steps="10"))
  with pytest.raises(ValueError, match=r"memory_budget_mb must be a number > 0"):
    evaluator.EvalOptions.from_config(tiny_config(**{"eval.memory_budget_mb": 0}))
  config_fields.check(tiny_config(**{"model.kwargs": {"anything": 1}}))  # user-keyed: free
  path = tmp_path / "config.json"
  for text, match in (("{garbage", "is not a readable JSON config"),
                      ("{}", "is not a training run's config: it lacks model, data, eval"),
                      ("[1]", "is not a training run's config")):
    path.write_text(text)
    with pytest.raises(ValueError, match=rf"{tmp_path}/config\.json {match}"):
      run_log.read_config(str(tmp_path))


# 8. restore mode ------------------------------------------------------------------------------

def test_restore_continues_past_unreadable_inputs(tmp_path, capsys):
  workdir = str(tmp_path / "run")
  c = tiny_config()
  task = tasks.build(c, local_device_count=1, process_count=1)
  trained_run.export(workdir, c, task.inference_variables(jax.jit(task.init_state)()),
                     task.model_meta())
  inputs = tmp_path / "in"
  inputs.mkdir()
  rng = np.random.default_rng(0)
  Image.fromarray(rng.integers(0, 256, (16, 16), np.uint8)).save(inputs / "a_gray.png")
  (inputs / "b_bad.png").write_bytes(b"not an image")
  Image.fromarray(rng.integers(0, 256, (16, 16, 3), np.uint8)).save(inputs / "c_rgb.png")
  out = tmp_path / "out"
  out.mkdir()
  (out / "a_gray.png").write_bytes(b"old")
  with pytest.raises(restore.RestoreFailures, match=r"1 input\(s\).*b_bad\.png") as err:
    restore.run(c, workdir, str(inputs), str(out), overwrite=True)
  assert err.value.code == 1
  assert sorted(os.listdir(out)) == ["a_gray.png", "c_rgb.png"]
  assert Image.open(out / "c_rgb.png").mode == "RGB"  # restored per channel: colour kept
  assert ("1 input(s) had other channels than the model's 1: each of R, G, B restored as a "
          "gray image, colour kept") in capsys.readouterr().out
  umask = os.umask(0)
  os.umask(umask)
  for name in ("a_gray.png", "c_rgb.png"):  # replaced and new files alike
    assert os.stat(out / name).st_mode & 0o777 == 0o666 & ~umask


# 9. save errors -------------------------------------------------------------------------------

def test_a_failed_asynchronous_save_stops_at_the_next_step(tmp_path, monkeypatch):
  saved = []
  save = checkpoints.Checkpointer.save_latest
  monkeypatch.setattr(checkpoints.Checkpointer, "save_latest",
                      lambda self, step, *a: (saved.append(step), save(self, step, *a)))

  def check_for_errors(self):
    if saved and "checkpoints" in str(self.directory):
      raise OSError("No space left on device")

  monkeypatch.setattr(checkpoints.ocp.CheckpointManager, "check_for_errors", check_for_errors)
  workdir = str(tmp_path / "run")
  with pytest.raises(checkpoints.CheckpointError, match="No space left on device"):
    train.train_and_evaluate(config(), workdir, devices=ONE)
  assert saved == [2]
  assert [e["step"] for e in train_events(workdir)] == [1, 2]  # stopped in step 3, not 4
