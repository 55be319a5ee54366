"""DnCNN vs CvT vs PixelCNN on one quick-size denoising task (CPU), and the PixelCNN's NLL curve.

The task is `configs/pixelcnn.py:quick`'s (16 px gray crops of the built-in photos, Gaussian
noise sigma 25, batch 16, 500 steps, eval on 16 px centre crops of the 4 built-in eval images,
eval seed 1234). DnCNN and CvT keep their own `:quick` model and optimizer and take everything
else (data, corruption, crop, batch, steps, eval) from it. Each run trains in a fresh workdir
under --workdir; wall time includes compilation and the evals (the PixelCNN's include two
decodes each).

  python benchmarks/denoise_quick_compare.py [--workdir=/tmp/denoise_compare]
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import jax  # noqa: E402

from restoration.modes import train  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = ("seed", "total_steps", "batch_size", "patch_size", "log_every_steps",
          "eval_every_steps", "checkpoint_every_steps", "corruption", "data", "eval")
_WORKDIR = flags.DEFINE_string(
    "workdir", os.path.join(tempfile.gettempdir(), "denoise_compare"), "Runs go here (wiped).")


def load(name: str, arg: str):
  spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "configs", name))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def configs() -> dict:
  task = load("pixelcnn.py", "quick")
  out = {"pixelcnn": task}
  for name in ("dncnn", "cvt"):
    c = load(f"{name}.py", "quick")
    for field in SHARED:
      c[field] = task[field]
    out[name] = c
  return out


def main(argv):
  del argv
  rows = []
  for name, c in configs().items():
    workdir = os.path.join(_WORKDIR.value, name)
    shutil.rmtree(workdir, ignore_errors=True)
    start = time.time()
    state = train.train_and_evaluate(c, workdir)
    seconds = time.time() - start
    params = sum(x.size for x in jax.tree.leaves(state.params))
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
      events = [json.loads(line) for line in f]
    last = [e for e in events if e["kind"] == "eval"][-1]
    rows.append((name, params, seconds, last))
    if name == "pixelcnn":
      print("| step | train loss (nats/dim) | train bits/dim |\n|---:|---:|---:|")
      for e in events:
        if e["kind"] == "train":
          print(f"| {e['step']} | {e['loss']:.3f} | {e['bits_per_dim']:.3f} |")
      for e in events:
        if e["kind"] == "eval":
          print(f"eval step {e['step']}: " + ", ".join(
              f"{k}={v:.4g}" for k, v in sorted(e.items()) if k not in ("step", "kind")))
  print("\n| model | params | wall time (s) | input PSNR | PSNR | gain (dB) | SSIM |")
  print("|---|---:|---:|---:|---:|---:|---:|")
  for name, params, seconds, e in rows:
    print(f"| {name} | {params:,} | {seconds:.0f} | {e['input_psnr']:.2f} | {e['psnr']:.2f} | "
          f"{e['psnr'] - e['input_psnr']:+.2f} | {e['ssim']:.3f} |")


if __name__ == "__main__":
  app.run(main)
