"""CvT-style convolution + transformer hybrid on the U-Net's deblurring task (to compare).

  python launch.py --config=configs/cvt.py --workdir=runs/cvt
  python launch.py --config=configs/cvt.py:quick --workdir=runs/cvt_quick

Arguments: `quick`, `levin` (real camera-shake kernels from ../shared/data).
Real data: as in configs/unet1024.py.
"""

from configs import common


def get_config(arg: str | None = None):
  a = common.parse_arg(arg, quick=False, levin=False)
  c = common.base()
  c.model.name = "cvt"
  c.data.channels = 3
  c.patch_size = 128
  c.batch_size = 8
  c.total_steps = 100_000
  c.eval_every_steps = 2_000
  c.checkpoint_every_steps = 2_000
  c.data.eval_crop = 128
  c.corruption = common.LEVIN_BLUR if a.levin else common.GAUSSIAN_BLUR
  c.loss = {"l1": 1.0}
  c.optimizer.name = "adamw"
  c.optimizer.weight_decay = 1e-4
  c.optimizer.learning_rate = 3e-4
  c.optimizer.schedule = "cosine"
  c.optimizer.warmup_steps = 2_000
  c.optimizer.grad_clip_norm = 1.0
  c.eval.sweep = common.DEBLUR_SWEEP
  if a.quick:
    common.make_quick(c, steps=300)
    c.model.kwargs = {"embed_dim": 16, "depth": 1, "num_heads": 2}
    c.patch_size = 32
    c.batch_size = 8
    c.optimizer.learning_rate = 2e-3
    c.optimizer.warmup_steps = 20
  return c
