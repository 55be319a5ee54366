"""DnCNN-S Gaussian denoising (Zhang et al. 2017): 17 layers, residual learning, grayscale.

  python launch.py --config=configs/dncnn.py --workdir=runs/dncnn_s25
  python launch.py --config=configs/dncnn.py:sigma=50 --workdir=runs/dncnn_s50
  python launch.py --config=configs/dncnn.py:blind --workdir=runs/dncnn_blind     # sigma in [0, 55]
  python launch.py --config=configs/dncnn.py:quick --workdir=runs/dncnn_quick     # CPU, minutes

Arguments: `sigma=N` (0-255 scale, default 25), `blind` (DnCNN-B: sigma drawn per image from
[0, 55]), `color` (CDnCNN: RGB), `quick`.

The paper's data (from ../shared/data; never train on a test set):
  --config.data.train=folder:../shared/data/denoise/train/Train400
  --config.data.eval=folder:../shared/data/denoise/test/BSD68     # or Set12
  colour: --config.data.train=folder:../shared/data/denoise/train/CBSD432
          --config.data.eval=folder:../shared/data/denoise/test/CBSD68
Eval mode reports sigma 15/25/50 on the eval set (`eval.sweep`).
"""

from configs import common


def get_config(arg: str | None = None):
  a = common.parse_arg(arg, sigma=25, blind=False, color=False, quick=False, kair=False)
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
  if a.kair:
    # The widely used PyTorch toolbox's shipped recipe (KAIR options/train_dncnn.json), the
    # reference the time-to-quality table compares with: batch 64, L1, Adam 1e-4, orthogonal
    # init (gain 0.2, BN scales U(0.1, 1)), BN with torch momentum 0.9 (= flax 0.1), eps 1e-4,
    # lr halved every 200k steps.
    c.batch_size = 64
    c.loss = {"l1": 1.0}
    c.optimizer.learning_rate = 1e-4
    c.optimizer.schedule = "constant"
    c.model.kwargs = {"weight_init": "orthogonal", "init_gain": 0.2, "bn_momentum": 0.1,
                      "bn_epsilon": 1e-4}
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
