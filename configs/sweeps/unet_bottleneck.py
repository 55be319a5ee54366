"""U-Net bottleneck 512 vs 1024 vs the plain-CNN baseline vs pix2pix on deblurring, over seeds.

The founding ablation: 30.85 vs 30.90 dB is only meaningful with a confidence interval over
several training seeds and a paired comparison on the same eval images.

  python launch.py --mode=sweep --config=configs/sweeps/unet_bottleneck.py:quick \\
    --workdir=runs/unet_bottleneck_quick                  # CPU: 4 variants x 2 seeds, minutes
  python launch.py --mode=sweep --sweep_emit=slurm \\
    --config=configs/sweeps/unet_bottleneck.py --workdir=runs/unet_bottleneck   # GPU cluster
  sbatch --gres=gpu:1 runs/unet_bottleneck/sweep.sbatch

One run by hand (what every local or SLURM task executes):
  python launch.py --config=configs/sweeps/unet_bottleneck.py:variant=unet512,seed=1 \\
    --workdir=runs/unet_bottleneck/unet512/seed1

Full scale (GPU, ~100k steps each, 3 seeds): the configs/unet1024.py task (128 px RGB crops of
the built-in photos, Gaussian blur; arguments `levin` for the real Levin et al. kernels) with
variants unet1024 (reference, bottleneck 1024), unet512, cnn (9-layer residual CNN) and gan
(the unet1024 generator trained by pix2pix against a 70x70 conditional PatchGAN); eval on
CBSD68 (68 colour test images, 128 px centre crops) at the three blur levels of eval.sweep.
Quick: the tiny 16-32-64 U-Net vs one with a 32-channel bottleneck vs a 4-layer CNN vs that
tiny U-Net as a pix2pix generator, 200 steps, 2 seeds, the 4 built-in eval photos.

The gan variant is the unet1024 variant's model with configs/pix2pix.py's task, adversarial
block (discriminator, GAN loss, D's optimizer), loss (L1, weighted by adversarial.l1_weight)
and optimizer (Adam b1 0.5, constant lr), taken from that file (`GAN_FIELDS`), quick or full
to match. Its eval rows are the generator's PSNR/SSIM, paired like the others'; the table's
params and GFLOPs are the generator's too (D is only used in training).

Arguments: `quick`, `levin` (full scale only), `variant=NAME`, `seed=K`, `eval`.
"""

from configs import pix2pix
from configs import unet1024
from restoration.sweeps import spec

# What the gan variant takes from configs/pix2pix.py; everything else (data, corruption,
# run length, eval, the generator) is this sweep's.
GAN_FIELDS = ("task", "adversarial", "loss", "optimizer")


def get_config(arg: str | None = None):
  a = spec.parse(arg, levin=False)
  base = unet1024.get_config(",".join(k for k in ("quick", "levin") if a[k]) or None)
  if a.quick:
    base.total_steps = 200
    base.eval_every_steps = base.checkpoint_every_steps = 100
    base.log_every_steps = 20
    u = {"model.name": "unet", "model.kwargs": {"features": 16, "depth": 2}}
    variants = {
        "unet1024": {**u, "model.kwargs": {**u["model.kwargs"], "bottleneck": 64}},
        "unet512": {**u, "model.kwargs": {**u["model.kwargs"], "bottleneck": 32}},
        "cnn": {"model.name": "cnn", "model.kwargs": {"depth": 4, "features": 16}},
    }
    seeds, eval_overrides = [0, 1], {}
  else:
    variants = {
        "unet1024": {"model.name": "unet1024"},
        "unet512": {"model.name": "unet512"},
        "cnn": {"model.name": "cnn", "model.kwargs": {}},
    }
    seeds = [0, 1, 2]
    eval_overrides = {"data.eval": "folder:../shared/data/denoise/test/CBSD68",
                      "data.eval_max_images": 0}
  gan = pix2pix.get_config("quick" if a.quick else None)
  variants["gan"] = {**variants["unet1024"],
                     **spec.overrides_toward(base, gan, GAN_FIELDS)}
  return spec.build(
      a, name="unet_bottleneck", base=base, variants=variants, seeds=seeds,
      reference="unet1024", eval_overrides=eval_overrides,
      description="U-Net bottleneck width (1024 vs 512 channels) against a plain residual CNN "
                  "and against the 1024 U-Net trained as a pix2pix generator (adversarial + "
                  "L1) on Gaussian deblurring; paired differences are relative to unet1024.")
