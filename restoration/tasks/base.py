"""What every task shares: building the restorer, its data, and its inference contract.

A task is built once from the config (`restoration.tasks.build`) and raises ValueError naming
the field and its allowed values while it builds; nothing is compiled before the first step.
It owns what a run needs:

  state           `init_state()` / `abstract_state()`: a pytree with an integer `step`; all that
                  changes during training (params, optimizer states, EMA, ...), checkpointed
                  whole; `initial_state()` is a fresh run's (init + pretrained weights)
  train step      `train_step(state, batch, consts) -> (state, metrics)`: per device (the loop
                  wraps it with `parallel.parallelize`); pure; every random draw derived from
                  (config.seed, state.step) with fold_in; metrics are pmean'd scalars
  consts          `consts()`: host arrays placed on the devices once (device-resident data,
                  frozen networks: `frozen_consts()`), passed to every step; None when none
  data            `train_data(...)`: the host iterator of batches (None when consts hold them)
  example         `example(step_key, device_key, batch, consts) -> (model input, target)`
                  of this device's batch, and `task_loss(output, target, model_input)`; shapes
                  traced once (`example_shapes`) for init and checks
  inference       `inference` (an `Inference`): `prepare(corrupt, seed, images, index)`,
                  `predict(variables, model_input)`, `measure(output, model_input, target,
                  variables=...)` (variables for metrics that need the model, e.g. a
                  likelihood) and
                  `show(...)` (grid panels), which the Evaluator runs on the eval set; eval and
                  restore modes rebuild it from a checkpoint's `model_meta()` alone
  variables       `inference_variables(state)`: what best/ keeps and eval/restore load
  meta            `model_meta()`: what a reader needs to rebuild the inference model
                  ({'task', 'model', 'channels'}), stored with every checkpoint
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from restoration import corruptions
from restoration import data
from restoration.eval import evaluator
from restoration import losses
from restoration import models
from restoration.runtime import parallel
from restoration.runtime import precise_bn
from restoration.runtime import run_log
from restoration.data import pairs

DISCRIMINATORS = frozenset({"patchgan"})  # take (corrupted, candidate): not a restorer
AUTOREGRESSIVE = frozenset({"pixelcnn"})  # (clean, corrupted) -> logits: not a restorer
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}
MAX_SEED = 2**32 - 1  # a range every RNG here takes (jax keys, numpy, the data hash); 10**20
                     # overflowed inside JAX
_INIT_STREAM = 0x1A17  # parameter init: a key of its own, never a step's
# Tasks whose training example honours config.corruption_fixed_per_image (SupervisedTask.example).
FIXED_PER_IMAGE_TASKS = ("supervised", "inpaint")


def build_restorer(model_config: ml_collections.ConfigDict | dict) -> nn.Module:
  """The config's restorer (`config.model`); raises ValueError naming `config.model.*`."""
  name, dtype = model_config["name"], model_config["dtype"]
  if dtype not in DTYPES:
    raise ValueError(f"config.model.dtype={dtype!r}; allowed: {sorted(DTYPES)}")
  if name in DISCRIMINATORS | AUTOREGRESSIVE:
    raise ValueError(f"config.model.name={name!r} is a discriminator or autoregressive model, "
                     "not a restorer; choose one of "
                     f"{sorted(set(models.MODELS) - DISCRIMINATORS - AUTOREGRESSIVE)}")
  kwargs = dict(model_config["kwargs"])
  try:
    fields = models.model_fields(name)
  except ValueError as e:
    raise ValueError(f"config.model.name: {e}") from e
  if "bn_axis_name" in fields:
    # Sync BN over the trainer's device axis: batch statistics of the global batch.
    kwargs.setdefault("bn_axis_name", parallel.AXIS)
  try:
    return models.get_model(name, dtype=DTYPES[dtype], **kwargs)
  except (TypeError, ValueError) as e:
    raise ValueError(f"config.model (name={name!r}, kwargs={kwargs}): {e}") from e


def check_int(config: ml_collections.ConfigDict, name: str, minimum: int = 1,
              maximum: int | None = None) -> int:
  value = config[name]
  if (not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum
      or (maximum is not None and value > maximum)):
    allowed = f"in [{minimum}, {maximum}]" if maximum is not None else f">= {minimum}"
    raise ValueError(f"config.{name} must be an integer {allowed}, got {value!r}")
  return int(value)


