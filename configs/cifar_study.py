"""The CIFAR-10 block-inpainting study this project grew from, as it was run (a Keras notebook).

  python launch.py --config=configs/cifar_study.py:blocks=50 --workdir=runs/study50
  python launch.py --config=configs/cifar_study.py:quick --workdir=runs/study_quick

Arguments: `blocks=10|50|100` (default 10), `seed=N` (default 0), `test` (data.eval = the
test set, for --mode=eval), `quick` (minutes on a 2-core CPU), `beat=DEPTH` (0: off; the
project's recipe against the study, below), and with beat: `width=W`, `steps=N`, `mask`,
`train_blocks=10|50|100`.

`beat=DEPTH`: the same data, eval and model selection (LAST checkpoint, study SSIM), trained
with this project's recipe at the same CPU time as the study's run on the 2-core CPU: a
residual DnCNN of DEPTH 3x3 layers (`width=W` channels, default 64; batch norm; KAIR's
orthogonal init, gain 0.2), a fresh corruption every step (the study drew one per image),
Adam 1e-3 with a 200-step warmup and cosine decay to 1%, MSE, batch 32. `steps=N` overrides
the step count; the default is the study's 25,000 steps scaled by the CPU seconds per step of
the two models measured on CPU2 (`BEAT_STEPS`; WORKSPACE "the CIFAR-10 block-inpainting
study"), less the closing PreciseBN's cost: the BN statistics of the final checkpoint are
re-estimated over 50 training batches (session 14; without it they are ~90% the last batch's,
and one screen's last checkpoint lost 4 dB to them). Depth 10 scored best (session 10, seed 0,
no PreciseBN, trained on a GPU at that step count: 0.99686 / 0.98466 / 0.96414 against the
study's 0.99512 / 0.97665 / 0.95290); `beat=10,mask` with PreciseBN scored 0.99728 / 0.98486 /
0.96578 at 47 CPU minutes per level on CPU2 (session 14).
`mask`: the inpainting form (task 'inpaint', inpaint.mask='zeros'): the net also sees the hole
mask, found in the input itself (pixels 0 in every channel; nothing the study's model could
not see), predicts the pixels of the holes, and every other pixel passes through exactly.
`train_blocks=N`: train (and validate) on N blocks per image, score the level's own `blocks`
(more hole pixels per step to learn from): `blocks=10,beat=10,mask,train_blocks=50` scored
0.99744 and `blocks=50,beat=10,mask,train_blocks=100` 0.98500, the best at those levels
(session 15, seed 0, 45-46 CPU minutes each).

The study's protocol, and where each piece lives here:
* Data: CIFAR-10 / 255. Keras `fit(validation_split=0.2)`: the first 40,000 training images
  train (`npz:.../train_[0-3].npz`: shards 0-3 in sorted order), the last 10,000 validate
  (`train_4.npz`: data.eval during training, the Keras val_loss, every epoch = 1,250 steps);
  the 10,000 test images are scored (`test`). Read from ../shared/data beside the checkout.
* Corruption, drawn ONCE per image before training: `study_blocks` (restoration/corruptions/
  study_blocks.py: 2x2 zero blocks, centres uniform in 1..30, overlaps allowed) with
  corruption_fixed_per_image=True, augment=False and patch_size=32 (whole images), so each
  training image keeps one corruption for the whole run. Eval images are corrupted once per
  image anyway (eval.seed, image index).
* Model: `study_cnn` (Conv64-ReLU, Conv64-ReLU, ConvTranspose3-sigmoid, glorot / zero bias).
* Training: Adam lr 1e-3, eps 1e-7 (Keras' defaults), MSE, batch 32, 20 epochs = 25,000 steps
  of 32 from 40,000 images, constant lr. (Keras shuffles every epoch, as the pipeline does.)
* Model selection: the LAST epoch's weights. Training keeps best/ by validation PSNR as every
  run does, so score the last checkpoint explicitly with --step=25000 (the final checkpoint
  is always saved).
* Metric: mean over the 10,000 test images of old skimage's SSIM on floats (data_range 2,
  7x7 box, ddof=1): eval.ssim_convention='study', set here (`restoration/eval/study_ssim.py`).
  Reported: 0.99512 / 0.97665 / 0.95290 at 10 / 50 / 100 blocks (original lossless CIFAR-10;
  ../shared/data's is a JPEG re-export, see its README). Standard SSIM (Wang et al., BasicSR)
  is the other convention; both are rows of the same eval/results.json:

  for conv in study standard; do
    python launch.py --mode=eval --config=configs/cifar_study.py:blocks=50,test \\
      --workdir=runs/study50 --step=25000 --config.eval.ssim_convention=$conv; done
"""

import os

from configs import common

LEVELS = (10, 50, 100)
CIFAR = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                      "shared", "data", "cifar10"))
TRAIN = f"npz:{CIFAR}/train_[0-3].npz"  # the first 40,000 (Keras' training part)
VALIDATION = f"npz:{CIFAR}/train_4.npz"  # the last 10,000 (Keras' validation_split=0.2)
TEST = f"npz:{CIFAR}/test.npz"
EPOCH = 1_250  # 40,000 / 32 steps
# Steps of `beat=DEPTH` that cost the study run's CPU time on CPU2: 25,000 x (study CPU s/step)
# / (DnCNN CPU s/step), from `benchmarks/step_time.py --one='cifar_study.py:beat=D,width=W,
# steps=1000' --steps=20` (session 10, machine alone): study_cnn 0.124 CPU s/step;
# DnCNN (depth, width) (17, 64) 1.617, (10, 64) 0.904, (6, 64) 0.546, (17, 32) 0.625,
# (10, 32) 0.327.
BEAT_STEPS = {(17, 64): 1_915, (10, 64): 3_425, (6, 64): 5_671, (17, 32): 4_955,
              (10, 32): 9_470}
