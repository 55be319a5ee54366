"""DnCNN vs CvT on Gaussian denoising (sigma 25, grayscale), over seeds.

  python launch.py --mode=sweep --config=configs/sweeps/denoisers.py:quick \\
    --workdir=runs/denoisers_quick
  python launch.py --mode=sweep --sweep_emit=slurm --config=configs/sweeps/denoisers.py \\
    --workdir=runs/denoisers && sbatch --gres=gpu:1 runs/denoisers/sweep.sbatch

Full scale (GPU): configs/dncnn.py (DnCNN-S, 17 layers, 180k steps of 128 x 40 px crops of
Train400 from ../shared/data/denoise/train/Train400) against a CvT (embed 96, depth 4, 4
heads, AdamW) with the same data, loss and steps, 3 seeds; in-training eval on Set12, final
eval on BSD68 (never trained on) at sigma 15 / 25 / 50. Quick: DnCNN depth 5 / 16 channels vs
a one-block CvT (embed 16), built-in photos, 200 steps, 2 seeds.

Arguments: `quick`, `variant=NAME`, `seed=K`, `eval`.
"""

from configs import dncnn
from restoration import sweep_spec

DENOISE = "../shared/data/denoise"


def get_config(arg: str | None = None):
  a = sweep_spec.parse(arg)
  base = dncnn.get_config("quick" if a.quick else None)
  cvt = {"model.name": "cvt", "optimizer.name": "adamw", "optimizer.weight_decay": 1e-4}
  if a.quick:
    base.total_steps = 200
    base.eval_every_steps = base.checkpoint_every_steps = 100
    base.log_every_steps = 20
    cvt.update({"model.kwargs": {"embed_dim": 16, "depth": 1, "num_heads": 2},
                "optimizer.learning_rate": 2e-3})
    seeds, eval_overrides = [0, 1], {}
  else:
    base.patch_size = 64  # CvT needs a multiple of patch_size * window_size = 32
    base.data.train = f"folder:{DENOISE}/train/Train400"
    base.data.eval = f"folder:{DENOISE}/test/Set12"
    cvt.update({"model.kwargs": {"embed_dim": 96, "depth": 4, "num_heads": 4},
                "optimizer.learning_rate": 3e-4, "optimizer.warmup_steps": 2_000})
    seeds = [0, 1, 2]
    eval_overrides = {"data.eval": f"folder:{DENOISE}/test/BSD68"}
  return sweep_spec.build(
      a, name="denoisers", base=base, variants={"dncnn": {}, "cvt": cvt}, seeds=seeds,
      reference="dncnn", eval_overrides=eval_overrides,
      description="DnCNN against a CvT convolution + transformer hybrid on grayscale Gaussian "
                  "denoising (trained at sigma 25); paired differences are relative to dncnn.")
