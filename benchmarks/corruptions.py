"""Benchmark: jitted JAX corruptions vs the per-image NumPy/SciPy loops they replace.

Each corruption runs on a 256x32x32x3 (CIFAR-sized) and an 8x128x128x3 batch. JAX: jitted,
one warm-up (compile) call, then the median of --runs calls, each ended by block_until_ready.
Reference: the straightforward loops of the original PyTorch/NumPy data pipelines (a Python
loop over images with np.random, scipy.ndimage filters, a per-block loop for random_blocks, an
8x8 block loop with scipy.fft.dctn for JPEG), median of --ref-runs calls.

  python benchmarks/corruptions.py                 # from the repo root; prints a markdown table
  python benchmarks/corruptions.py --only jpeg,blur --runs 20
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import scipy.fft  # noqa: E402
import scipy.ndimage as ndi  # noqa: E402

from restoration import corruptions as C  # noqa: E402
from restoration.corruptions.jpeg import CHROMA_TABLE, LUMA_TABLE  # noqa: E402

SHAPES = [(256, 32, 32, 3), (8, 128, 128, 3)]

# (name, params) per row: the typical training configurations.
CONFIGS: list[tuple[str, dict[str, Any]]] = [
    ("random_blocks", dict(num_blocks=50, block_size=4)),
    ("gaussian_noise", dict(sigma=(0.0, 55.0))),
    ("salt_and_pepper", dict(amount=0.1)),
    ("poisson_noise", dict(peak=(5.0, 60.0))),
    ("speckle_noise", dict(sigma=0.2)),
    ("low_light", dict(brightness=(0.1, 0.5), gamma=(1.5, 2.5))),
    ("blur", dict(kernel="levin09:random")),
    ("gaussian_blur", dict(sigma=(0.5, 3.0))),
    ("motion_blur", dict(length=(5, 15), angle=None)),
    ("grayscale", dict()),
    ("jpeg", dict(quality=(10, 90))),
]


# ---------------------------------------------------------------------------------------------
# NumPy/SciPy references: one Python loop over images (and over blocks where the originals
# looped), fresh np.random draws per image.


def _uniform(rng: np.random.Generator, v: Any) -> float:
  return rng.uniform(*v) if isinstance(v, tuple) else v


def ref_random_blocks(rng, x, num_blocks, block_size):
  out = x.copy()
  n, h, w, _ = x.shape
  for i in range(n):
    for _ in range(num_blocks):
      y0, x0 = rng.integers(0, h - block_size + 1), rng.integers(0, w - block_size + 1)
      out[i, y0:y0 + block_size, x0:x0 + block_size] = 0.0
  return out


def ref_gaussian_noise(rng, x, sigma):
  return np.stack([np.clip(im + rng.normal(0, _uniform(rng, sigma) / 255, im.shape), 0, 1)
                   for im in x])


def ref_salt_and_pepper(rng, x, amount):
  out = x.copy()
  for im in out:
    hit = rng.random(im.shape[:2]) < amount
    salt = rng.random(im.shape[:2]) < 0.5
    im[hit & salt], im[hit & ~salt] = 1.0, 0.0
  return out


def ref_poisson_noise(rng, x, peak):
  out = []
  for im in x:
    p = _uniform(rng, peak)
    out.append(np.clip(rng.poisson(im * p) / p, 0, 1))
  return np.stack(out)


def ref_speckle_noise(rng, x, sigma):
  return np.stack([np.clip(im + im * rng.normal(0, sigma, im.shape), 0, 1) for im in x])


def ref_low_light(rng, x, brightness, gamma):
  return np.stack([_uniform(rng, brightness) * im ** _uniform(rng, gamma) for im in x])


def _convolve_channels(im, k):
  return np.stack([ndi.convolve(im[..., c], k, mode="reflect") for c in range(im.shape[-1])], -1)


_LEVIN = [C.load_kernel(f"levin09:k{i}") for i in range(1, 9)]


def ref_blur(rng, x, kernel):
  del kernel  # 'levin09:random': one of the 8 Levin kernels per image
  return np.stack([_convolve_channels(im, _LEVIN[rng.integers(8)]) for im in x])


def ref_gaussian_blur(rng, x, sigma):
  return np.stack([ndi.gaussian_filter(im, (s, s, 0), mode="reflect", truncate=3.0)
                   for im, s in ((im, _uniform(rng, sigma)) for im in x)])


def _np_line_kernel(length, angle, size):
  r = size // 2
  yy, xx = np.mgrid[-r:r + 1, -r:r + 1].astype(np.float64)
  dx, dy = np.cos(np.deg2rad(angle)), -np.sin(np.deg2rad(angle))
  t = np.clip(xx * dx + yy * dy, -(length - 1) / 2, (length - 1) / 2)
  w = np.maximum(0, 1 - np.hypot(xx - t * dx, yy - t * dy))
  return w / w.sum()


def ref_motion_blur(rng, x, length, angle):
  del angle  # None: uniform in [0, 180) per image
  size = 2 * int(np.ceil((length[1] - 1) / 2)) + 1
  return np.stack([_convolve_channels(im, _np_line_kernel(rng.uniform(*length),
                                                          rng.uniform(0, 180), size))
                   for im in x])


def ref_grayscale(rng, x):
  del rng
  return np.stack([np.repeat(im @ np.array([0.299, 0.587, 0.114])[:, None], 3, -1) for im in x])


def _qtable(base, q):
  scale = 5000 / q if q < 50 else 200 - 2 * q
  return np.clip(np.floor((base * scale + 50) / 100), 1, 255)


def ref_jpeg(rng, x, quality):
  m = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
  out = []
  for im in x:
    q = rng.integers(quality[0], quality[1] + 1)
    tables = [_qtable(LUMA_TABLE, q), _qtable(CHROMA_TABLE, q), _qtable(CHROMA_TABLE, q)]
    ycc = np.round(np.clip(np.round(im * 255) @ m.T + [0, 128, 128], 0, 255)) - 128
    h, w, _ = ycc.shape
    ycc = np.pad(ycc, ((0, -h % 8), (0, -w % 8), (0, 0)), mode="edge")
    for c in range(3):
      for by in range(0, ycc.shape[0], 8):
        for bx in range(0, ycc.shape[1], 8):
          block = scipy.fft.dctn(ycc[by:by + 8, bx:bx + 8, c], norm="ortho")
          block = np.round(block / tables[c]) * tables[c]
          ycc[by:by + 8, bx:bx + 8, c] = scipy.fft.idctn(block, norm="ortho")
    ycc = np.round(np.clip(ycc[:h, :w] + 128, 0, 255)) - [0, 128, 128]
    out.append(np.round(np.clip(ycc @ np.linalg.inv(m).T, 0, 255)) / 255)
  return np.stack(out)


REFERENCES: dict[str, Callable[..., np.ndarray]] = {
    name[4:]: fn for name, fn in globals().items() if name.startswith("ref_")}


# ---------------------------------------------------------------------------------------------


def _median_ms(fn: Callable[[], Any], runs: int) -> float:
  times = []
  for _ in range(runs):
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
  return 1e3 * statistics.median(times)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--runs", type=int, default=10, help="timed JAX calls per row")
  parser.add_argument("--ref-runs", type=int, default=3, help="timed reference calls per row")
  parser.add_argument("--only", default="", help="comma-separated corruption names")
  args = parser.parse_args()
  only = set(filter(None, args.only.split(",")))

  print(f"jax {jax.__version__} on {jax.devices()[0].platform} ({jax.device_count()} device), "
        f"{os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}, "
        f"numpy {np.__version__}, scipy {scipy.__version__}\n")
  print("| corruption | params | batch | JAX jit (ms) | NumPy/SciPy loop (ms) | speed-up |")
  print("|---|---|---|---:|---:|---:|")
  rng_np = np.random.default_rng(0)
  for name, params in CONFIGS:
    if only and name not in only:
      continue
    fn = jax.jit(lambda k, x, name=name, params=params: C.CORRUPTIONS[name](k, x, **params))
    for shape in SHAPES:
      x_np = rng_np.random(shape, dtype=np.float32)
      x = jnp.asarray(x_np)
      key = jax.random.key(0)
      fn(key, x).block_until_ready()  # compile + warm-up
      jax_ms = _median_ms(lambda: fn(key, x).block_until_ready(), args.runs)
      ref = REFERENCES[name]
      ref(rng_np, x_np, **params)  # warm-up (imports, caches)
      ref_ms = _median_ms(lambda: ref(rng_np, x_np, **params), args.ref_runs)
      desc = ", ".join(f"{k}={v}" for k, v in params.items()) or "-"
      print(f"| {name} | {desc} | {'x'.join(map(str, shape))} | {jax_ms:.2f} | {ref_ms:.1f} | "
            f"{ref_ms / jax_ms:.1f}x |", flush=True)


if __name__ == "__main__":
  main()
