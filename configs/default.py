"""Default configuration: every field the codebase reads, documented in one place.

Other configs start from `get_config()` here and override what they need. Every field can be
overridden on the command line, e.g.
`python launch.py --config=configs/dncnn.py --config.data.train=folder:../shared/data/denoise/train/Train400`.

Data specs (`data.train`, `data.eval`):
  builtin            natural photos shipped inside scikit-image (offline; fixed train/eval split)
  builtin:color      only the colour ones (e.g. colourisation: gray photos would be exact)
  folder:PATH        every PNG/JPEG/BMP/TIFF under PATH, recursively
  npz:GLOB           uint8 NHWC arrays under key `image` in the files matching GLOB
  tfds:NAME[:SPLIT]  a prepared tensorflow-datasets dataset (random access, no TensorFlow)
"""

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the default config. `arg` is unused here (kept for a uniform signature)."""
  del arg
  c = ml_collections.ConfigDict()

  # --- Run length and cadence (all in optimizer steps) -------------------------------------
  c.seed = 0                          # root of every RNG: init, data order, corruption, dropout
  c.total_steps = 10_000              # training stops here; raising it later resumes the run
  c.batch_size = 16                   # GLOBAL batch, split evenly over all devices of all hosts
  c.patch_size = 64                   # training crop size (square, pixels)
  c.log_every_steps = 50              # train metrics -> metrics.jsonl / TensorBoard / console
  c.eval_every_steps = 1_000          # eval on data.eval (also done at the last step)
  c.checkpoint_every_steps = 1_000    # latest checkpoint cadence (also saved at the last step)
  c.keep_checkpoints = 2              # how many 'latest' checkpoints Orbax keeps (best kept too)
  c.ema_decay = 0.0                   # >0 keeps an exponential moving average of params for eval

  # --- Model (restoration.models registry) --------------------------------------------------
  c.model = ml_collections.ConfigDict()
  c.model.name = "unet"               # cnn | dncnn | unet | unet512 | unet1024 | cvt
                                      # (patchgan is a discriminator: not trainable alone)
  c.model.dtype = "float32"           # computation dtype: float32 | bfloat16 | float16; params
                                      # stay float32 (use bfloat16 on GPU/TPU for speed)
  # Constructor overrides, e.g. features, depth. The command line can only override keys a
  # config sets (configs are locked against typos); add new keys in a config file.
  c.model.kwargs = ml_collections.ConfigDict()

  # --- Task: corruption chain and loss --------------------------------------------------------
  # A list of {'name': ..., **params} dicts for restoration.corruptions.chain, applied in order
  # on the device inside the train step, freshly drawn every step.
  c.corruption = [{"name": "gaussian_noise", "sigma": 25.0}]
  # Loss: name -> weight; the total is the weighted sum. Names: mse, l1, charbonnier, ssim
  # (ssim means 1 - SSIM).
  c.loss = ml_collections.ConfigDict({"mse": 1.0})

  # --- Optimizer (optax) ------------------------------------------------------------------------
  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.name = "adam"           # adam | adamw | sgd
  c.optimizer.learning_rate = 1e-3    # peak learning rate
  c.optimizer.schedule = "constant"   # constant | cosine | step | plateau (after any warmup)
  c.optimizer.warmup_steps = 0        # linear warmup from 0, for every schedule
  c.optimizer.end_factor = 0.01       # cosine: final lr = learning_rate * end_factor
  c.optimizer.decay_steps = (0.5, 0.75)  # step: boundaries as fractions of total_steps
  c.optimizer.decay_factor = 0.1      # step: lr multiplier at each boundary; plateau: on plateau
  c.optimizer.plateau_patience = 10   # plateau: windows of log_every_steps steps whose mean
                                      # training loss did not improve before the lr decays
  c.optimizer.weight_decay = 0.0      # adamw: decoupled weight decay
  c.optimizer.momentum = 0.9          # sgd: Nesterov-free heavy-ball momentum
  c.optimizer.grad_clip_norm = 0.0    # >0 clips the global gradient norm

  # --- Data ---------------------------------------------------------------------------------------
  c.data = ml_collections.ConfigDict()
  c.data.train = "builtin"            # spec, see module docstring
  c.data.eval = "builtin"             # spec; `builtin` uses its held-out eval split
  c.data.channels = 3                 # 1 (gray) or 3 (RGB); sources are converted to this
  c.data.augment = True               # random flips and 90-degree rotations of training crops
  c.data.pad_small = False            # images smaller than patch_size: error (False) or reflect-pad
  c.data.on_device = False            # upload the train set once; crop/augment inside the step
  c.data.num_workers = 0              # grain worker processes (0: in the main process)
  c.data.prefetch = 2                 # batches prefetched per grain worker, and onto the devices
  c.data.eval_crop = 0                # >0: evaluate on centre crops of this size (one shape)
  c.data.eval_batch_size = 8          # GLOBAL eval batch; last partial batch is padded + masked
  c.data.eval_max_images = 0          # >0: only the first N eval images (quick runs)
  c.data.tfds_data_dir = ""           # tfds: where prepared datasets live ('' = tfds default)

  # --- Evaluation (launch.py --mode=eval, and eval during training) ------------------------------
  c.eval = ml_collections.ConfigDict()
  # Extra corruption levels evaluated by --mode=eval: name -> chain specs. Empty: only the
  # training corruption, named 'train'. Eval corruption is seeded by eval.seed, so every
  # model sees the same corrupted images.
  c.eval.sweep = ml_collections.ConfigDict()
  c.eval.seed = 1234
  c.eval.y_channel = False            # PSNR/SSIM on Y of YCbCr (BT.601, MATLAB rgb2ycbcr)
  c.eval.crop_border = 0              # pixels cropped from each border before the metric
  c.eval.quantize = False             # round outputs to uint8 levels before the metric
  c.eval.tile = 0                     # >0: tiled inference with tiles of this size (--mode=eval
                                      # and restore; eval during training runs whole images)
  c.eval.tile_overlap = 32            # overlap between tiles (blended)
  c.eval.self_ensemble = False        # average over the 8 flips/rotations
  c.eval.num_grid_images = 4          # images in the clean|corrupted|restored grid PNGs
  return c
