"""Runs every config's `quick` variant end to end and prints a table: wall time and PSNR.

Checks the README's promise that each quick variant finishes on a laptop CPU in minutes and
still shows learning (restored PSNR above the corrupted input's on eval).

  python benchmarks/quick_configs.py [--workdir=/tmp/quick_runs] [--configs=dncnn.py,cvt.py]
"""

import json
import os
import subprocess
import sys
import time

from absl import app
from absl import flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = ("unet1024.py", "unet512.py", "dncnn.py", "cnn_blocks.py", "lowlight.py", "cvt.py")
_WORKDIR = flags.DEFINE_string("workdir", "/tmp/quick_runs", "Where the runs go (wiped).")
_CONFIGS = flags.DEFINE_list("configs", list(CONFIGS), "Config files to run.")


def main(argv):
  del argv
  rows = []
  for name in _CONFIGS.value:
    workdir = os.path.join(_WORKDIR.value, name.removesuffix(".py"))
    subprocess.run(["rm", "-rf", workdir], check=True)
    start = time.time()
    subprocess.run([sys.executable, os.path.join(ROOT, "launch.py"),
                    f"--config={os.path.join(ROOT, 'configs', name)}:quick",
                    f"--workdir={workdir}"], check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.time() - start
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
      evals = [e for e in map(json.loads, f) if e["kind"] == "eval"]
    last = evals[-1]
    rows.append((name, last["step"], seconds, last["input_psnr"], last["psnr"], last["ssim"]))
    print(f"done {name}: {seconds:.0f}s", file=sys.stderr, flush=True)
  print("| config | steps | wall time (s) | input PSNR | restored PSNR | gain (dB) | SSIM |")
  print("|---|---:|---:|---:|---:|---:|---:|")
  for name, steps, sec, pin, pout, ssim in rows:
    print(f"| {name}:quick | {steps} | {sec:.0f} | {pin:.2f} | {pout:.2f} | {pout - pin:+.2f} "
          f"| {ssim:.3f} |")


if __name__ == "__main__":
  app.run(main)
