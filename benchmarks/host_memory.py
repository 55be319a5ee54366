r"""Train-step time, page faults and system time with and without `restoration.runtime.host_memory`.

  /work/venv/bin/python benchmarks/host_memory.py [--models=dncnn,unet1024] [--rounds=3] \
      [--steps=5]

The settings are process-wide and the dispatch one only takes effect before JAX starts, so
each measurement is a fresh process (this script run with --child) under
RESTORATION_HOST_MEMORY=retain or =system, alternated (retain, system, retain, ...) so that
load from elsewhere hits both alike. A child compiles `benchmarks/train_step.py`'s step (fast
CPU conv as the trainer runs it), runs one untimed step, then --steps timed ones, and reports
each step's wall time, minor page faults (ru_minflt) and system CPU seconds, plus the
process's peak resident memory. The table gives medians over all timed steps of all rounds.
"""

import json
import os
import resource
import subprocess
import sys

from absl import app
from absl import flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import train_step  # noqa: E402  pylint: disable=wrong-import-position  (its --models, --steps)

flags.DEFINE_integer("rounds", 3, "processes per setting")
flags.DEFINE_string("child", None, "internal: measure this model in this process")
FLAGS = flags.FLAGS
SETTINGS = ("retain", "system")


def child(name: str, steps: int) -> dict:
  applied = train_step.host_memory.configure()
  v = train_step.compile_step(name, "float32", train_step.SETTINGS[name][2][0], True)
  train_step.timed(v, v["x"], 0)
  rows = []
  for i in range(steps):
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t = train_step.timed(v, v["x"], 1 + i)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    rows.append(dict(step_s=t, faults=r1.ru_minflt - r0.ru_minflt, sys_s=r1.ru_stime - r0.ru_stime))
  return dict(applied=applied, steps=rows, temp_mib=v["temp_mib"],
              maxrss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def main(argv):
  del argv
  if FLAGS.child:
    print(json.dumps(child(FLAGS.child, FLAGS.steps)))
    return
  import numpy as np  # pylint: disable=import-outside-toplevel
  load0 = os.getloadavg()
  print("| model | host memory | step ms | page faults / step | system s / step | peak RSS MiB "
        "| scratch MiB |\n|---|---|---:|---:|---:|---:|---:|")
  for name in FLAGS.models if FLAGS["models"].present else ["dncnn", "unet1024"]:
    got = {s: [] for s in SETTINGS}
    for _ in range(FLAGS.rounds):
      for s in SETTINGS:
        out = subprocess.run(
            [sys.executable, os.path.abspath(__file__), f"--child={name}",
             f"--steps={FLAGS.steps}"], env=dict(os.environ, RESTORATION_HOST_MEMORY=s),
            capture_output=True, text=True, check=True)
        got[s].append(json.loads(out.stdout.strip().splitlines()[-1]))
    for s in SETTINGS:
      steps = [r for g in got[s] for r in g["steps"]]
      med = lambda k: float(np.median([r[k] for r in steps]))  # noqa: E731
      print(f"| {name} | {s} | {1e3 * med('step_s'):.0f} | {med('faults'):.0f} | "
            f"{med('sys_s'):.2f} | {max(g['maxrss_mib'] for g in got[s]):.0f} | "
            f"{got[s][0]['temp_mib']:.0f} |", flush=True)
  print(f"\n{FLAGS.rounds} processes per setting, alternated; {FLAGS.steps} timed steps each; "
        f"{os.cpu_count()} CPUs; load average before {load0[0]:.2f}, after "
        f"{os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
  app.run(main)
