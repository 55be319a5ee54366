"""Low-light restoration: darkened images with salt & pepper noise, restored by a 16-layer CNN.

  python launch.py --config=configs/lowlight.py --workdir=runs/lowlight
  python launch.py --config=configs/lowlight.py:quick --workdir=runs/lowlight_quick

Arguments: `quick`, `amount=F` (salt & pepper fraction, default 0.02).

Real data, e.g. --config.data.train=folder:../shared/data/denoise/train/CBSD432
                --config.data.eval=folder:../shared/data/denoise/test/CBSD68
"""

from configs import common


def get_config(arg: str | None = None):
  a = common.parse_arg(arg, quick=False, amount=0.02)
  c = common.base()
  c.model.name = "cnn"
  c.model.kwargs = {"depth": 16, "features": 64, "residual": True}
  c.total_steps = 60_000
  c.eval_every_steps = 2_000
  c.checkpoint_every_steps = 2_000
  c.data.eval_crop = 128
  c.corruption = [
      {"name": "low_light", "brightness": (0.2, 0.5), "gamma": (1.0, 1.6)},
      {"name": "salt_and_pepper", "amount": float(a.amount)},
  ]
  c.loss = {"l1": 1.0, "ssim": 0.2}
  c.optimizer.learning_rate = 5e-4
  c.optimizer.schedule = "cosine"
  c.optimizer.warmup_steps = 500
  c.optimizer.grad_clip_norm = 1.0
  c.eval.sweep = {
      f"brightness{round(b * 100)}": [{"name": "low_light", "brightness": b, "gamma": 1.3},
                             {"name": "salt_and_pepper", "amount": float(a.amount)}]
      for b in (0.2, 0.35, 0.5)}
  if a.quick:
    common.make_quick(c, steps=300)
    c.model.kwargs = {"depth": 5, "features": 16, "residual": True}
    c.patch_size = 32
    c.batch_size = 8
    c.loss = {"l1": 1.0}
    c.optimizer.learning_rate = 2e-3
    c.optimizer.warmup_steps = 20
  return c
