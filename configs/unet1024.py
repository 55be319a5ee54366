"""U-Net deblurring of 128x128 RGB crops, bottleneck of 1024 channels (the main job).

  python launch.py --config=configs/unet1024.py --workdir=runs/unet1024
  python launch.py --config=configs/unet1024.py:quick --workdir=runs/unet1024_quick   # CPU, minutes

Arguments (comma-separated): `quick` (tiny U-Net, a few minutes on a laptop CPU), `levin`
(real camera-shake blur: the 8 Levin et al. 2009 kernels from ../shared/data, one per image).

Real data instead of the built-in photos, e.g.:
  --config.data.train=folder:../shared/data/denoise/train/CBSD432
  --config.data.eval=folder:../shared/data/denoise/test/CBSD68
  --config.data.train=tfds:div2k --config.data.tfds_data_dir=/path/to/prepared/tfds
"""

from configs import common


def get_config(arg: str | None = None):
  a = common.parse_arg(arg, quick=False, levin=False)
  c = common.deblurring(levin=a.levin)
  c.model.name = "unet1024"
  c.optimizer.learning_rate = 2e-4
  c.optimizer.warmup_steps = 1_000
  if a.quick:
    common.make_quick_deblurring(c)
    c.model.name = "unet"
    c.model.kwargs = {"features": 16, "depth": 2, "bottleneck": 64}
    c.loss = {"mse": 1.0}  # converges faster than L1 in a few hundred steps
    c.optimizer.learning_rate = 1e-3
    if a.levin:  # kernels up to 27 px: 32 px crops and 300 steps end below the input
      c.patch_size = 64
      common.make_quick(c, steps=600)
      c.loss = {"l1": 1.0}
      c.optimizer.learning_rate = 2e-3
  return c
