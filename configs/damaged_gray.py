"""One U-Net from a damaged gray photo to the clean colour photo: the chained restore's baseline.

  python launch.py --config=configs/damaged_gray.py --workdir=runs/damaged_gray
  python launch.py --config=configs/damaged_gray.py:quick --workdir=runs/damaged_gray_quick

Arguments: `quick`.
The corruption makes, from a clean colour crop, the photo the pipeline eval synthesises
(restoration.modes.chained_eval): its BT.601 luma (kept in 3 channels), then the block damage of
configs/mask.py (common.DAMAGE / QUICK_DAMAGE) with gray noise ('gray_noise' draws exactly
what 'noise' draws on the mask run's 1-channel photos). The target is the clean colour crop,
so one residual U-Net learns what mask -> colourise -> inpaint do in three
(configs/pipeline.py). Its eval next to the stages:
  python launch.py --mode=eval --config=configs/pipeline.py --workdir=runs/pipeline \\
    --config.pipeline.single=runs/damaged_gray
Default data: `builtin:color`, as configs/colorize.py (gray photos would need no colour).
Real data (never train on a test set):
  --config.data.train=folder:../shared/data/denoise/train/CBSD432
  --config.data.eval=folder:../shared/data/denoise/test/CBSD68
"""

from configs import common


def damaged_gray(damage) -> list[dict]:
  return ([{"name": "grayscale", "keep_channels": True}]
          + common.damage_blocks(*damage, noise_fill="gray_noise"))


def get_config(arg: str | None = None):
  a = common.parse_arg(arg, quick=False)
  c = common.base()
  c.data.train = "builtin:color"
  c.data.eval = "builtin:color"
  c.corruption = damaged_gray(common.DAMAGE)
  c.model.kwargs = {"features": 32, "depth": 4}
  c.loss = {"l1": 1.0}
  common.full_size_blocks(c)
  c.optimizer.grad_clip_norm = 1.0
  if a.quick:
    common.quick_blocks(c)
    c.corruption = damaged_gray(common.QUICK_DAMAGE)
    c.model.kwargs = {"features": 12, "depth": 2}  # 66k params: the three stages have 67k
    c.optimizer.warmup_steps = 20
  return c
