"""Inpainting: fill missing blocks of RGB photos given the hole mask (task 'inpaint').

  python launch.py --config=configs/inpaint.py --workdir=runs/inpaint
  python launch.py --config=configs/inpaint.py:quick --workdir=runs/inpaint_quick   # CPU
  python launch.py --config=configs/inpaint.py:quick,gan --workdir=runs/inpaint_gan_quick

Arguments (comma-separated): `quick`, `gan`.
The U-Net sees the image with holes plus the mask channel (4 channels in, 3 out,
residual=False) and its prediction keeps the known pixels (restoration.tasks.inpaint). Loss:
L1 on the holes plus inpaint.valid_weight (0.1) x L1 on every pixel. The last stage of the
chained restore (configs/pipeline.py). Real data:
  --config.data.train=folder:../shared/data/denoise/train/CBSD432
  --config.data.eval=folder:../shared/data/denoise/test/CBSD68

`gan`: task 'inpaint_adversarial', the same U-Net, input, loss and inference as pix2pix's
generator against a conditional PatchGAN (conditioned on image + mask, judging the filled
image, so only the holes): G minimises g_adv + 100 x the loss above (`adversarial.l1_weight`,
pix2pix's lambda), vanilla (non-saturating) GAN loss, Adam with b1 = 0.5 for both networks,
D's gradients clipped at norm 1. Full size: lr 2e-4 for both, constant, no warmup (as
pix2pix); the 70x70 PatchGAN on the 128 px crops. quick: a 2-layer, 16-feature PatchGAN (6x6
logits of 34 px receptive fields on 32 px crops) and lr 1e-3 for both. The adversarial term
aims at sharper fills, not PSNR; at quick size it did not cost PSNR (WORKSPACE.md, issue 11).
"""

from configs import common


def get_config(arg: str | None = None):
  a = common.parse_arg(arg, quick=False, gan=False)
  c = common.base()
  c.task = "inpaint"
  c.corruption = [{"name": "random_blocks", "num_blocks": 8, "block_size": (4, 24),
                   "fill": 0.0}]
  c.model.kwargs = {"features": 32, "depth": 4, "out_channels": 3, "residual": False}
  c.loss = {"l1": 1.0}
  common.full_size_blocks(c)
  if a.gan:
    c.task = "inpaint_adversarial"
    c.optimizer.learning_rate = 2e-4
    c.optimizer.schedule = "constant"
    c.optimizer.warmup_steps = 0
    c.optimizer.b1 = 0.5
    c.adversarial.loss = "vanilla"
    c.adversarial.l1_weight = 100.0
    c.adversarial.d_optimizer.learning_rate = 2e-4
    c.adversarial.d_optimizer.b1 = 0.5
    c.adversarial.d_optimizer.grad_clip_norm = 1.0
  if a.quick:
    common.quick_blocks(c)
    c.model.kwargs = {"features": 8, "depth": 2, "out_channels": 3, "residual": False}
    c.corruption = [{"name": "random_blocks", "num_blocks": 3, "block_size": (3, 10),
                     "fill": 0.0}]
    c.optimizer.warmup_steps = 20
    if a.gan:
      c.optimizer.learning_rate = 1e-3
      c.adversarial.d_optimizer.learning_rate = 1e-3
      c.adversarial.discriminator.kwargs = {"n_layers": 2, "features": 16}
  return c
