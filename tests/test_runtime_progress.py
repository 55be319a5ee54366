"""The loop's console and clock: the run's time estimate, timed checkpoints, logs above the bar."""

import datetime
import io
import logging as py_logging
import sys

import jax
import pytest
import tqdm

from restoration.runtime import checkpoints
from restoration.runtime import progress
from restoration.runtime import run_log
from restoration.modes import train
from tests.test_modes_train import assert_trees_equal, train_events
from tests.tiny import tiny_config


class FakeClock:
  def __init__(self):
    self.now = 1000.0

  def __call__(self):
    return self.now


def test_estimate_message_and_cpu_hint():
  line = progress.estimate_message(6.5, 10_000, backend="cpu", now=0.0)
  assert line.startswith("6.5 s/step: the remaining 10,000 steps take about 18 h 03 min")
  assert ":quick" in line
  assert ":quick" not in progress.estimate_message(6.5, 10_000, backend="gpu")
  assert ":quick" not in progress.estimate_message(0.3, 1000, backend="cpu")  # 5 min
  assert progress.format_duration(59) == "59 s"
  assert progress.format_duration(3 * 86400 + 7200) == "3 d 2 h"


def test_estimate_gives_the_full_end_date_of_a_long_run():
  line = progress.estimate_message(12.0, 100_000, backend="gpu", now=0.0)  # ~14 days
  end = datetime.datetime.fromtimestamp(1_200_000.0)
  assert f"(ends around {end:%a %Y-%m-%d %H:%M}; evals extra)" in line


def test_training_says_it_compiles_and_what_its_evals_measured(tmp_path, caplog):
  """One 'compiling' line before the first step; every eval line names the set, how many of
  its images and the crop size (a training eval is not a test-set score)."""
  with caplog.at_level(py_logging.INFO):
    train.train_and_evaluate(tiny_config(total_steps=2), str(tmp_path / "w"),
                             devices=jax.local_devices()[:1])
  messages = [r.getMessage() for r in caplog.records]
  assert sum("compiling the train step" in m for m in messages) == 1
  evals = [m for m in messages if m.startswith("step 2 eval")]
  assert evals and evals[0].startswith(
      "step 2 eval (builtin photos: 2 of 4 images, 16 px crops): "), evals


def test_clock_estimates_once_from_steps_after_the_compiling_one(monkeypatch, caplog):
  fake = FakeClock()
  monkeypatch.setattr(progress.time, "monotonic", fake)
  clock = progress.Clock(1000, checkpoint_minutes=5.0, backend="cpu")
  with caplog.at_level(py_logging.INFO):
    clock.start("W", 10)
    assert "resuming W from step 10 (of 1000)" in caplog.text
    fake.now += 60.0  # step 11 compiles: not timed
    clock.step_done(11)
    for step in range(12, 20):
      fake.now += 2.0
      clock.step_done(step)
  lines = [r.getMessage() for r in caplog.records if "s/step" in r.getMessage()]
  assert len(lines) == 1  # 3 steps of 2 s after the first: 2 s/step, 986 steps left
  assert lines[0].startswith("2 s/step: the remaining 986 steps take about 32 min 52 s")
  # Timed checkpoints: due 5 minutes after the last save, not before.
  assert not clock.checkpoint_due(log_step=False)
  clock.saved()
  fake.now += 299.0
  assert not clock.checkpoint_due(log_step=False)
  fake.now += 1.0
  assert clock.checkpoint_due(log_step=False)
  assert not progress.Clock(10, checkpoint_minutes=0).checkpoint_due(log_step=True)
  with pytest.raises(ValueError, match="checkpoint_every_minutes"):
    progress.Clock(10, checkpoint_minutes=-1)


def test_start_says_where_the_run_starts(caplog):
  clock = progress.Clock(5, checkpoint_minutes=0)
  with caplog.at_level(py_logging.INFO):
    clock.start("runs/x", 0)
    clock.start("runs/x", 5)
  assert "no checkpoint in runs/x, starting from step 0 (of 5)" in caplog.text
  assert "already holds step 5 >= total_steps=5: nothing to train" in caplog.text


@pytest.mark.slow
def test_interrupted_run_keeps_a_timed_checkpoint_and_resumes_exactly(tmp_path, monkeypatch):
  """Ctrl-C before any step-based checkpoint: the timed one survives; the rerun is exact."""
  cfg = dict(total_steps=6, checkpoint_every_steps=1000, eval_every_steps=1000)
  devices = jax.local_devices()[:1]
  straight = train.train_and_evaluate(tiny_config(**cfg), str(tmp_path / "straight"),
                                      devices=devices)
  workdir = str(tmp_path / "run")
  write = run_log.MetricWriter.write

  def interrupt_at_4(self, step, kind, **values):
    if step == 4:
      raise KeyboardInterrupt
    write(self, step, kind, **values)

  monkeypatch.setattr(run_log.MetricWriter, "write", interrupt_at_4)
  timed = tiny_config(checkpoint_every_minutes=1e-9, **cfg)  # due at every step
  with pytest.raises(KeyboardInterrupt):
    train.train_and_evaluate(timed, workdir, devices=devices)
  ckpt = checkpoints.Checkpointer(workdir, read_only=True)
  assert ckpt.latest_step() == 3
  ckpt.close()
  monkeypatch.setattr(run_log.MetricWriter, "write", write)
  resumed = train.train_and_evaluate(tiny_config(**cfg), workdir, devices=devices)
  assert_trees_equal(straight.params, resumed.params)
  assert train_events(str(tmp_path / "straight")) == train_events(workdir)


def test_log_lines_go_above_the_bar(monkeypatch):
  err = io.StringIO()
  monkeypatch.setattr(sys, "stderr", err)
  bar = tqdm.tqdm(total=10, file=err, ascii=True, mininterval=0)
  bar.update(3)
  console = progress.logs_above(bar)
  try:
    sys.stderr.write("a log line\n")
  finally:
    console.close()
    bar.close()
  text = err.getvalue()
  # The bar is cleared (carriage return) before the line, so the line starts a fresh row.
  before = text[:text.index("a log line")]
  assert before.endswith("\r") and "a log line\n" in text
  assert sys.stderr is err  # restored
