"""Conditional Gated PixelCNN (task 'autoregressive'): p(clean | corrupted) on 32x32 RGB crops.

  python launch.py --config=configs/pixelcnn.py --workdir=runs/pixelcnn_s25
  python launch.py --config=configs/pixelcnn.py:corruption=blocks --workdir=runs/pixelcnn_blocks
  python launch.py --config=configs/pixelcnn.py:quick --workdir=runs/pixelcnn_quick   # CPU, minutes

Arguments: `corruption=noise|blocks` (default noise), `sigma=N` (Gaussian noise, 0-255 scale,
default 25), `blocks=10|50|100` (missing 2-4 px blocks, zero-filled, default 10), `quick`
(16 px gray crops, a small model: learns on a 2-core CPU in about 2 minutes).

Trained by the exact NLL of the clean 8-bit image (train `loss` in nats/dim, `bits_per_dim`);
eval reports the deterministic decode's psnr/ssim (`autoregressive.decode`), `nll_bpd` and the
sampled decode's psnr_sample/ssim_sample. Decoding costs H * W * C forward passes per image
(3,072 for 32x32 RGB): keep eval sets small (data.eval_max_images) on a CPU.

Default data: the built-in photos. CIFAR-10 (from ../shared/data, npz shards; never train on
the test set):
  --config.data.train='npz:../shared/data/cifar10/train_*.npz'
  --config.data.eval='npz:../shared/data/cifar10/test.npz' --config.data.eval_max_images=256
"""

from configs import cnn_blocks
from configs import common

CORRUPTIONS = ("noise", "blocks")


def noise(sigma: float) -> list[dict]:
  return [{"name": "gaussian_noise", "sigma": float(sigma)}]


def get_config(arg: str | None = None):
  a = common.parse_arg(arg, corruption="noise", sigma=25, blocks=10, quick=False)
  if a.corruption not in CORRUPTIONS:
    raise ValueError(f"pixelcnn: corruption={a.corruption!r}; allowed: {list(CORRUPTIONS)}")
  if a.blocks not in cnn_blocks.LEVELS:
    raise ValueError(f"pixelcnn: blocks={a.blocks}; allowed: {list(cnn_blocks.LEVELS)}")
  c = common.base()
  c.task = "autoregressive"
  c.model.name = "pixelcnn"
  c.model.kwargs = {"features": 128, "layers": 12, "cond_features": 64}
  c.patch_size = 32
  c.batch_size = 64
  c.total_steps = 100_000
  c.eval_every_steps = 5_000
  c.checkpoint_every_steps = 5_000
  c.data.eval_crop = 32
  c.data.eval_batch_size = 16
  c.data.eval_max_images = 64  # each eval image costs two 3,072-pass decodes
  c.optimizer.schedule = "cosine"
  c.optimizer.warmup_steps = 1_000
  c.optimizer.grad_clip_norm = 1.0
  if a.corruption == "noise":
    c.corruption = noise(a.sigma)
    c.eval.sweep = {f"sigma{s}": noise(s) for s in (15, 25, 50)}
  else:
    c.corruption = cnn_blocks.blocks(a.blocks)
    c.eval.sweep = {f"blocks{n}": cnn_blocks.blocks(n) for n in cnn_blocks.LEVELS}
  if a.quick:
    common.make_quick(c, steps=500)
    c.model.kwargs = {"features": 24, "layers": 4, "cond_features": 16}
    c.data.channels = 1  # a third of the sub-pixels to learn and decode
    c.patch_size = 16
    c.batch_size = 16
    c.optimizer.learning_rate = 3e-3
    c.optimizer.warmup_steps = 20
    c.data.eval_crop = 16
  return c
