"""DnCNN vs CvT vs a conditional PixelCNN on Gaussian denoising (sigma 25, grayscale), over seeds.

  python launch.py --mode=sweep --config=configs/sweeps/denoisers.py:quick \\
    --workdir=runs/denoisers_quick
  python launch.py --mode=sweep --sweep_emit=slurm --config=configs/sweeps/denoisers.py \\
    --workdir=runs/denoisers && sbatch --gres=gpu:1 runs/denoisers/sweep.sbatch

Full scale (GPU): configs/dncnn.py (DnCNN-S, 17 layers, 180k steps of 128 x 64 px crops of
Train400 from ../shared/data/denoise/train/Train400) against a CvT (embed 96, depth 4, 4
heads, AdamW) and configs/pixelcnn.py's conditional Gated PixelCNN (12 layers, 128 features)
with the same data, corruption and steps, 3 seeds; in-training eval on Set12, final eval on
BSD68 (never trained on) at sigma 15 / 25 / 50. Quick: DnCNN depth 5 / 16 channels vs a
one-block CvT (embed 16) vs configs/pixelcnn.py:quick's PixelCNN (4 layers, 24 features),
built-in photos, 32 px crops, 200 steps, 2 seeds.

The pixelcnn variant (task 'autoregressive') takes its task, model, optimizer and decoding
settings from configs/pixelcnn.py (`PIXELCNN_FIELDS`), quick or full to match; its eval
psnr/ssim are those of the deterministic decode (autoregressive.decode='mean'), and its
GFLOPs in the table are that decode's: H * W forward passes per gray image.

Eval crops: the decode is sequential (one forward pass per pixel) and eval also draws one
ancestral sample, so EVERY variant is evaluated on centre crops that the PixelCNN can afford,
the same images for all (a paired comparison needs them): 32 px in quick (64 px would be 4x
the passes on 4x the pixels: minutes per eval on 2 CPU cores), 64 px at full scale (whole
481 x 321 BSD68 images would be 154k passes each). Whole-image DnCNN / CvT numbers, as the
papers report: --mode=eval of their runs with --config.data.eval_crop=0.

Arguments: `quick`, `variant=NAME`, `seed=K`, `eval`.
"""

from configs import dncnn
from configs import pixelcnn
from restoration.sweeps import spec

DENOISE = "../shared/data/denoise"
# What the pixelcnn variant takes from configs/pixelcnn.py; data, corruption, run length and
# eval are this sweep's.
PIXELCNN_FIELDS = ("task", "model", "optimizer", "autoregressive")


def get_config(arg: str | None = None):
  a = spec.parse(arg)
  base = dncnn.get_config("quick" if a.quick else None)
  cvt = {"model.name": "cvt", "optimizer.name": "adamw", "optimizer.weight_decay": 1e-4}
  if a.quick:
    base.total_steps = 200
    base.eval_every_steps = base.checkpoint_every_steps = 100
    base.log_every_steps = 20
    base.data.eval_crop = 32
    cvt.update({"model.kwargs": {"embed_dim": 16, "depth": 1, "num_heads": 2},
                "optimizer.learning_rate": 2e-3})
    seeds, eval_overrides = [0, 1], {}
  else:
    base.patch_size = 64  # CvT needs a multiple of patch_size * window_size = 32
    base.data.train = f"folder:{DENOISE}/train/Train400"
    base.data.eval = f"folder:{DENOISE}/test/Set12"
    base.data.eval_crop = 64
    cvt.update({"model.kwargs": {"embed_dim": 96, "depth": 4, "num_heads": 4},
                "optimizer.learning_rate": 3e-4, "optimizer.warmup_steps": 2_000})
    seeds = [0, 1, 2]
    eval_overrides = {"data.eval": f"folder:{DENOISE}/test/BSD68"}
  pcnn = spec.overrides_toward(base, pixelcnn.get_config("quick" if a.quick else None),
                                     PIXELCNN_FIELDS)
  return spec.build(
      a, name="denoisers", base=base, variants={"dncnn": {}, "cvt": cvt, "pixelcnn": pcnn},
      seeds=seeds, reference="dncnn", eval_overrides=eval_overrides,
      description="DnCNN against a CvT convolution + transformer hybrid and a conditional "
                  "Gated PixelCNN (deterministic decode) on grayscale Gaussian denoising "
                  "(trained at sigma 25, evaluated on centre crops the PixelCNN can decode); "
                  "paired differences are relative to dncnn.")
