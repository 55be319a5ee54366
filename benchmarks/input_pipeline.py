r"""Input pipeline throughput: patches/s delivered by the grain pipeline and the device mode.

Two settings, from `folder:` data:
  dncnn: 128 patches of 40x40, gray (default data: ../shared/data/denoise/train/Train400)
  unet:    8 patches of 128x128, RGB (default data: ../shared/data/denoise/train/CBSD432)

For the grain pipeline (`restoration.data.make_train_data`, one local device, augment on), by
worker count, after the first batch (which pays for worker start-up):
  epoch 1   patches/s over the first pass through the data (every image decoded once per process)
  later     patches/s once the per-process decode cache is warm
For the device-resident mode: `load_device_data` once, then jitted `sample_patches`
(block_until_ready) on the default JAX backend.

Nothing consumes the batches, so the numbers are the pipeline alone.

  python benchmarks/input_pipeline.py \
      [--dncnn_path=DIR] [--unet_path=DIR] [--workers=0,1,2] [--seconds=4]
"""

import os
import sys
import time

from absl import app
from absl import flags

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import jax  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position

from configs import default  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position
from restoration import data  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position

_HERE = os.path.dirname(os.path.abspath(__file__))
_SHARED = os.path.normpath(os.path.join(_HERE, "..", "..", "shared", "data", "denoise", "train"))

flags.DEFINE_string("dncnn_path", os.path.join(_SHARED, "Train400"), "gray training folder")
flags.DEFINE_string("unet_path", os.path.join(_SHARED, "CBSD432"), "colour training folder")
flags.DEFINE_list("workers", ["0", "1", "2"], "grain worker counts to time")
flags.DEFINE_float("seconds", 4.0, "time budget per measurement window")
flags.DEFINE_list("settings", ["dncnn", "unet"], "which settings to run")
FLAGS = flags.FLAGS

SETTINGS = {
    "dncnn": dict(batch_size=128, patch_size=40, channels=1, path_flag="dncnn_path"),
    "unet": dict(batch_size=8, patch_size=128, channels=3, path_flag="unet_path"),
}


def make_config(setting, workers):
  s = SETTINGS[setting]
  c = default.get_config()
  c.batch_size = s["batch_size"]
  c.patch_size = s["patch_size"]
  c.data.channels = s["channels"]
  c.data.train = "folder:" + getattr(FLAGS, s["path_flag"])
  c.data.augment = True
  c.data.num_workers = workers
  return c


def time_window(it, max_batches, seconds):
  n, t0 = 0, time.perf_counter()
  while n < max_batches and (n == 0 or time.perf_counter() - t0 < seconds):
    next(it)
    n += 1
  return n, time.perf_counter() - t0


def bench_grain(setting, workers):
  c = make_config(setting, workers)
  t0 = time.perf_counter()
  it = data.make_train_data(c, local_device_count=1)
  next(it)
  startup = time.perf_counter() - t0
  n_images = len(it.source)
  per_epoch = max(1, -(-n_images // c.batch_size))
  # Epoch 1 (the first batch is already consumed), capped by the time budget.
  n1, t1 = time_window(it, per_epoch - 1 if per_epoch > 1 else 1, 3 * FLAGS.seconds)
  # Skip to a warm cache: in-process caches are warm after one epoch; each worker sees
  # 1/workers of the batches, so give workers a few more epochs (bounded by time).
  warm_epochs = max(1, workers)
  time_window(it, per_epoch * warm_epochs, 2 * FLAGS.seconds)
  n2, t2 = time_window(it, 10_000, FLAGS.seconds)
  it.close()
  b = c.batch_size
  return dict(startup=startup, epoch1=n1 * b / t1, later=n2 * b / t2, images=n_images)


def bench_device(setting):
  c = make_config(setting, 0)
  t0 = time.perf_counter()
  dev = data.load_device_data(c)
  load = time.perf_counter() - t0
  images = jax.device_put(dev.images)
  sizes = jax.device_put(dev.sizes)
  fn = jax.jit(lambda k: data.sample_patches(k, images, sizes, batch_size=c.batch_size,
                                             patch_size=c.patch_size, augment=True))
  key = jax.random.key(0)
  fn(key).block_until_ready()  # compile
  n, t0 = 0, time.perf_counter()
  while n < 20 or time.perf_counter() - t0 < FLAGS.seconds:
    key, sub = jax.random.split(key)
    fn(sub).block_until_ready()
    n += 1
  dt = time.perf_counter() - t0
  return dict(load=load, rate=n * c.batch_size / dt, nbytes=dev.images.nbytes)


def main(argv):
  del argv
  rows = []
  for setting in FLAGS.settings:
    s = SETTINGS[setting]
    desc = f"{setting}: {s['batch_size']} x {s['patch_size']}² x {s['channels']}"
    for w in map(int, FLAGS.workers):
      r = bench_grain(setting, w)
      rows.append((desc, f"grain, {w} workers", f"{r['epoch1']:,.0f}", f"{r['later']:,.0f}",
                   f"{r['startup']:.1f} s to first batch"))
      print(rows[-1], flush=True)
    r = bench_device(setting)
    rows.append((desc, f"device-resident ({jax.default_backend()})", "", f"{r['rate']:,.0f}",
                 f"load {r['load']:.1f} s, {r['nbytes'] / 2**20:.0f} MiB"))
    print(rows[-1], flush=True)
  print()
  print("| setting | pipeline | patches/s epoch 1 | patches/s later | notes |")
  print("|---|---|---:|---:|---|")
  for row in rows:
    print("| " + " | ".join(row) + " |")
  print(f"\n{os.cpu_count()} CPUs, JAX backend {jax.default_backend()}, "
        f"load average before/after: {LOAD0} / {os.getloadavg()}")


LOAD0 = os.getloadavg()

if __name__ == "__main__":
  np.set_printoptions(precision=3)
  app.run(main)
