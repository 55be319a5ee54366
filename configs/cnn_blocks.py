"""Block inpainting: a plain CNN restores 32x32 images with 10 / 50 / 100 missing blocks.

  python launch.py --config=configs/cnn_blocks.py:blocks=50 --workdir=runs/cnn_blocks50
  python launch.py --config=configs/cnn_blocks.py:quick --workdir=runs/cnn_blocks_quick

Arguments: `blocks=10|50|100` (default 10), `quick`.

CIFAR-10 as in the original study (from ../shared/data, npz shards):
  --config.data.train='npz:../shared/data/cifar10/train_*.npz'
  --config.data.eval='npz:../shared/data/cifar10/test.npz' --config.data.eval_max_images=1000
  or through tfds: --config.data.train=tfds:cifar10:train (a prepared tfds data_dir)
Eval mode reports loss and SSIM at 10, 50 and 100 blocks (`eval.sweep`).
"""

from configs import common

LEVELS = (10, 50, 100)
BLOCK_SIZE = (2, 4)  # side of each missing square block, drawn per block, pixels


def blocks(n: int) -> list[dict]:
  return [{"name": "random_blocks", "num_blocks": n, "block_size": BLOCK_SIZE, "fill": "zero"}]


def get_config(arg: str | None = None):
  a = common.parse_arg(arg, blocks=10, quick=False)
  if a.blocks not in LEVELS:
    raise ValueError(f"cnn_blocks: blocks={a.blocks}; allowed: {list(LEVELS)}")
  c = common.base()
  c.model.name = "cnn"
  c.model.kwargs = {"residual": True}
  c.patch_size = 32
  c.batch_size = 64
  c.total_steps = 50_000
  c.eval_every_steps = 2_500
  c.checkpoint_every_steps = 2_500
  c.data.eval_crop = 32
  c.data.eval_batch_size = 64
  c.corruption = blocks(a.blocks)
  c.optimizer.schedule = "cosine"
  c.optimizer.warmup_steps = 500
  c.eval.sweep = {f"blocks{n}": blocks(n) for n in LEVELS}
  if a.quick:
    common.make_quick(c, steps=300)
    c.model.kwargs = {"residual": True, "depth": 4, "features": 16}
    c.batch_size = 16
    c.data.eval_crop = 32
    c.data.eval_max_images = 8
    c.data.eval_batch_size = 8
  return c
