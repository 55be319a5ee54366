"""DnCNN-S Gaussian denoising (Zhang et al. 2017): 17 layers, residual learning, grayscale.

  python launch.py --config=configs/dncnn.py --workdir=runs/dncnn_s25
  python launch.py --config=configs/dncnn.py:sigma=50 --workdir=runs/dncnn_s50
  python launch.py --config=configs/dncnn.py:blind --workdir=runs/dncnn_blind     # sigma in [0, 55]
  python launch.py --config=configs/dncnn.py:quick --workdir=runs/dncnn_quick     # CPU, minutes

Arguments: `sigma=N` (0-255 scale, default 25), `blind` (DnCNN-B: sigma drawn per image from
[0, 55]), `color` (CDnCNN: RGB), `quick`, `kair` (the PyTorch toolbox KAIR's DnCNN recipe:
batch 64, L1, Adam 1e-4, orthogonal init, fast BN statistics; `loss=mse` swaps its loss),
`cpu=MINUTES` (the kair recipe at batch 16 with its schedule fitted to a training budget of
MINUTES on a 2-core CPU, ending with BN statistics re-estimated over 50 batches; `batch=32`,
`batch=64` for the earlier hours' batches; WORKSPACE "Time to quality": BSD68 PSNR against minutes),
`gpu=MINUTES` (the same recipe at the paper's batch 128 with device-resident data, its schedule
fitted to MINUTES on one NVIDIA H200; WORKSPACE "Trained on a GPU").

  python launch.py --config=configs/dncnn.py:cpu=60 --workdir=runs/dncnn_cpu60 \
    --config.data.train=folder:../shared/data/denoise/train/Train400

The paper's data (from ../shared/data; never train on a test set):
  --config.data.train=folder:../shared/data/denoise/train/Train400
  --config.data.eval=folder:../shared/data/denoise/test/BSD68     # or Set12
  colour: --config.data.train=folder:../shared/data/denoise/train/CBSD432
          --config.data.eval=folder:../shared/data/denoise/test/CBSD68
Eval mode reports sigma 15/25/50 on the eval set (`eval.sweep`).
"""

from configs import common

# One NVIDIA H200, `gpu=MINUTES`: seconds per training step of batch 128 in the loop, and
# seconds from launch to the first step (WORKSPACE "Trained on a GPU").
GPU_STEP_S = 0.0077
GPU_START_S = 30.0
# The 2-core CPU (CPU2) alone, `cpu=MINUTES[,batch=B]`: seconds per training step in the loop,
# checkpoints included, for each batch size measured in a quiet hour (64: session 10, 1,547
# steps in 60 minutes; 2.2, the figure used before, left the cosine's last 5% unrun. 32: session
# 13, 3,150 steps in 54.1 minutes, 1.03 s each; 1.10 from its 10-minute screen. 16: session 15,
# 6,680 steps in 58.5 minutes, 0.525 s each, some minutes at 0.55). `batch=` takes only these:
# a step time is measured, not extrapolated.
CPU_STEP_S = {16: 0.535, 32: 1.10, 64: 2.31}
CPU_BATCH = 16
CPU_START_S = 30.0
# `cpu=MINUTES` ends with PreciseBN over this many batches (config.precise_bn_batches; WORKSPACE
# "Time to quality"), each costing up to 0.4 of a training step on CPU2 alone (50 of batch 64 took
# 40 s), which the schedule leaves time for.
CPU_PRECISE_BN_BATCHES = 50
CPU_PRECISE_BN_STEP_FRACTION = 0.4