class Inference:
  """A task's inference side: rebuilt from a checkpoint's meta and an eval config.

  `meta` ({'task', 'channels', 'model': {'name', 'kwargs', 'dtype'}}) fixes the architecture;
  `config` gives the compute dtype (`model.dtype`: a float32 run may be evaluated in
  bfloat16), the eval options and the loss reported in eval tables.

  Eval images are either clean images (corrupted here) or stacked `pairs:` items (the input
  half corrupted by the eval chain, which may be empty; the target half measured against).
  `selection_metric` names the per-image metric whose mean picks the best checkpoint.
  """

  selection_metric = "psnr"
  needs_mask = False  # the model also takes a damage-mask channel (restore needs a mask)

  def __init__(self, meta: dict[str, Any], config: ml_collections.ConfigDict, *,
               options: evaluator.EvalOptions | None = None, num_devices: int | None = None):
    self.meta = meta
    self.channels = int(meta["channels"])
    model = dict(meta["model"], dtype=config.model.dtype)
    self.model = self.build_model(model)
    self.multiple = models.spatial_multiple(model["name"], model["kwargs"])
    self.options = options or evaluator.EvalOptions.from_config(config, num_devices)
    self.loss_fn = self.make_loss(config)

  def make_loss(self, config: ml_collections.ConfigDict):
    """`loss(output, target)` of the eval table (and of training for most tasks)."""
    return losses.make_loss(dict(config.loss))

  def prepare(self, corrupt, seed: int, images: jax.Array, index: jax.Array
              ) -> tuple[jax.Array, jax.Array]:
    """uint8 eval images -> (model input, target); image i's corruption keyed by index[i]."""
    x = images.astype(jnp.float32) / 255.0
    inp, target = (pairs.split_pair(x, self.channels) if x.shape[-1] == 2 * self.channels
                   else (x, x))
    return evaluator.corrupt_eval_images(corrupt, seed, inp, index), target

  def show(self, model_input: jax.Array, output: jax.Array, target: jax.Array
           ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(input, output, target) panels of the eval grid, float, one channel count."""
    return model_input, output, target

  def to_image(self, output: jax.Array) -> jax.Array:
    """A prediction as the image restore mode writes (before clipping to [0, 1])."""
    return output

  def build_model(self, model_config: dict[str, Any]) -> nn.Module:
    """The inference model of `meta['model']` (a restorer here; tasks override)."""
    return build_restorer(model_config)

  def predict(self, variables: Any, corrupted: jax.Array) -> jax.Array:
    """The restored images (float, unclipped) for inference variables."""
    return self.model.apply(variables, corrupted, train=False)

  def measure(self, output: jax.Array, corrupted: jax.Array, clean: jax.Array, *,
              variables: Any = None) -> dict[str, jax.Array]:
    """Per-image metrics of a prediction (the eval table's columns; psnr and input_psnr
    always, for grids and logs). `variables` (the ones `output` was predicted with) serve
    metrics that need the model; restorers ignore them."""
    del variables
    return evaluator.restoration_metrics(output, corrupted, clean, loss_fn=self.loss_fn,
                                         options=self.options.metric_options,
                                         ssim_convention=self.options.ssim_convention)


class Task:
  """Base of every task: the restorer, the corruption, the data and the eval contract."""

  name = "base"
  # Metrics whose non-finite value stops training (naming the step).
  finite_metrics: tuple[str, ...] = ("loss", "grad_norm")
  inference_class = Inference
  paired = False  # trains on `pairs:` data (and only on it)
  same_shape_input = True  # the model input has the target's shape (restorers)
  # Re-estimates BatchNorm statistics at the end of training (config.precise_bn_batches,
  # restoration.runtime.precise_bn): tasks with `training_input` set this.
  supports_precise_bn = False
  # What to tell a user whose model's output does not match the target (check_shapes).
  output_hint = ("set model.kwargs.out_channels to data.channels (colourisation: "
                 "data.channels=3 with a grayscale corruption that keeps 3 channels)")

  def __init__(self, config: ml_collections.ConfigDict, *, local_device_count: int,
               process_count: int):
    self.config = config
    self.local_device_count = int(local_device_count)
    self.process_count = int(process_count)
    self.num_devices = self.local_device_count * self.process_count
    for name in ("batch_size", "patch_size"):
      check_int(config, name)
    check_int(config, "seed", minimum=0, maximum=MAX_SEED)
    if not 0.0 <= config.ema_decay < 1.0:
      raise ValueError(f"config.ema_decay must be in [0, 1), got {config.ema_decay}")
    self.fixed_per_image = check_fixed_per_image(config, self.name)
    if not self.supports_precise_bn:  # supporting tasks check it once their model is built
      precise_bn.check(config, self.name, config.model.name, {}, supported=False)
    self.precise_bn_batches = 0
    self.inference = self.inference_class(self.model_meta(), config,
                                          num_devices=self.num_devices)
    self.model = self.inference.model
    self.corrupt = corruptions.chain(list(config.corruption),
                                     image_shape=(config.patch_size,) * 2)
    self.sources = data.open_sources(config, process_count=self.process_count,
                                     local_device_count=self.local_device_count)
    is_pairs = isinstance(self.sources.train, pairs.PairedSource)
    if is_pairs != self.paired:
      raise ValueError(
          f"config.data.train={config.data.train!r} with config.task={self.name!r}: "
          + ("pairs:INPUT_DIR,TARGET_DIR data needs config.task='paired'" if is_pairs else
             f"task {self.name!r} trains on pairs: set data.train=pairs:INPUT_DIR,TARGET_DIR"))
    self._shapes = None

  # ------------------------------------------------------------------------------- shapes

  def example_shapes(self) -> tuple[jax.ShapeDtypeStruct, jax.ShapeDtypeStruct]:
    """(model input, target) of a one-example device batch, traced once (no compute)."""
    if self._shapes is None:
      c = self.config
      batch = jax.ShapeDtypeStruct(
          (1, 1, c.patch_size, c.patch_size, self.sources.train.channels), jnp.uint8)
      if self.fixed_per_image:  # TrainData(with_index=True)'s batches
        batch = {"image": batch, "index": jax.ShapeDtypeStruct((1, 1), jnp.int32)}
      key = jax.random.key(0)
      consts = None
      if c.data.on_device:  # crops are drawn from device-resident images inside the step
        side = c.patch_size
        consts = {"images": jax.ShapeDtypeStruct(
            (1, side, side, self.sources.train.channels), jnp.uint8),
                  "sizes": jax.ShapeDtypeStruct((1, 2), jnp.int32)}
      fn = jax.vmap(lambda b, k: self.example(key, key, b, k), in_axes=(0, None),
                    axis_name=parallel.AXIS)
      self._shapes = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype),
                                  jax.eval_shape(fn, batch, consts))
    return self._shapes

  def input_shape(self, batch: int = 1) -> tuple[int, ...]:
    """The model's input shape for `batch` training examples."""
    return (batch,) + self.example_shapes()[0].shape[1:]

  def output_shape(self, batch: int = 1) -> tuple[int, ...]:
    """The model's output (= target) shape for `batch` training examples."""
    return (batch,) + self.example_shapes()[1].shape[1:]

  def init_key(self) -> jax.Array:
    return jax.random.fold_in(jax.random.key(self.config.seed), _INIT_STREAM)

  def abstract_state(self) -> Any:
    """Shapes and dtypes of the state, without computing anything (for restoring)."""
    return jax.eval_shape(self.init_state)

  def init_state(self) -> Any:
    raise NotImplementedError

  def initial_state(self) -> Any:
    """The state a fresh run starts from (the loop calls this once): `init_state` compiled;
    tasks override it to add host-side work such as loading pretrained weights."""
    return jax.jit(self.init_state)()

  def example(self, step_key: jax.Array, device_key: jax.Array, batch: Any, consts: Any
              ) -> tuple[jax.Array, jax.Array]:
    """This device's (model input, target) of a training step (inside the pmapped step)."""
    raise NotImplementedError

  def check_shapes(self) -> None:
    """Traces (no compute) example -> model on one training batch; checks the shapes."""
    c = self.config
    inp = jax.ShapeDtypeStruct(self.input_shape(), jnp.float32)
    side = (1, c.patch_size, c.patch_size)
    if inp.shape[:3] != side or (self.same_shape_input and inp.shape != self.output_shape()):
      raise ValueError(f"config.corruption changes the image shape {self.output_shape()} -> "
                       f"{inp.shape}; restorers need same-shape input (e.g. grayscale with "
                       "keep_channels=True)")
    out, _ = jax.eval_shape(
        lambda x: self.model.init_with_output(jax.random.key(0), x, train=False), inp)
    if out.shape != self.output_shape():
      raise ValueError(
          f"config.model ({c.model.name}, kwargs={dict(c.model.kwargs)}) outputs "
          f"{out.shape[-1]} channels but task {self.name!r} targets have "
          f"{self.output_shape()[-1]} (data.channels={c.data.channels}): the loss compares "
          f"them; {self.output_hint}")

  # --------------------------------------------------------------------------------- data

  def consts(self) -> dict[str, Any] | None:
    """Device-resident training images (data.on_device) merged with `frozen_consts()`;
    None when there are neither."""
    out = dict(self.frozen_consts())
    if self.config.data.on_device:
      dev = data.load_device_data(self.config, self.sources.train)
      out.update(images=dev.images, sizes=dev.sizes)
    return out or None

  def frozen_consts(self) -> dict[str, Any]:
    """Frozen networks' variables the step reads (e.g. the perceptual loss's VGG)."""
    return {}

  def train_data(self, *, process_index: int) -> data.TrainData | None:
    if self.config.data.on_device:
      return None
    return data.make_train_data(self.config, self.sources.train, process_index=process_index,
                                process_count=self.process_count,
                                local_device_count=self.local_device_count)

  def clean_batch(self, key: jax.Array, batch: Any, consts: Any) -> jax.Array:
    """This device's clean float [B, P, P, C] batch: the host batch, or crops drawn on device."""
    if not self.config.data.on_device:
      images = batch["image"] if isinstance(batch, dict) else batch
    else:
      c = self.config
      images = data.sample_patches(key, consts["images"], consts["sizes"],
                                   batch_size=c.batch_size // self.num_devices,
                                   patch_size=c.patch_size, augment=c.data.augment)
    return images.astype(jnp.float32) / 255.0

  # ---------------------------------------------------------------------------- inference

  def model_meta(self) -> dict[str, Any]:
    c = self.config
    return {"task": self.name, "channels": int(c.data.channels),
            "model": {"name": c.model.name, "kwargs": run_log.plain(c.model.kwargs),
                      "dtype": c.model.dtype}}

  def inference_variables(self, state: Any) -> dict[str, Any]:
    raise NotImplementedError

  def start_from(self, state: Any, variables: dict[str, Any], source: str) -> Any:
    """`state` with its model variables replaced by `variables` (config.init_from)."""
    raise NotImplementedError(f"task {self.name!r} cannot start from another run's variables")


def check_fixed_per_image(config: ml_collections.ConfigDict, task: str) -> bool:
  """config.corruption_fixed_per_image, checked: a bool; True only for the tasks whose
  example reads the batch's source indices, and not with data.on_device (whose crops are
  drawn on the device, with no image index)."""
  value = config.get("corruption_fixed_per_image", False)
  if not isinstance(value, (bool, np.bool_)):
    raise ValueError(f"config.corruption_fixed_per_image must be True or False, got {value!r}")
  if value and task not in FIXED_PER_IMAGE_TASKS:
    raise ValueError(f"config.corruption_fixed_per_image=True works with config.task in "
                     f"{list(FIXED_PER_IMAGE_TASKS)}, got {task!r}")
  if value and config.data.on_device:
    raise ValueError("config.corruption_fixed_per_image=True needs data.on_device=False (the "
                     "device-resident sampler's crops carry no image index)")
  return bool(value)


def check_same_shapes(ours: Any, theirs: Any, source: str, what: str) -> None:
  """Raises ValueError naming `source` when two variable trees differ in structure or shape."""
  shapes = lambda tree: jax.tree.map(lambda x: tuple(np.shape(x)), tree)
  if jax.tree.structure(ours) != jax.tree.structure(theirs) or shapes(ours) != shapes(theirs):
    raise ValueError(f"config.init_from={source!r}: its {what} do not fit config.model "
                     f"({jax.tree.leaves(shapes(theirs))[:3]}... vs "
                     f"{jax.tree.leaves(shapes(ours))[:3]}...); use the same model.name/kwargs "
                     "and data.channels as that run")


