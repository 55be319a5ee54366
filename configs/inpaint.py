"""Inpainting: fill missing blocks of RGB photos given the hole mask (task 'inpaint').

  python launch.py --config=configs/inpaint.py --workdir=runs/inpaint
  python launch.py --config=configs/inpaint.py:quick --workdir=runs/inpaint_quick   # CPU

Arguments: `quick`.
The U-Net sees the image with holes plus the mask channel (4 channels in, 3 out,
residual=False) and its prediction keeps the known pixels (restoration.tasks.inpaint). Loss:
L1 on the holes plus inpaint.valid_weight (0.1) x L1 on every pixel. The last stage of the
chained restore (configs/pipeline.py). Real data:
  --config.data.train=folder:../shared/data/denoise/train/CBSD432
  --config.data.eval=folder:../shared/data/denoise/test/CBSD68
"""

from configs import common


def get_config(arg: str | None = None):
  a = common.parse_arg(arg, quick=False)
  c = common.base()
  c.task = "inpaint"
  c.corruption = [{"name": "random_blocks", "num_blocks": 8, "block_size": (4, 24),
                   "fill": 0.0}]
  c.model.kwargs = {"features": 32, "depth": 4, "out_channels": 3, "residual": False}
  c.loss = {"l1": 1.0}
  common.full_size_blocks(c)
  if a.quick:
    common.quick_blocks(c)
    c.model.kwargs = {"features": 8, "depth": 2, "out_channels": 3, "residual": False}
    c.corruption = [{"name": "random_blocks", "num_blocks": 3, "block_size": (3, 10),
                     "fill": 0.0}]
    c.optimizer.warmup_steps = 20
  return c
