"""Benchmark: PixelCNN decoding speed (restoration.models.pixelcnn_decode) in pixels/s.

A small conditional Gated PixelCNN (features=16, layers=4, cond_features=8, kernel 3; random
weights: speed does not depend on them) decodes batches of 16x16 and 32x32 gray/RGB images
at batch 1 and 16. Each row: one warm-up call (compiles the jitted fori_loop), then the
median of --runs calls, each ended by block_until_ready. pixels/s = N * H * W / seconds
(each pixel is C sub-pixels; one decode is H * W * C forward passes of the whole network).

  python benchmarks/pixelcnn_decode.py                  # from the repo root; markdown table
  python benchmarks/pixelcnn_decode.py --sizes 16 --batches 1 --runs 3
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from restoration.models import pixelcnn_decode as ar  # noqa: E402
from restoration.models import get_model  # noqa: E402

MODEL = dict(features=16, layers=4, cond_features=8)


def _seconds(fn, runs: int) -> float:
  jax.block_until_ready(fn())   # compile
  times = []
  for _ in range(runs):
    t = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t)
  return statistics.median(times)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--sizes", default="16,32", help="comma-separated square sizes")
  parser.add_argument("--batches", default="1,16", help="comma-separated batch sizes")
  parser.add_argument("--runs", type=int, default=3)
  args = parser.parse_args()
  sizes = [int(s) for s in args.sizes.split(",")]
  batches = [int(b) for b in args.batches.split(",")]

  model = get_model("pixelcnn", **MODEL)
  apply_fn = functools.partial(model.apply, train=False)
  print(f"jax {jax.__version__}, backend {jax.default_backend()} "
        f"({jax.devices()[0].device_kind}), {platform.processor() or platform.machine()}; "
        f"pixelcnn {MODEL}, float32, median of {args.runs}\n")
  print("| image | batch | forward passes | decode_mode px/s | sample px/s |")
  print("|---|---:|---:|---:|---:|")
  for size in sizes:
    for channels, label in ((1, "gray"), (3, "RGB")):
      cond0 = jnp.zeros((1, size, size, channels))
      variables = jax.jit(functools.partial(model.init, train=False))(
          jax.random.key(0, impl="rbg"), cond0, cond0)
      for n in batches:
        cond = jax.random.uniform(jax.random.key(1), (n, size, size, channels))
        mode = _seconds(lambda: ar.decode_mode(apply_fn, variables, cond), args.runs)
        draw = _seconds(lambda: ar.sample(apply_fn, variables, cond, jax.random.key(2)),
                        args.runs)
        pixels = n * size * size
        print(f"| {size}x{size} {label} | {n} | {size * size * channels:,} | "
              f"{pixels / mode:,.0f} | {pixels / draw:,.0f} |", flush=True)


if __name__ == "__main__":
  main()
