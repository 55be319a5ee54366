"""Where a freshly initialised DnCNN-S starts: the scale of its first noise prediction.

DnCNN predicts the noise and returns `x - net(x)`. If the untrained net's prediction is far
larger than the noise (std 25/255 = 0.098 at sigma 25), training must first shrink the output
layer, which Adam at a small learning rate does slowly and at a large one overshoots into the
identity (WORKSPACE "Time to quality", issue 24). Prints, per init, the std of the first
prediction and the PSNR of the first output on noisy Train400 crops (batch statistics).

  python benchmarks/dncnn_init.py [--images=16] [--sigma=25]
"""

import glob
import os
import sys

import jax
import numpy as np
from absl import app
from absl import flags
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from restoration.models.dncnn import DnCNN  # noqa: E402  pylint: disable=g-import-not-at-top

flags.DEFINE_string("train", os.path.join(os.path.dirname(ROOT), "shared", "data", "denoise",
                                          "train", "Train400"), "Folder of gray PNGs.")
flags.DEFINE_integer("images", 16, "Crops (the first 40x40 of the first N images).")
flags.DEFINE_float("sigma", 25.0, "Noise level, 0-255 scale.")
FLAGS = flags.FLAGS
INITS = {
    "he (configs/dncnn.py)": {},
    "orthogonal 0.2 (dncnn.py:kair, :cpu)": dict(weight_init="orthogonal", init_gain=0.2,
                                                 bn_momentum=0.1, bn_epsilon=1e-4),
}


def main(_):
  files = sorted(glob.glob(os.path.join(FLAGS.train, "*.png")))[:FLAGS.images]
  if not files:
    raise SystemExit(f"error: no PNG in {FLAGS.train}")
  clean = np.stack([np.asarray(Image.open(f).convert("L"), np.float32)[:40, :40, None] / 255
                    for f in files])
  noisy = clean + np.random.default_rng(0).normal(
      0, FLAGS.sigma / 255, clean.shape).astype(np.float32)
  print(f"| init | predicted-noise std (true {FLAGS.sigma / 255:.3f}) | first-output PSNR |")
  print("|---|---|---|")
  for name, kwargs in INITS.items():
    model = DnCNN(**kwargs)
    variables = model.init(jax.random.key(0), noisy, train=False)
    out, _ = model.apply(variables, noisy, train=True, mutable=["batch_stats"])
    out = np.asarray(out)
    psnr = 10 * np.log10(1 / np.mean((out - clean) ** 2))
    print(f"| {name} | {np.std(noisy - out):.3f} | {psnr:.2f} dB |")


if __name__ == "__main__":
  app.run(main)
