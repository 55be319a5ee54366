"""A 2-process run on 127.0.0.1 (gloo CPU collectives) matches the 1-process, 2-device run."""

import os
import socket
import subprocess
import sys

import jax
import pytest
import numpy as np

from restoration.modes import train
from restoration.eval import visualize
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
