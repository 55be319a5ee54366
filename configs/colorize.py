"""Colourisation: grayscale photos -> RGB, a residual U-Net predicting the colour correction.

  python launch.py --config=configs/colorize.py --workdir=runs/colorize
  python launch.py --config=configs/colorize.py:quick --workdir=runs/colorize_quick   # CPU

Arguments: `quick`.
The model sees the BT.601 luma repeated over 3 channels (`grayscale`, keep_channels) and
returns input + net(input): it starts at the gray image, whose PSNR is the bar to beat.
Default data: `builtin:color` (5 colour training photos, eval astronaut and coffee). Real data
(never train on a test set):
  --config.data.train=folder:../shared/data/denoise/train/CBSD432
  --config.data.eval=folder:../shared/data/denoise/test/CBSD68
A perceptual term (VGG19 features) helps colours look plausible rather than averaged:
  --config.loss='{"l1": 1.0, "perceptual": 0.1}' --config.perceptual.weights_path=VGG19.h5
(when restoration.losses offers `perceptual`; see configs/default.py `perceptual`).
`quick` trains a small residual CNN briefly with a low learning rate: on 5 photos, a large
model or a long run learns their palettes (hubble's blues, immunohistochemistry's browns)
and ends below the gray input on the eval photos.
"""

from configs import common


def get_config(arg: str | None = None):
  a = common.parse_arg(arg, quick=False)
  c = common.base()
  c.data.train = "builtin:color"
  c.data.eval = "builtin:color"
  c.corruption = [{"name": "grayscale", "keep_channels": True}]
  c.model.kwargs = {"features": 32, "depth": 4}
  c.patch_size = 128
  c.total_steps = 100_000
  c.eval_every_steps = 2_000
  c.checkpoint_every_steps = 2_000
  c.data.eval_crop = 128
  c.loss = {"l1": 1.0}
  c.optimizer.learning_rate = 2e-4
  c.optimizer.schedule = "cosine"
  c.optimizer.warmup_steps = 1_000
  c.optimizer.grad_clip_norm = 1.0
  if a.quick:
    common.make_quick(c, steps=300)
    c.model.name = "cnn"
    c.model.kwargs = {"depth": 5, "features": 16}
    c.patch_size = 32
    c.batch_size = 8
    c.optimizer.learning_rate = 5e-4
    c.optimizer.warmup_steps = 20
  return c
