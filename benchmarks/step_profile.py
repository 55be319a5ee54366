r"""Where a train step's time goes: XLA ops of the compiled step, summed by kind.

  /work/venv/bin/python benchmarks/step_profile.py --models=dncnn [--fast=on] [--steps=2]

Compiles `benchmarks/train_step.py`'s step (same model, batch, loss, optimizer), runs two
warm-up steps, then traces --steps steps with `jax.profiler` (a Perfetto trace, no TensorBoard
needed) and prints ms per step for each op kind (the op's name without its `.N` suffix:
`ynn_fusion` = convolutions and GEMMs XLA:CPU gave to YNNPACK, `concatenate` / `*slice*` =
im2col copies, `dot_general` = the im2col GEMMs, `*_fusion` = elementwise work, BatchNorm...).
"""

import collections
import glob
import gzip
import json
import os
import re
import sys
import tempfile

from absl import app
from absl import flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402  pylint: disable=wrong-import-position

import train_step  # noqa: E402  pylint: disable=wrong-import-position

flags.DEFINE_integer("top", 20, "op kinds to print")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  train_step.host_memory.configure()   # as launch.py does, before the backend starts
  for name in FLAGS.models:
    batch = train_step.SETTINGS[name][2][0]
    for fast in FLAGS.fast:
      v = train_step.compile_step(name, "float32", batch, fast == "on")
      for i in range(2):
        train_step.timed(v, v["x"], i)
      with tempfile.TemporaryDirectory() as d:
        with jax.profiler.trace(d, create_perfetto_trace=True):
          wall = [train_step.timed(v, v["x"], 10 + i) for i in range(FLAGS.steps)]
        (path,) = glob.glob(os.path.join(d, "**", "*.trace.json.gz"), recursive=True)
        with gzip.open(path) as f:
          events = [e for e in json.load(f)["traceEvents"] if e.get("ph") == "X"]
      total, count = collections.Counter(), collections.Counter()
      for e in events:
        if e["name"].startswith(("$", "ThunkExecutor", "end: ", "PjitFunction", "CommonPjRt")):
          continue     # Python frames, the dispatch and executor's own spans enclose the ops
        kind = re.sub(r"\.\d+$", "", e["name"])
        total[kind] += e["dur"] / 1e3 / FLAGS.steps
        count[kind] += 1
      print(f"\n{name} batch {batch}, fast conv {fast}: step {1e3 * min(wall):.0f} ms "
            f"(min of {FLAGS.steps} traced)\n\n| op kind | ms / step | ops / step |\n|---|---:|---:|")
      for kind, ms in total.most_common(FLAGS.top):
        print(f"| {kind} | {ms:.1f} | {count[kind] // FLAGS.steps} |")


if __name__ == "__main__":
  app.run(main)
