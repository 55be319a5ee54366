"""Default configuration: every field the codebase reads, documented in one place.

Other configs start from `get_config()` here and override what they need. Every field can be
overridden on the command line, e.g.
`python launch.py --config=configs/dncnn.py --config.data.train=folder:../shared/data/denoise/train/Train400`.

Data specs (`data.train`, `data.eval`):
  builtin            natural photos shipped inside scikit-image (offline; fixed train/eval split)
  builtin:color      only the colour ones (e.g. colourisation: gray photos would be exact)
  folder:PATH        every PNG/JPEG/BMP/TIFF under PATH, recursively
  npz:GLOB           uint8 NHWC arrays under key `image` in the files matching GLOB, in sorted
                     file order; glob character classes select shards, e.g. CIFAR-10's first
                     40,000 training images (Keras' validation_split=0.2 train part) are
                     `npz:../shared/data/cifar10/train_[0-3].npz`, its last 10,000 `train_4.npz`
  tfds:NAME[:SPLIT]  a prepared tensorflow-datasets dataset (random access, no TensorFlow)
  pairs:IN,TARGET    (input, target) image pairs of two folders matched by file stem
                     (config.task='paired'; eval of any task also accepts them: with
                     eval.sweep={} and corruption=[] the inputs are scored as they are)
  dataset:NAME       a registry set (bsd68, set12, cbsd68, train400, cbsd432, kodak24, ...):
                     its verified local copy (`python -m restoration.datasets list | fetch`)
"""

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the default config; it takes no arguments (ValueError for any, e.g. `:quick`)."""
  if arg:
    raise ValueError(f"configs/default.py takes no arguments, got {arg!r}; quick variants: "
                     "configs/dncnn.py:quick, configs/unet1024.py:quick, ... (--mode=configs)")
  c = ml_collections.ConfigDict()

  # --- Run length and cadence (all in optimizer steps) -------------------------------------
  c.seed = 0                          # root of every RNG: init, data order, corruption, dropout
  c.total_steps = 10_000              # training stops here; raising it later resumes the run
  c.batch_size = 16                   # GLOBAL batch, split evenly over all devices of all hosts
  c.patch_size = 64                   # training crop size (square, pixels)
  c.log_every_steps = 50              # train metrics -> metrics.jsonl / TensorBoard / console
  c.eval_every_steps = 1_000          # eval on data.eval (also done at the last step)
  c.checkpoint_every_steps = 1_000    # latest checkpoint cadence (also saved at the last step)
  c.checkpoint_every_minutes = 5.0    # also a checkpoint every N minutes of wall time, so an
                                      # interrupted long run keeps its work (0: steps only)
  c.keep_checkpoints = 2              # how many 'latest' checkpoints Orbax keeps (best kept too)
  c.ema_decay = 0.0                   # >0 keeps an exponential moving average of params for eval
  c.precise_bn_batches = 0            # >0: at the last step, BatchNorm statistics re-estimated
                                      # over this many more training batches (PreciseBN, weights
                                      # fixed) for the final eval and inference variables; the
                                      # training state keeps its running averages (exact resume).
                                      # dncnn/ffdnet/unet+batch_norm, supervised-family tasks
  c.init_from = ""                    # a workdir (trained or --mode=import): start from its best
                                      # model variables, with its model name/kwargs/channels
                                      # (warned if they differ) and a fresh optimizer
  c.resume_optimizer = "exact"        # resuming with an optimizer change that alters its state
                                      # (e.g. grad_clip_norm 0 -> 1): 'exact' refuses, naming
                                      # the field; 'reinit_changed' keeps step, params, EMA and
                                      # the optimizer stages that still fit, re-inits the rest

  # --- Task (restoration.tasks registry) ------------------------------------------------------
  c.task = "supervised"               # supervised: corrupt clean crops, regress them back
                                      # adversarial: pix2pix, restorer vs conditional
                                      # discriminator (config.adversarial)
                                      # paired: data.train=pairs:IN,TARGET, corruption on IN
                                      # mask: predict the corruption's damage mask (loss:
                                      #   bce / dice; model out_channels=1, residual=False)
                                      # inpaint: image + mask channel -> filled image
                                      # inpaint_adversarial: inpaint's network and loss as
                                      #   pix2pix's G; D (config.adversarial) judges the
                                      #   filled image, conditioned on image + mask
                                      # autoregressive: a PixelCNN (model.name='pixelcnn')
                                      # learns p(clean | corrupted) by exact NLL (config.loss
                                      # unused); configs/pixelcnn.py
                                      # ffdnet: noisy image + its noise-level map -> FFDNet
                                      #   (model.name='ffdnet'); the map is that of the
                                      #   corruption's one gaussian_noise(_map) step;
                                      #   configs/ffdnet.py
  c.inpaint = ml_collections.ConfigDict()
  c.inpaint.valid_weight = 0.1        # inpaint(_adversarial): loss weight on the known
                                      # pixels (holes: 1)
  c.inpaint.mask = "corruption"       # the hole mask the model sees: 'corruption' (the
                                      # chain's masking steps' mask) | 'zeros' (pixels that are
                                      # 0 in every channel of the corrupted input: all a model
                                      # without side information could know)

  # --- Chained restore (--mode=restore / eval; restoration.modes.chained, chained_eval) ---------
  # Workdirs of three trained runs; with `mask` set, restore runs mask -> colorize -> inpaint
  # on the user's (gray, damaged) photos instead of the --workdir model, and eval measures
  # each stage and the chain on damaged gray versions of data.eval. See configs/pipeline.py.
  c.pipeline = ml_collections.ConfigDict()
  c.pipeline.mask = ""                # a task='mask' run ('' = no chained restore)
  c.pipeline.colorize = ""            # a gray -> RGB restorer (configs/colorize.py)
  c.pipeline.inpaint = ""             # a task='inpaint' run on RGB
  c.pipeline.threshold = 0.5          # damaged where the mask probability exceeds this
  c.pipeline.save_masks = False       # also write <name>_mask.png
  c.pipeline.single = ""              # eval only: a one-model baseline on the same damaged
                                      # gray inputs (configs/damaged_gray.py; '' = none)

  # Autoregressive task: how its eval / restore decode (restoration.tasks.autoregressive).
  c.autoregressive = ml_collections.ConfigDict()
  c.autoregressive.decode = "mean"    # deterministic decode = predict / eval psnr: 'mean' (each
                                      # sub-pixel its rounded conditional expectation, greedy in
                                      # raster order) | 'mode' (its most probable value)
  c.autoregressive.temperature = 1.0  # eval's sampled decode (psnr_sample): softmax temperature
  c.autoregressive.sample_seed = 0    # eval's sampled decode: fixed key jax.random.key(seed),
                                      # the same for every image

  # --- Model (restoration.models registry) --------------------------------------------------
  c.model = ml_collections.ConfigDict()
  c.model.name = "unet"               # cnn | dncnn | unet | unet512 | unet1024 | cvt | vgg_unet
                                      # (patchgan is a discriminator: not trainable alone;
                                      # pixelcnn only with task='autoregressive')
  c.model.dtype = "float32"           # computation dtype: float32 | bfloat16 | float16; params
                                      # stay float32 (use bfloat16 on GPU/TPU for speed)
  # Constructor overrides, e.g. features, depth. The command line can only override keys a
  # config sets (configs are locked against typos); add new keys in a config file.
  c.model.kwargs = ml_collections.ConfigDict()
  # vgg_unet only (ValueError for other models): training-time switches, not in checkpoints.
  c.model.freeze_encoder = False      # True: the VGG encoder gets zero updates
                                      # (optax.multi_transform + set_to_zero); decoder trains
  c.model.encoder_weights = ""        # VGG19 weights file (.h5/.npz, as perceptual.weights_path)
                                      # loaded into the encoder at step 0; '' = random init

  # --- Task: corruption chain and loss --------------------------------------------------------
  # A list of {'name': ..., **params} dicts for restoration.corruptions.chain, applied in order
  # on the device inside the train step, freshly drawn every step (unless
  # corruption_fixed_per_image). gaussian_noise_map is gaussian_noise with a noise-level map
  # (spatial=True: a smooth random sigma field; map_sigma=N: the map claims sigma N instead of
  # the truth, for eval levels of task ffdnet).
  c.corruption = [{"name": "gaussian_noise", "sigma": 25.0}]
  # True: each training IMAGE keeps one corruption for the whole run, drawn with the key
  # fold_in(fold_in(fold_in(key(seed), FIXED_CORRUPT_ROOT), 1), source index)
  # (restoration/tasks/supervised.py) instead of one keyed by (step, position in the batch):
  # the CIFAR study's "corrupt the data set once before training". The batch then carries
  # each crop's source index. It is the same corrupted image only with augment=False and
  # patch_size = the image size (32 for CIFAR); otherwise the same draw lands on different
  # crops. Tasks supervised and inpaint, not data.on_device.
  c.corruption_fixed_per_image = False
  # Loss: name -> weight; the total is the weighted sum. Names: mse, l1, charbonnier, ssim
  # (ssim means 1 - SSIM), perceptual (the VGG loss of config.perceptual; training only: the
  # eval tables' `loss` column is the other terms' sum, as eval loads no VGG).
  c.loss = ml_collections.ConfigDict({"mse": 1.0})
  # Perceptual loss on VGG19 features (restoration.losses.perceptual), also the source of the
  # vgg_unet encoder's pretrained weights. Nothing is downloaded: point weights_path at
  # Keras' vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 or an .npz converted from it
  # (`python -m restoration.weights.vgg in.h5 out.npz`).
  c.perceptual = ml_collections.ConfigDict()
  c.perceptual.weights_path = ""      # '' = not configured (building the loss then raises)
  c.perceptual.layers = ("relu1_2", "relu2_2", "relu3_4", "relu4_4", "relu5_4")
                                      # any convK_J (pre-ReLU) / reluK_J / poolK, K = 1..5
  c.perceptual.layer_weights = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)  # one per layer
                                      # (pix2pixHD's: the deeper, more semantic, count more)
  c.perceptual.distance = "l1"        # l1 | l2: mean |a - b| or (a - b)^2 of the features
  c.perceptual.widths = (64, 128, 256, 512, 512)  # VGG19 block widths of the weights file
                                      # (the real VGG19's; only tests' random files are narrower)

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
  c.optimizer.b1 = 0.9                # adam/adamw: first-moment decay (GANs use 0.5)
  c.optimizer.eps = 1e-8              # adam/adamw: epsilon, optax's form m^ / (sqrt(v^) + eps)
                                      # (Keras adds its 1e-7 to sqrt(v) before the bias
                                      # correction, i.e. optax eps = 1e-7 / sqrt(1 - b2^t):
                                      # 3e-6 at step 1, ~1e-7 after a few thousand steps)

  # --- Adversarial tasks (config.task = 'adversarial' | 'inpaint_adversarial': pix2pix,
  # restoration.tasks.adversarial) --------------------------------------------------------------
  # The restorer (config.model) is the generator G; D sees (corrupted, candidate). Per step:
  # d_steps updates of D, then one of G minimising g_adv + l1_weight * (config.loss's sum).
  c.adversarial = ml_collections.ConfigDict()
  c.adversarial.loss = "vanilla"      # vanilla (non-saturating BCE) | lsgan | hinge
  c.adversarial.l1_weight = 100.0     # pix2pix's lambda: weight of config.loss (e.g. {'l1': 1})
                                      # against the adversarial term (weight 1)
  c.adversarial.d_steps = 1           # discriminator updates per generator update, each on a
                                      # fresh corruption draw of the step's clean crops
  c.adversarial.r1_gamma = 0.0        # >0 adds the R1 penalty gamma/2 E||grad D(real)||^2
  c.adversarial.discriminator = ml_collections.ConfigDict()
  c.adversarial.discriminator.name = "patchgan"  # a conditional discriminator of the registry
  c.adversarial.discriminator.kwargs = ml_collections.ConfigDict()  # e.g. n_layers, features
  # D's optimizer: the same fields as config.optimizer (own learning rate and schedule).
  c.adversarial.d_optimizer = ml_collections.ConfigDict(c.optimizer.to_dict())

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
  c.eval.memory_budget_mb = 4096.0    # device memory one eval model call may plan for (XLA's
                                      # estimate); larger images are tiled automatically with
                                      # the largest tile that fits (eval, training evals)
  c.eval.num_grid_images = 4          # images in the clean|corrupted|restored grid PNGs
  c.eval.ssim_convention = "standard"  # standard: Wang et al. / BasicSR (11x11 Gaussian,
                                      # sigma 1.5, range 1; restoration.eval.metrics) | study: the
                                      # CIFAR block study's old-skimage call (7x7 box, ddof=1,
                                      # data_range 2; restoration.eval.study_ssim); the convention
                                      # name gains '_ssimstudy'. PSNR is the same in both
  return c