# `beat` ends with PreciseBN over this many training batches (config.precise_bn_batches): the
# BN running statistics (flax momentum 0.1, ~90% the last batch of 32 images) are re-estimated
# for the final checkpoint. Budgeted as PRECISE_BN_STEPS training steps (a batch through the
# net in training mode, no gradient: 0.32 of a step measured, 0.4 budgeted, as configs/dncnn.py).
PRECISE_BN_BATCHES = 50
PRECISE_BN_STEPS = 20


def blocks(n: int) -> list[dict]:
  return [{"name": "study_blocks", "num_blocks": n}]


def get_config(arg: str | None = None):
  a = common.parse_arg(arg, blocks=10, seed=0, test=False, quick=False, beat=0, width=64, steps=0,
                       mask=False, train_blocks=0)
  if a.blocks not in LEVELS:
    raise ValueError(f"cifar_study: blocks={a.blocks}; allowed: {list(LEVELS)}")
  if not isinstance(a.seed, int) or isinstance(a.seed, bool):
    raise ValueError(f"cifar_study: seed={a.seed!r}; allowed: an integer")
  c = common.base()
  c.seed = a.seed
  c.model.name = "study_cnn"
  c.model.kwargs = {}
  c.data.train = TRAIN
  c.data.eval = TEST if a.test else VALIDATION
  c.data.augment = False
  c.patch_size = 32
  c.batch_size = 32
  c.total_steps = 20 * EPOCH
  c.log_every_steps = 125
  c.eval_every_steps = EPOCH
  c.checkpoint_every_steps = EPOCH
  c.data.eval_crop = 0  # whole 32x32 images
  c.data.eval_batch_size = 256
  c.corruption = blocks(a.blocks)
  c.corruption_fixed_per_image = True
  c.loss = {"mse": 1.0}
  c.optimizer.name = "adam"
  c.optimizer.learning_rate = 1e-3
  c.optimizer.eps = 1e-7
  c.optimizer.schedule = "constant"
  c.optimizer.warmup_steps = 0
  c.eval.ssim_convention = "study"
  c.eval.sweep = {f"blocks{a.blocks}": blocks(a.blocks)}
  if a.beat:
    _beat(c, a.beat, a.width, a.steps)
    if a.mask:
      _mask(c)
    if a.train_blocks:
      if a.train_blocks not in LEVELS:
        raise ValueError(f"cifar_study: train_blocks={a.train_blocks!r}; allowed: "
                         f"{list(LEVELS)} (0: the eval level)")
      c.corruption = blocks(a.train_blocks)
  else:
    for name in ("steps", "mask", "train_blocks"):
      if a[name]:
        raise ValueError(f"cifar_study: {name}= is for beat=DEPTH (the study's own run is "
                         "its 3-layer net, 25,000 steps, its corruption)")
  if a.quick:
    # The same model, data and protocol, shorter: 300 steps (a quarter of an epoch), and
    # 1,000 validation images per eval.
    c.total_steps = 300
    c.log_every_steps = 25
    c.eval_every_steps = 150
    c.checkpoint_every_steps = 150
    c.data.eval_max_images = 1_000
  return c


def _beat(c, depth, width, steps: int) -> None:
  if not isinstance(depth, int) or isinstance(depth, bool) or depth < 2:
    raise ValueError(f"cifar_study: beat={depth!r}; allowed: a DnCNN depth >= 2 (0: off)")
  if not isinstance(width, int) or isinstance(width, bool) or width < 1:
    raise ValueError(f"cifar_study: width={width!r}; allowed: a positive integer")
  if not steps:
    if (depth, width) not in BEAT_STEPS:
      raise ValueError(f"cifar_study: beat={depth},width={width} has no measured CPU budget; "
                       f"measured (depth, width): {sorted(BEAT_STEPS)}; or give steps=N")
    steps = BEAT_STEPS[depth, width] - PRECISE_BN_STEPS
  c.model.name = "dncnn"
  c.model.kwargs = {"depth": depth, "features": width, "weight_init": "orthogonal",
                    "init_gain": 0.2, "bn_momentum": 0.1, "bn_epsilon": 1e-4}
  c.corruption_fixed_per_image = False
  c.total_steps = int(steps)
  c.optimizer.schedule = "cosine"
  c.optimizer.warmup_steps = 200
  c.optimizer.end_factor = 0.01
  c.eval_every_steps = c.checkpoint_every_steps = max(c.total_steps // 10, 1)
  c.precise_bn_batches = PRECISE_BN_BATCHES


def _mask(c) -> None:
  """The inpainting form of the recipe: the net also sees the hole mask, found in the input
  itself (pixels 0 in every channel: nothing the study's model could not see), predicts
  pixels (not residual) and the known pixels pass through exactly (task 'inpaint')."""
  c.task = "inpaint"
  c.inpaint.mask = "zeros"
  c.model.kwargs = dict(c.model.kwargs, residual=False, out_channels=3)
