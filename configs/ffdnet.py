"""FFDNet (Zhang et al. 2018): Gaussian denoising whose strength is an input, the noise-level map.

  python launch.py --config=configs/ffdnet.py --workdir=runs/ffdnet_gray
  python launch.py --config=configs/ffdnet.py:color --workdir=runs/ffdnet_color
  python launch.py --config=configs/ffdnet.py:quick --workdir=runs/ffdnet_quick    # CPU, minutes
  python launch.py --mode=import --config=configs/ffdnet.py \\
    --from=../shared/data/pretrained/ffdnet/FFDNet_gray.mat --workdir=runs/ffdnet_gray_pub
  python launch.py --mode=restore --workdir=runs/ffdnet_gray_pub --sigma=25 \\
    --input=photo.png --output=out/

Arguments:
  color    RGB: the released colour model's 12 conv layers x 96 channels (gray: 15 x 64)
  clip     the noisy training / eval input is clipped to [0, 1] (the `_Clip_` released models)
  spatial  training noise of a spatially varying level (gaussian_noise_map spatial=True: a
           smooth random sigma field per image, its map fed to the model); default one sigma
           per image
  kair     exactly KAIR's options/train_ffdnet.json: no batch norm (its act_mode 'R'),
           orthogonal init (gain 0.2); without it the network trains with BN (the paper's),
           folded away only in the released weights
  quick    a tiny FFDNet that learns in a few minutes on a 2-core CPU

Training follows KAIR's FFDNet recipe (the PyTorch toolbox of the paper's first author,
options/train_ffdnet.json): sigma drawn per image uniformly from [0, 75] (0-255 scale), the
map of exactly that noise fed with the noisy input (task 'ffdnet'), 64 x 64 crops, batch 64,
L1 loss, Adam at 1e-4 halved every 200k steps (here: at 1/5, 2/5, 3/5, 4/5 of 1M steps).

The paper's data (from ../shared/data; never train on a test set):
  --config.data.train=folder:../shared/data/denoise/train/Train400
  --config.data.eval=folder:../shared/data/denoise/test/BSD68
  colour: --config.data.train=folder:../shared/data/denoise/train/CBSD432
          --config.data.eval=folder:../shared/data/denoise/test/CBSD68
Eval mode reports sigma 15/25/35/50/75 (the map told the true sigma) and two mismatched
levels: true sigma 25 with a map of 15 (`sigma25_map15`: under-denoised) and of 35
(`sigma25_map35`: over-smoothed). A level states the map's sigma with the gaussian_noise_map
field `map_sigma`; without it the map is the true level.
"""

from configs import common

SIGMAS = (15, 25, 35, 50, 75)
MISMATCH = ((25, 15), (25, 35))  # (true sigma, sigma the map claims)


def eval_sweep(clip: bool) -> dict:
  """The published levels, then the mismatched ones (the map lies about sigma)."""
  sweep = {f"sigma{s}": [{"name": "gaussian_noise", "sigma": float(s), "clip": clip}]
           for s in SIGMAS}
  for true, told in MISMATCH:
    sweep[f"sigma{true}_map{told}"] = [{"name": "gaussian_noise_map", "sigma": float(true),
                                        "clip": clip, "map_sigma": float(told)}]
  return sweep


def get_config(arg: str | None = None):
  a = common.parse_arg(arg, color=False, clip=False, spatial=False, kair=False, quick=False)
  c = common.base()
  c.task = "ffdnet"
  c.model.name = "ffdnet"
  c.data.channels = 3 if a.color else 1
  c.model.kwargs = {"depth": 12, "features": 96} if a.color else {"depth": 15, "features": 64}
  c.patch_size = 64
  c.batch_size = 64
  c.total_steps = 1_000_000
  c.eval_every_steps = 5_000
  c.checkpoint_every_steps = 5_000
  c.loss = {"l1": 1.0}
  c.optimizer.learning_rate = 1e-4
  c.optimizer.schedule = "step"
  c.optimizer.decay_steps = (0.2, 0.4, 0.6, 0.8)
  c.optimizer.decay_factor = 0.5
  c.corruption = [{"name": "gaussian_noise_map", "sigma": (0.0, 75.0), "clip": a.clip,
                   "spatial": a.spatial}]
  c.eval.sweep = eval_sweep(a.clip)
  if a.kair:
    c.model.kwargs = {**c.model.kwargs, "batch_norm": False, "weight_init": "orthogonal",
                      "init_gain": 0.2}
  if a.quick:
    # 600 steps of a 5-layer, 32-channel FFDNet on 32 px crops: blind denoising over [0, 75]
    # needs more steps than a fixed sigma (DnCNN blind: 1000) but the map makes it easier.
    # Without BN (kair) the net needs 1200 steps (600: 24.43 from 24.90); colour needs batch 32
    # and 1000 (batch 16, 600 / 1000 / 2000 steps: 24.26 / 24.60 / 25.56; batch 32: 25.83);
    # both: 2000 (1200: 24.20; 2000: 25.45). CPU2, 2026-12-04.
    common.make_quick(c, steps=(2000 if a.color else 1200) if a.kair else
                      1000 if a.color else 600)
    # KAIR's orthogonal init (gain 0.2) for the quick net too: from the He init this net's
    # output (the image itself, not a residual) starts far off and 600 steps ended 2.5 dB
    # BELOW the input (22.43 from 24.90); orthogonal init with BN: 26.64 (WORKSPACE, issue 29).
    c.model.kwargs = {**c.model.kwargs, "depth": 5, "features": 32, "weight_init": "orthogonal",
                      "init_gain": 0.2}
    c.batch_size = 32 if a.color else 16
    c.patch_size = 32
    c.optimizer.learning_rate = 1e-3
    c.optimizer.schedule = "constant"
  return c
