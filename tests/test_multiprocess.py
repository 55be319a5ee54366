"""2-process runs on 127.0.0.1 (gloo CPU collectives): one matches the 1-process, 2-device
run; signalled ones stop on one agreed step and resume exactly."""

import os
import re
import signal
import socket
import subprocess
import sys
import time

import jax
import pytest
import numpy as np

from restoration.modes import train
from restoration.eval import visualize
from restoration.runtime import checkpoints
from tests.test_modes_train import train_events
from tests.tiny import tiny_config

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.mark.slow  # a subprocess: JAX start-up and compiles of its own
def test_two_processes_match_one_process(tmp_path):
  c = tiny_config(total_steps=3, eval_every_steps=3, checkpoint_every_steps=3)
  c.data.eval_max_images = 3  # odd: one process gets a padded, partly invalid eval batch
  c.data.eval_batch_size = 2
  ref = train.train_and_evaluate(c, str(tmp_path / "one"), devices=jax.local_devices()[:2])

  workdir, out = str(tmp_path / "multi"), str(tmp_path / "params.npz")
  port = free_port()
  procs = []
  for pid in range(2):
    env = dict(os.environ, JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_NUM_PROCESSES="2",
               JAX_PROCESS_ID=str(pid), JAX_PLATFORMS="cpu",
               XLA_FLAGS="--xla_force_host_platform_device_count=1")
    procs.append(subprocess.Popen(
        [sys.executable, os.path.join(HERE, "multiprocess_worker.py"), c.to_json(), workdir, out],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
  logs = []
  for p in procs:
    try:
      logs.append(p.communicate(timeout=240)[0])
    except subprocess.TimeoutExpired:
      for q in procs:
        q.kill()
      raise
  for p, log in zip(procs, logs):
    assert p.returncode == 0, log[-3000:]

  got = np.load(out)
  for i, x in enumerate(jax.tree.leaves(ref.params)):
    np.testing.assert_allclose(got[f"arr_{i}"], np.asarray(x), rtol=1e-5, atol=1e-6)
  one = [e for e in visualize.read_metrics(str(tmp_path / "one" / "metrics.jsonl"))]
  two = [e for e in visualize.read_metrics(os.path.join(workdir, "metrics.jsonl"))]
  for a, b in zip(one, two, strict=True):
    assert a["step"] == b["step"] and a["kind"] == b["kind"]
    for k in ("loss", "psnr", "ssim", "input_psnr"):
      if k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-5)


# Graceful stop of a 2-process run --------------------------------------------------------------

STOP_TOTAL = 60  # steps; a signalled run sleeps STOP_DELAY s per step, so the stop lands inside
STOP_DELAY = 0.1


def stop_config():
  # Only the cadence's last step and the stop step are checkpointed: "one checkpoint step".
  return tiny_config(total_steps=STOP_TOTAL, eval_every_steps=40,
                     checkpoint_every_steps=STOP_TOTAL, log_every_steps=1)


def start_two(config, workdir, tmp_path, tag, delay=0.0):
  """Two worker processes; (procs, log paths). stdout carries `step` lines when delay > 0."""
  port = free_port()
  procs, logs = [], []
  for pid in range(2):
    env = dict(os.environ, JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_NUM_PROCESSES="2",
               JAX_PROCESS_ID=str(pid), JAX_PLATFORMS="cpu",
               XLA_FLAGS="--xla_force_host_platform_device_count=1")
    log = str(tmp_path / f"{tag}.{pid}.log")
    logs.append(log)
    procs.append(subprocess.Popen(
        [sys.executable, os.path.join(HERE, "multiprocess_worker.py"), config.to_json(),
         workdir, str(tmp_path / f"{tag}.npz"), str(delay)],
        env=env, stdout=subprocess.PIPE, stderr=open(log, "w"), text=True))
  return procs, logs


def wait_all(procs, logs, timeout):
  try:
    for p in procs:
      p.wait(timeout=timeout)
  except subprocess.TimeoutExpired:
    for q in procs:
      q.kill()
    raise AssertionError("hung: " + " | ".join(open(f).read()[-1500:] for f in logs))
  return [p.returncode for p in procs]


@pytest.fixture(scope="module")
def straight_two(tmp_path_factory):
  """An uninterrupted 2-process run of stop_config(): (workdir, params npz)."""
  tmp = tmp_path_factory.mktemp("straight")
  workdir = str(tmp / "run")
  procs, logs = start_two(stop_config(), workdir, tmp, "straight")
  for p in procs:
    p.stdout.read()
  assert wait_all(procs, logs, 300) == [0, 0], open(logs[0]).read()[-3000:]
  return workdir, np.load(tmp / "straight.npz")


# (signals sent as [(process, signal, seconds after the previous one)], expected status)
STOP_CASES = {
    "sigterm_to_one": ([(1, signal.SIGTERM, 0.0)], 143),
    "sigterm_to_both_300ms_apart": ([(0, signal.SIGTERM, 0.0), (1, signal.SIGTERM, 0.3)], 143),
    "sigint_to_one": ([(0, signal.SIGINT, 0.0)], 130),
}


@pytest.mark.slow  # four 2-process runs
@pytest.mark.parametrize("case", list(STOP_CASES))
def test_signalled_two_process_run_stops_on_one_step_and_resumes_exactly(case, straight_two,
                                                                          tmp_path):
  signals, status = STOP_CASES[case]
  workdir = str(tmp_path / "run")
  procs, logs = start_two(stop_config(), workdir, tmp_path, "stopped", delay=STOP_DELAY)
  try:
    seen = 0
    while seen < 5:  # a few steps in: compiled, training (gloo also prints on stdout)
      line = procs[0].stdout.readline()
      assert line, open(logs[0]).read()[-3000:]
      seen += line == "step\n"
    for pid, signum, after in signals:
      time.sleep(after)
      procs[pid].send_signal(signum)
    for p in procs:
      p.stdout.read()
    assert wait_all(procs, logs, 120) == [status, status], [open(f).read()[-2000:] for f in logs]
  finally:
    for p in procs:
      p.kill()

  stops = set()
  for log in logs:
    found = re.findall(r"stopped by (SIG\w+) after step (\d+) \(all 2 processes",
                       open(log).read())
    assert len(found) == 1, open(log).read()[-2000:]
    assert found[0][0] == signal.Signals(status - 128).name
    stops.add(int(found[0][1]))
  assert len(stops) == 1, stops  # the same step on both processes
  stop = stops.pop()
  ckpt = checkpoints.Checkpointer(workdir, read_only=True)
  assert ckpt.latest.all_steps() == [stop] and 5 < stop < STOP_TOTAL
  ckpt.close()
  print(f"\n{case}: signalled after process 0's step {seen}; both stopped after step {stop}")

  procs, logs = start_two(stop_config(), workdir, tmp_path, "resumed")
  for p in procs:
    p.stdout.read()
  assert wait_all(procs, logs, 300) == [0, 0], open(logs[0]).read()[-3000:]
  ref_dir, ref_params = straight_two
  got = np.load(tmp_path / "resumed.npz")
  for k in ref_params.files:
    np.testing.assert_array_equal(got[k], ref_params[k])
  for kind in ("train", "eval"):
    assert train_events(workdir, kind) == train_events(ref_dir, kind)
