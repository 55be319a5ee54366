"""Where a block-inpainting model's error lies, and what SSIM a better inpainter would reach.

For a trained CIFAR study run (configs/cifar_study.py, any recipe), on the first `--val_images`
validation images corrupted with the run's study blocks (seed `--block_seed`): the MSE inside the
zeroed blocks and outside them, the share of the squared error inside, and the mean SSIM in the
study's convention of (a) the model's output, (b) the output with every unblocked pixel put
back exactly (a perfect pass-through), (c) that with the in-block error scaled by each
`--inblock_scales` factor (an inpainter that much better). It says how far a recipe is from a goal
and which part of the error must shrink to reach it (WORKSPACE, "the CIFAR-10 study").

  python benchmarks/cifar_error_split.py --study_run=runs/study/b10_s0 --ckpt_step=25000
"""

import os
import sys

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from configs import cifar_study  # noqa: E402
from restoration import models  # noqa: E402
from restoration.corruptions.study_blocks import study_blocks  # noqa: E402
from restoration.eval import study_ssim  # noqa: E402
from restoration.runtime import trained_run  # noqa: E402

flags.DEFINE_string("study_run", None, "A trained cifar_study run directory.", required=True)
flags.DEFINE_integer("ckpt_step", None, "Checkpoint step (default: the best one).")
flags.DEFINE_integer("val_images", 2000, "Validation images (the first ones of train_4).")
flags.DEFINE_integer("block_seed", 5, "Seed of the block positions.")
flags.DEFINE_list("inblock_scales", ["0.7", "0.5", "0.3"], "In-block error factors for (c).")
FLAGS = flags.FLAGS


def split(clean: np.ndarray, output: np.ndarray, mask: np.ndarray) -> dict[str, float]:
  """Per-pixel squared error (mean over channels) inside / outside the mask (N, H, W)."""
  err = ((output - clean) ** 2).mean(-1)
  inside = mask > 0
  return {"mse": float(err.mean()), "mse_in": float(err[inside].mean()),
          "mse_out": float(err[~inside].mean()), "share_in": float(err[inside].sum() / err.sum()),
          "fraction_in": float(inside.mean())}


def scaled(clean: np.ndarray, output: np.ndarray, mask: np.ndarray, scale: float) -> np.ndarray:
  """Unblocked pixels exact; in the blocks, the output's error times `scale`."""
  return np.where(mask[..., None] > 0, clean + scale * (output - clean), clean)


def main(argv):
  del argv
  run = trained_run.load_run(FLAGS.study_run, step=FLAGS.ckpt_step)
  model = models.get_model(run.meta["model"]["name"], **run.meta["model"]["kwargs"])
  (level,) = [c["num_blocks"] for c in run.config.corruption if c["name"] == "study_blocks"]
  path = cifar_study.VALIDATION.split(":", 1)[1]
  clean = np.load(path)["image"][:FLAGS.val_images].astype(np.float32) / 255.0
  corrupted, mask = study_blocks(jax.random.key(FLAGS.block_seed), jnp.asarray(clean),
                                 num_blocks=level, return_mask=True)
  output = np.asarray(jax.jit(lambda x: model.apply(run.variables, x, train=False))(corrupted))
  mask = np.asarray(mask)[..., 0]

  def ssim(images):
    return float(np.mean(np.asarray(study_ssim.ssim(jnp.asarray(images), jnp.asarray(clean)))))

  s = split(clean, output, mask)
  print(f"{FLAGS.study_run} step {run.step}, {level} blocks, {FLAGS.val_images} validation images: "
        f"{100 * s['fraction_in']:.1f}% of pixels blocked; MSE {s['mse']:.3g} (inside "
        f"{s['mse_in']:.3g}, outside {s['mse_out']:.3g}); {100 * s['share_in']:.0f}% of the "
        "squared error inside the blocks")
  print("| output | SSIM, study convention | PSNR dB |\n|---|---:|---:|")
  rows = [("the model's", output), ("unblocked pixels exact", scaled(clean, output, mask, 1.0))]
  rows += [(f"... and in-block error x{f}", scaled(clean, output, mask, float(f)))
           for f in FLAGS.inblock_scales]
  for name, images in rows:
    psnr = -10 * np.log10(np.mean((images - clean) ** 2))
    print(f"| {name} | {ssim(images):.5f} | {psnr:.2f} |")


if __name__ == "__main__":
  app.run(main)
