"""pix2pix (Isola et al. 2017): a U-Net generator against a conditional 70x70 PatchGAN.

  python launch.py --config=configs/pix2pix.py --workdir=runs/pix2pix             # deblurring
  python launch.py --config=configs/pix2pix.py:quick --workdir=runs/pix2pix_quick # CPU, minutes
  python launch.py --config=configs/pix2pix.py:blocks,loss=lsgan --workdir=runs/p2p_blocks

Arguments (comma-separated): `loss=vanilla|lsgan|hinge` (default vanilla, pix2pix's),
`blocks` (inpainting of 32x32 crops with 10 random missing blocks, as configs/cnn_blocks.py,
instead of the 128x128 deblurring task of configs/unet1024.py), `quick` (tiny U-Net and
PatchGAN, 300 steps on a 2-core CPU).

pix2pix's recipe: objective g_adv + 100 * L1 (`adversarial.l1_weight`, `loss={'l1': 1}`),
Adam with lr 2e-4 and b1 = 0.5 for both networks. A perceptual term adds with e.g.
--config.loss.perceptual=0.1 --config.perceptual.weights_path=vgg19.h5 (relative to L1).
The eval PSNR/SSIM are the generator's; expect them below an L1-only U-Net's: the
adversarial term trades PSNR for sharper textures.
"""

from configs import cnn_blocks
from configs import common

LOSSES = ("vanilla", "lsgan", "hinge")


def get_config(arg: str | None = None):
  a = common.parse_arg(arg, quick=False, blocks=False, loss="vanilla")
  if a.loss not in LOSSES:
    raise ValueError(f"pix2pix: loss={a.loss!r}; allowed: {list(LOSSES)}")
  c = common.deblurring(levin=False)
  c.task = "adversarial"
  c.model.name = "unet"
  c.optimizer.learning_rate = 2e-4
  c.optimizer.schedule = "constant"
  c.optimizer.b1 = 0.5
  c.loss = {"l1": 1.0, "perceptual": 0.0}  # listed so the command line can set it
  c.adversarial.loss = a.loss
  c.adversarial.d_optimizer.learning_rate = 2e-4
  c.adversarial.d_optimizer.b1 = 0.5
  c.adversarial.d_optimizer.grad_clip_norm = 1.0
  if a.blocks:
    c.patch_size = 32
    c.batch_size = 32
    c.data.eval_crop = 32
    c.corruption = cnn_blocks.blocks(10)
    c.eval.sweep = {f"blocks{n}": cnn_blocks.blocks(n) for n in cnn_blocks.LEVELS}
    # 32 px crops: 2 strided layers leave D 6x6 logits (34x34 receptive fields).
    c.adversarial.discriminator.kwargs = {"n_layers": 2}
  if a.quick:
    common.make_quick_deblurring(c)
    c.model.kwargs = {"features": 16, "depth": 2, "bottleneck": 64}
    c.adversarial.discriminator.kwargs = {"n_layers": 2, "features": 16}
    c.optimizer.learning_rate = 1e-3
    c.adversarial.d_optimizer.learning_rate = 1e-3
  return c
