"""CvT-style convolution + transformer hybrid on the U-Net's deblurring task (to compare).

  python launch.py --config=configs/cvt.py --workdir=runs/cvt
  python launch.py --config=configs/cvt.py:quick --workdir=runs/cvt_quick

Arguments: `quick`, `levin` (real camera-shake kernels from ../shared/data).

Real data: as in configs/unet1024.py.
"""

from configs import common


def get_config(arg: str | None = None):
  a = common.parse_arg(arg, quick=False, levin=False)
  c = common.deblurring(levin=a.levin)
  c.model.name = "cvt"
  c.optimizer.name = "adamw"
  c.optimizer.weight_decay = 1e-4
  c.optimizer.learning_rate = 3e-4
  c.optimizer.warmup_steps = 2_000
  if a.quick:
    common.make_quick_deblurring(c)
    c.model.kwargs = {"embed_dim": 16, "depth": 1, "num_heads": 2}
    c.optimizer.learning_rate = 2e-3
  return c
