"""How a cluster job reaches jax.distributed.initialize (faked SLURM variables), and the
start-up line / unused-GPU warning of parallel.describe."""

import logging
import os
import re
import subprocess

import jax
import pytest

from restoration.runtime import parallel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A 2-node job, one task per node (the README's launch), 4 GPUs per node; this is task 1.
PER_NODE = {"SLURM_JOB_ID": "4242", "SLURM_STEP_NODELIST": "gpu[07-08]", "SLURM_NTASKS": "2",
            "SLURM_PROCID": "1", "SLURM_LOCALID": "0", "SLURM_NODEID": "1",
            "SLURM_STEP_TASKS_PER_NODE": "1(x2)", "CUDA_VISIBLE_DEVICES": "0,1,2,3"}
# The same nodes, one task per GPU: task 6 is the third task of node 1.
PER_GPU = dict(PER_NODE, SLURM_NTASKS="8", SLURM_PROCID="6", SLURM_LOCALID="2",
               SLURM_STEP_TASKS_PER_NODE="4(x2)")


def test_distributed_args_from_the_environment():
  assert parallel.distributed_args({}) is None
  assert parallel.distributed_args({"SLURM_NTASKS": "1", "CUDA_VISIBLE_DEVICES": "0,1"}) is None
  assert parallel.distributed_args({"JAX_COORDINATOR_ADDRESS": "h:1234", "JAX_NUM_PROCESSES": "2",
                                    "JAX_PROCESS_ID": "1"}) == {
      "coordinator_address": "h:1234", "num_processes": 2, "process_id": 1}
  # One task per node: every GPU of the node (JAX alone would give it GPU SLURM_LOCALID = 0).
  assert parallel.distributed_args(PER_NODE) == {"local_device_ids": [0, 1, 2, 3]}
  # Uneven tasks per node: node 1 of '2,1' has one task.
  assert parallel.distributed_args(dict(PER_NODE, SLURM_NTASKS="3",
                                        SLURM_STEP_TASKS_PER_NODE="2,1")) == {
      "local_device_ids": [0, 1, 2, 3]}
  # One task per GPU, all GPUs visible to each: JAX's own choice (GPU SLURM_LOCALID).
  assert parallel.distributed_args(PER_GPU) == {}
  # One task per GPU with SLURM binding each task to its GPU (--gpus-per-task=1): that GPU.
  assert parallel.distributed_args(dict(PER_GPU, CUDA_VISIBLE_DEVICES="0")) == {
      "local_device_ids": [0]}
  # No GPUs said (CPU / TPU): nothing added.
  no_gpu = {k: v for k, v in PER_NODE.items() if k != "CUDA_VISIBLE_DEVICES"}
  assert parallel.distributed_args(no_gpu) == {}
  assert parallel.distributed_args(dict(no_gpu, SLURM_GPUS_ON_NODE="8")) == {
      "local_device_ids": list(range(8))}


@pytest.mark.parametrize("env, devices", [(PER_NODE, [0, 1, 2, 3]), (PER_GPU, [2])])
def test_what_reaches_jax_distributed_initialize(monkeypatch, env, devices):
  """maybe_initialize_distributed's call, completed by JAX's own SLURM detection."""
  for key, value in env.items():
    monkeypatch.setenv(key, value)
  calls, updates = [], []
  monkeypatch.setattr(jax.distributed, "initialize", lambda **kw: calls.append(kw))
  monkeypatch.setattr(jax.config, "update", lambda *a: updates.append(a))
  parallel.maybe_initialize_distributed()
  assert updates == [("jax_cpu_collectives_implementation", "gloo")] and len(calls) == 1
  from jax._src import clusters  # pylint: disable=g-import-not-at-top
  got = clusters.ClusterEnv.auto_detect_unset_distributed_params(
      coordinator_address=None, num_processes=None, process_id=None,
      local_device_ids=calls[0].get("local_device_ids"), cluster_detection_method=None,
      initialization_timeout=None)
  port = 4242 % 2**12 + 65535 - 2**12 + 1
  assert tuple(got) == (f"gpu07:{port}", int(env["SLURM_NTASKS"]), int(env["SLURM_PROCID"]),
                        devices)


def test_single_process_environment_does_not_initialize(monkeypatch):
  for key in ("JAX_COORDINATOR_ADDRESS", "SLURM_NTASKS"):
    monkeypatch.delenv(key, raising=False)
  monkeypatch.setattr(jax.distributed, "initialize", lambda **kw: pytest.fail("initialized"))
  parallel.maybe_initialize_distributed()


def test_describe_states_the_layout_and_warns_about_unused_gpus(caplog):
  devices = jax.local_devices()[:2]
  with caplog.at_level(logging.INFO):
    line = parallel.describe(8, devices, environ={})
  assert line == "1 process x 2 local cpu devices = 2 devices; global batch 8 (4 per device)"
  assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
  caplog.clear()
  # The job was given 4 GPUs but JAX runs on the CPU (e.g. jax without CUDA): one line.
  parallel.describe(8, devices, environ={"CUDA_VISIBLE_DEVICES": "0,1,2,3"})
  warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
  assert len(warnings) == 1 and "\n" not in warnings[0]
  assert warnings[0].startswith("this node has 4 GPUs for the job but JAX uses 0")
  caplog.clear()
  parallel.describe(8, devices, environ={"CUDA_VISIBLE_DEVICES": "-1"})  # GPUs hidden: fine
  assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_readme_cluster_script_parses_and_uses_every_gpu(tmp_path):
  """The README's SLURM script: bash -n passes; one task per node, srun, a graceful stop."""
  readme = open(os.path.join(ROOT, "README.md")).read()
  section = readme.split("### Cluster runs", 1)[1].split("\n### ", 1)[0]
  script = re.search(r"```bash\n(.*?)```", section, re.S)[1]
  path = tmp_path / "train.sbatch"
  path.write_text(script)
  assert subprocess.run(["bash", "-n", str(path)]).returncode == 0
  assert "#SBATCH --ntasks-per-node=1 " in script and "#SBATCH --gres=gpu:8 " in script
  assert "\nsrun python launch.py " in script and "#SBATCH --signal=TERM@120 " in script
