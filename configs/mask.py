"""Damage-mask prediction: a U-Net marks the destroyed pixels of gray photos (task 'mask').

  python launch.py --config=configs/mask.py --workdir=runs/mask
  python launch.py --config=configs/mask.py:quick --workdir=runs/mask_quick   # CPU, minutes

Arguments: `quick`.
The target is the corruption chain's mask: noise-filled and black blocks of random sizes, as
scratches and stains on old prints (restoration.tasks.mask). One logit per pixel
(out_channels=1, residual=False); loss BCE + Dice; eval reports IoU, F1, precision, recall
and best/ keeps the highest IoU. The first stage of the chained restore
(configs/pipeline.py): mask -> colourise -> inpaint. Real data:
  --config.data.train=folder:../shared/data/denoise/train/Train400
  --config.data.eval=folder:../shared/data/denoise/test/BSD68
"""

from configs import common


def get_config(arg: str | None = None):
  a = common.parse_arg(arg, quick=False)
  c = common.base()
  c.task = "mask"
  c.data.channels = 1
  c.corruption = common.damage_blocks(*common.DAMAGE)
  c.model.kwargs = {"features": 32, "depth": 4, "out_channels": 1, "residual": False}
  c.loss = {"bce": 1.0, "dice": 1.0}
  common.full_size_blocks(c)
  if a.quick:
    common.quick_blocks(c)
    c.model.kwargs = {"features": 8, "depth": 2, "out_channels": 1, "residual": False}
    c.corruption = common.damage_blocks(*common.QUICK_DAMAGE)
    c.optimizer.warmup_steps = 20
  return c
