"""Block inpainting with 10 / 50 / 100 missing blocks (plain residual CNN), over seeds.

Each variant trains at its own number of missing blocks; eval scores every model at all three
levels (eval.sweep), so the table shows both the matched level and the transfer.

  python launch.py --mode=sweep --config=configs/sweeps/blocks.py:quick --workdir=runs/blocks_quick
  python launch.py --mode=sweep --sweep_emit=slurm --config=configs/sweeps/blocks.py \\
    --workdir=runs/blocks && sbatch --gres=gpu:1 runs/blocks/sweep.sbatch

Full scale (GPU): configs/cnn_blocks.py (50k steps, batch 64, 32 px) on CIFAR-10 from
../shared/data/cifar10 (npz shards: train_0..3.npz for training, 40k images; train_4.npz
held out for the in-training eval that picks the best checkpoint, first 1000 images; final
eval on the first 2000 images of test.npz, never trained on or selected on), 3 seeds.
Quick: the built-in photos (self-contained), a 4-layer 16-channel CNN, 200 steps, 2 seeds,
32 px centre crops of the 4 built-in eval photos.

Arguments: `quick`, `variant=NAME`, `seed=K`, `eval`.
"""

from configs import cnn_blocks
from restoration.sweeps import spec

CIFAR = "../shared/data/cifar10"


def get_config(arg: str | None = None):
  a = spec.parse(arg)
  base = cnn_blocks.get_config("quick" if a.quick else None)
  variants = {f"blocks{n}": {"corruption": cnn_blocks.blocks(n)} for n in cnn_blocks.LEVELS}
  if a.quick:
    base.total_steps = 200
    base.eval_every_steps = base.checkpoint_every_steps = 100
    base.log_every_steps = 20
    seeds, eval_overrides = [0, 1], {}
  else:
    base.data.train = f"npz:{CIFAR}/train_[0-3].npz"
    base.data.eval = f"npz:{CIFAR}/train_4.npz"
    base.data.eval_max_images = 1000
    seeds = [0, 1, 2]
    eval_overrides = {"data.eval": f"npz:{CIFAR}/test.npz", "data.eval_max_images": 2000}
  return spec.build(
      a, name="blocks", base=base, variants=variants, seeds=seeds, reference="blocks10",
      eval_overrides=eval_overrides,
      description="A residual CNN trained with 10, 50 or 100 missing 2-4 px blocks, each "
                  "evaluated at all three levels; paired differences are relative to blocks10.")