def get_config(arg: str | None = None):
  a = common.parse_arg(arg, sigma=25, blind=False, color=False, quick=False, kair=False,
                       cpu=0, gpu=0, loss="", batch=0)
  c = common.base()
  c.model.name = "dncnn"
  c.data.channels = 3 if a.color else 1
  c.patch_size = 40
  c.batch_size = 128
  c.total_steps = 180_000  # ~50 epochs of Train400 patches at batch 128, as in the paper
  c.eval_every_steps = 5_000
  c.checkpoint_every_steps = 5_000
  sigma = (0.0, 55.0) if a.blind else float(a.sigma)
  c.corruption = [{"name": "gaussian_noise", "sigma": sigma, "clip": False}]
  c.optimizer.schedule = "step"
  c.optimizer.decay_steps = (0.5, 0.8)
  c.eval.sweep = {f"sigma{s}": [{"name": "gaussian_noise", "sigma": float(s), "clip": False}]
                  for s in (15, 25, 50)}
  for name in ("cpu", "gpu"):
    v = getattr(a, name)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
      raise ValueError(f"config argument {name} is a training budget in minutes (a number > 0), "
                       f"got {v!r}")
  if a.loss not in ("", "l1", "mse"):
    raise ValueError(f"config argument loss is l1 or mse, got {a.loss!r}")
  if a.loss and not (a.kair or a.cpu or a.gpu):
    raise ValueError("config argument loss applies to the kair/cpu/gpu recipe (the shipped "
                     "config trains with mse)")
  if a.cpu and a.gpu:
    raise ValueError("config arguments cpu and gpu exclude each other (one training budget)")
  if a.batch and not a.cpu:
    raise ValueError("config argument batch applies to the cpu=MINUTES recipe")
  if a.cpu and a.batch not in (0, *CPU_STEP_S):
    raise ValueError(f"config argument batch is one of {sorted(CPU_STEP_S)} (the batch sizes "
                     f"whose CPU step time is measured), got {a.batch!r}")
  if a.kair or a.cpu or a.gpu:
    # The widely used PyTorch toolbox's shipped recipe (KAIR options/train_dncnn.json), the
    # reference the time-to-quality table compares with: batch 64, L1, Adam 1e-4, orthogonal
    # init (gain 0.2, BN scales U(0.1, 1)), BN with torch momentum 0.9 (= flax 0.1), eps 1e-4,
    # lr halved every 200k steps.
    c.batch_size = 64
    # `loss=mse` swaps only the loss, to measure what L1 buys (WORKSPACE "Time to quality").
    c.loss = {"mse": 1.0} if a.loss == "mse" else {"l1": 1.0}
    c.optimizer.learning_rate = 1e-4
    c.optimizer.schedule = "constant"
    c.model.kwargs = {"weight_init": "orthogonal", "init_gain": 0.2, "bn_momentum": 0.1,
                      "bn_epsilon": 1e-4}
  if a.cpu:
    # The most BSD68 PSNR from `cpu` minutes on the 2-core CPU (issue 24, WORKSPACE "Time to
    # quality"): the recipe above with a peak lr of 3e-4 (1e-3 collapses to the identity
    # within 5 minutes; 3e-4 beat 1e-4 there), a 50-step warmup and a cosine decay to 1% fitted
    # to the steps the budget holds: CPU_STEP_S per step (40x40 patches, CPU2) after
    # CPU_START_S of start-up. A smaller batch (twice the steps at half the cost each) learns
    # more per CPU second: BSD68 28.71 and 28.72 dB in batch 32's two quiet hours (session 13),
    # 28.53-28.57 in batch 64's three, 28.79 in batch 16's one (session 15; WORKSPACE "Time to
    # quality").
    c.batch_size = a.batch or CPU_BATCH
    c.optimizer.learning_rate = 3e-4
    c.optimizer.schedule = "cosine"
    c.optimizer.warmup_steps = 50
    # The BN running statistics (~90% the last batch's) are re-estimated at the end.
    c.precise_bn_batches = CPU_PRECISE_BN_BATCHES
    step_s = CPU_STEP_S[c.batch_size]
    closing_s = CPU_PRECISE_BN_BATCHES * CPU_PRECISE_BN_STEP_FRACTION * step_s
    c.total_steps = max(int((60 * a.cpu - CPU_START_S - closing_s) / step_s), 100)
    c.eval_every_steps = c.checkpoint_every_steps = c.total_steps
  if a.gpu:
    # The CPU recipe scaled to one GPU: the paper's batch 128, the train set uploaded once
    # (crops drawn inside the step: a host pipeline would starve the GPU), a longer warmup for
    # the many more steps, the cosine fitted to the steps `gpu` minutes hold at GPU_STEP_S
    # after GPU_START_S of start-up and compilation (both measured, WORKSPACE).
    c.batch_size = 128
    c.data.on_device = True
    c.optimizer.learning_rate = 3e-4
    c.optimizer.schedule = "cosine"
    c.optimizer.warmup_steps = 500
    c.total_steps = max(int((60 * a.gpu - GPU_START_S) / GPU_STEP_S), 1000)
    c.log_every_steps = 500
    c.eval_every_steps = c.checkpoint_every_steps = c.total_steps
  if a.quick:
    # Blind denoising must also learn to leave faint noise alone: 300 steps end below the
    # input (-1.1 dB), 1000 above it (+0.9 dB; WORKSPACE, issue 16).
    # Faint noise likewise: sigma=15 ends at 24.53 dB (input 24.61) after 300 steps, at
    # 26.84 after 400 (CPU2, 2026-11-26).
    common.make_quick(c, steps=1000 if a.blind else 600 if a.sigma < 25 else 300)
    # RGB noise needs more channels: 16 gained +0.25 dB in 300 steps, 32 gains +2.2 (WORKSPACE).
    c.model.kwargs = {"depth": 5, "features": 32 if a.color else 16}
    c.batch_size = 16
    c.patch_size = 32
  return c
