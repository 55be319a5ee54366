"""CPU seconds per training step and peak memory of each FULL config (the README's table).

  python benchmarks/step_time.py [--steps=3] [--configs=unet1024.py,dncnn.py]

Each config runs in its own process: the task is built (built-in photos), the state
initialised, the step pmapped as the training loop does, one step run to compile, then
`--steps` steps timed (each blocked on). Peak memory is the process's maximum resident set
(`ru_maxrss`), which includes JAX/XLA themselves (~0.5 GB). No eval, no checkpoints.
Reported: CPU seconds per step (`time.process_time`, all threads: robust when the machine is
shared, and on an idle 2-core machine the wall time is between half of it and all of it) and
the wall seconds measured here.
"""

import json
import os
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

CONFIGS = ("unet1024.py", "unet512.py", "dncnn.py", "cnn_blocks.py", "lowlight.py", "cvt.py")
_STEPS = flags.DEFINE_integer("steps", 3, "Timed steps after the compiling one.")
_CONFIGS = flags.DEFINE_list("configs", list(CONFIGS), "Config files (full size).")
_ONE = flags.DEFINE_string("one", None, "Internal: measure this config in this process.")


def measure(name: str, steps: int) -> dict:
  import jax  # pylint: disable=g-import-not-at-top
  from restoration import cli, tasks  # pylint: disable=g-import-not-at-top
  from restoration.runtime import parallel
  config, _ = cli.load_config(os.path.join("configs", name))
  task = tasks.build(config, local_device_count=1, process_count=1)
  devices = jax.local_devices()[:1]
  state = parallel.to_devices(parallel.replicate(jax.jit(task.init_state)(), devices), devices)
  consts = task.consts()
  data = task.train_data(process_index=0)
  step = parallel.parallelize(task.train_step, donate_argnums=(0,), devices=devices)
  times, cpu = [], []
  for _ in range(steps + 1):
    batch = parallel.to_devices(next(data), devices) if data is not None else None
    start, start_cpu = time.perf_counter(), time.process_time()
    state, metrics = step(state, batch, consts)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - start)
    cpu.append(time.process_time() - start_cpu)
  if data is not None:
    data.close()
  return {"config": name, "model": config.model.name, "batch": config.batch_size,
          "patch": config.patch_size, "compile_s": times[0],
          "s_per_step": sum(times[1:]) / steps, "cpu_s_per_step": sum(cpu[1:]) / steps,
          "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def main(argv):
  del argv
  if _ONE.value:
    print(json.dumps(measure(_ONE.value, _STEPS.value)))
    return
  print("| config | model | batch x patch | CPU s/step | wall s/step (here) | peak memory (GB) |")
  print("|---|---|---|---:|---:|---:|")
  for name in _CONFIGS.value:
    out = subprocess.run([sys.executable, os.path.abspath(__file__), f"--one={name}",
                          f"--steps={_STEPS.value}"], check=True, capture_output=True,
                         text=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    print(f"| {name} | {r['model']} | {r['batch']} x {r['patch']}px | {r['cpu_s_per_step']:.2f} | "
          f"{r['s_per_step']:.2f} | {r['peak_rss_gb']:.1f} |", flush=True)


if __name__ == "__main__":
  app.run(main)
