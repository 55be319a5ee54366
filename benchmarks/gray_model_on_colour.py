"""A 1-channel (gray) model on colour photos: per channel vs luma with the chroma kept.

  python benchmarks/gray_model_on_colour.py                 # CBSD68's first 10 images, sigma 25
  python benchmarks/gray_model_on_colour.py --images=68 --weights=dncnn_gray_blind.mat

The product's own path: `--mode=import` of a released gray DnCNN into a temporary workdir,
then restore mode's `restore_image` on noisy colour photos as a user would have them (clean
CBSD68 + Gaussian noise of `sigma`/255, rounded and clipped to 8 bits: a photo file), with each
way of putting colour through a gray model (`restore.COLOUR_ON_GRAY`), plus what restore did
before (luma restored, written as gray). RGB PSNR of the 8-bit output against the clean image,
mean over the images. Prints a markdown table.
"""

import argparse
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import functools  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402

from configs import dncnn as dncnn_config  # noqa: E402
from restoration import data  # noqa: E402
from restoration import image_ops  # noqa: E402
from restoration import tasks  # noqa: E402
from restoration.modes import import_weights  # noqa: E402
from restoration.modes import restore  # noqa: E402
from restoration.runtime import trained_run  # noqa: E402
from restoration.weights import dncnn  # noqa: E402


def psnr_uint8(a: np.ndarray, b: np.ndarray) -> float:
  mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
  return float(10 * np.log10(255.0 ** 2 / mse))


def to_8bit(x: np.ndarray) -> np.ndarray:
  return np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--weights", default="dncnn_s25.mat")
  parser.add_argument("--set", default=os.path.join(ROOT, dncnn.TEST_SETS_DIR, "CBSD68"))
  parser.add_argument("--images", type=int, default=10)
  parser.add_argument("--sigma", type=float, default=25.0)
  args = parser.parse_args()
  workdir = os.path.join(tempfile.mkdtemp(), "gray")
  import_weights.run(dncnn_config.get_config(), workdir,
                     os.path.join(ROOT, dncnn.WEIGHTS_DIR, args.weights))
  trained = trained_run.load_run(workdir)
  config = trained.config
  config.data.channels = 3
  config.data.eval = "folder:" + args.set
  config.data.eval_max_images = args.images
  images = data.load_eval_images(config)
  inference = tasks.inference_for(trained.meta, trained.config)
  apply = functools.partial(restore.jit_predict(inference), jax.device_put(trained.variables))
  rng = np.random.default_rng(0)
  scores = {"noisy input": [], "before: luma restored, gray out": []}
  scores.update({m: [] for m in restore.COLOUR_ON_GRAY})
  for name, clean in images:
    noisy = to_8bit(clean / 255.0 + rng.normal(0.0, args.sigma / 255.0, clean.shape))
    x = noisy.astype(np.float32) / 255.0
    scores["noisy input"].append(psnr_uint8(noisy, clean))
    for m in restore.COLOUR_ON_GRAY:
      out = restore.restore_image(apply, x, inference=inference, colour=m)
      scores[m].append(psnr_uint8(to_8bit(out), clean))
    gray = restore.restore_image(apply, x, inference=inference, colour="luma")
    scores["before: luma restored, gray out"].append(
        psnr_uint8(to_8bit(image_ops.to_channels(image_ops.luma(gray), 3)), clean))
    print(name, {k: round(v[-1], 2) for k, v in scores.items()}, flush=True)
  print(f"\n{images.label}, sigma {args.sigma:g} (8-bit noisy files), {args.weights}: "
        "RGB PSNR (dB) of the 8-bit output\n")
  print("| colour through the gray model | mean PSNR |\n|---|---:|")
  for k, v in scores.items():
    print(f"| {k} | {np.mean(v):.2f} |")


if __name__ == "__main__":
  main()
