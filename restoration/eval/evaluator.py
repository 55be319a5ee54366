"""Evaluation: the pmapped eval step and the Evaluator used during training and by --mode=eval.

Every eval image is corrupted with a key derived from (config.eval.seed, image index), so all
models, runs and device counts see the same corrupted images. Metrics are computed per image
on outputs clipped to [0, 1] with the convention in config.eval (RGB or Y, border crop, uint8
quantisation), summed over valid images with `psum` (padding of the last partial batch is
masked out), and divided by the global count: exact means across devices and hosts.

`EvalOptions.from_config` reads and checks every eval-time field once (tasks build it), so a bad
value fails at start-up, not at the first eval's trace. What is predicted and measured comes
from the task (`task.predict`, `task.measure`): the Evaluator only runs the set.
"""

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import tqdm
from absl import logging
from jax import lax

from restoration import any_size
from restoration import corruptions
from restoration import data
from restoration.eval import metrics
from restoration.eval import study_ssim
from restoration.runtime import parallel

_BATCH_TILES = 8  # tiles per model call on the host (tiled) path


def _is_int(value: Any) -> bool:
  return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _check_int(value: Any, name: str, minimum: int) -> int:
  if not _is_int(value) or value < minimum:
    raise ValueError(f"config.{name} must be an integer >= {minimum}, got {value!r}")
  return int(value)


@dataclasses.dataclass(frozen=True)
class EvalOptions:
  """The eval-time fields of a config, checked (ValueError naming the field and the values)."""
  batch_size: int
  seed: int
  y_channel: bool
  crop_border: int
  quantize: bool
  tile: int
  tile_overlap: int
  self_ensemble: bool
  num_grid_images: int
  memory_budget_mb: float = 4096.0
  ssim_convention: str = "standard"  # or 'study' (restoration.eval.study_ssim)

  @property
  def metric_options(self) -> dict[str, Any]:
    return dict(y_channel=self.y_channel, crop_border=self.crop_border, quantize=self.quantize)

  @property
  def convention(self) -> str:
    name = metrics.convention_name(**self.metric_options)
    return name + (study_ssim.CONVENTION_SUFFIX if self.ssim_convention == "study" else "")

  @property
  def row_fields(self) -> dict[str, Any]:
    """What these options fix in an eval results row (part of `results.ROW_KEY`)."""
    return {"convention": self.convention, "self_ensemble": self.self_ensemble,
            "tile": self.tile, "tile_overlap": self.tile_overlap if self.tile > 0 else 0,
            "eval_seed": self.seed}

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict,
                  num_devices: int | None = None) -> "EvalOptions":
    """eval.crop_border, data.eval_crop, eval.tile, eval.tile_overlap, eval.num_grid_images,
    data.eval_max_images: integers >= 0; data.eval_crop, when > 0, at least the SSIM window (11)
    plus 2 * crop_border; eval.tile_overlap < eval.tile when tiling; data.eval_batch_size an
    integer >= 1 (divisible by `num_devices` when given); eval.seed an integer; eval.y_channel
    / quantize / self_ensemble booleans; eval.ssim_convention 'standard' or 'study'; every
    eval.sweep level a non-empty list of corruption
    specs (`corruptions.validate`)."""
    ev, d = config.eval, config.data
    crop_border = _check_int(ev.crop_border, "eval.crop_border", 0)
    eval_crop = _check_int(d.get("eval_crop", 0), "data.eval_crop", 0)
    window = metrics.SSIM_FILTER_SIZE
    if 0 < eval_crop < window + 2 * crop_border:
      raise ValueError(
          f"config.data.eval_crop={eval_crop} must be 0 (whole images) or >= "
          f"{window + 2 * crop_border} (the {window}x{window} SSIM window plus "
          f"2 * eval.crop_border={crop_border})")
    _check_int(d.get("eval_max_images", 0), "data.eval_max_images", 0)
    batch_size = _check_int(d.eval_batch_size, "data.eval_batch_size", 1)
    if num_devices and batch_size % num_devices:
      raise ValueError(f"config.data.eval_batch_size={batch_size} must be divisible by the "
                       f"{num_devices} devices")
    tile = _check_int(ev.tile, "eval.tile", 0)
    overlap = _check_int(ev.tile_overlap, "eval.tile_overlap", 0)
    if tile > 0 and overlap >= tile:
      raise ValueError(f"config.eval.tile_overlap={overlap} must be smaller than "
                       f"config.eval.tile={tile} (or set eval.tile=0: no tiling)")
    num_grid = _check_int(ev.num_grid_images, "eval.num_grid_images", 0)
    budget = ev.get("memory_budget_mb", 4096.0)
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not budget > 0:
      raise ValueError(f"config.eval.memory_budget_mb must be a number > 0, got {budget!r}")
    if not _is_int(ev.seed):
      raise ValueError(f"config.eval.seed must be an integer, got {ev.seed!r}")
    for name in ("y_channel", "quantize", "self_ensemble"):
      if not isinstance(ev[name], (bool, np.bool_)):
        raise ValueError(f"config.eval.{name} must be True or False, got {ev[name]!r}")
    sweep = ev.get("sweep") or {}
    if not hasattr(sweep, "items"):
      raise ValueError("config.eval.sweep must map level names to lists of corruption specs, "
                       f"got {sweep!r}")
    for name, specs in sweep.items():
      prefix = f"config.eval.sweep.{name}"
      if isinstance(specs, (str, dict)) or not isinstance(specs, (list, tuple)) or not specs:
        raise ValueError(f"{prefix} must be a non-empty list of corruption specs "
                         f"[{{'name': ..., **params}}, ...], got {specs!r}")
      try:
        corruptions.validate(list(specs))
      except ValueError as e:
        raise ValueError(f"{prefix}: {e}") from e
    return cls(batch_size=batch_size, seed=int(ev.seed), y_channel=bool(ev.y_channel),
               crop_border=crop_border, quantize=bool(ev.quantize), tile=tile,
               tile_overlap=overlap, self_ensemble=bool(ev.self_ensemble),
               num_grid_images=num_grid, memory_budget_mb=float(budget),
               ssim_convention=study_ssim.check_convention(ev.get("ssim_convention",
                                                                  "standard")))


def corrupt_eval_images(corrupt: Callable, seed: int, clean: jax.Array,
                        index: jax.Array) -> jax.Array:
  """Corrupts each image with a key from (seed, its dataset index): batching-independent."""
  return corruptions.per_example(corrupt, jax.random.key(seed), clean, index)[0]


def restoration_metrics(restored: jax.Array, corrupted: jax.Array, clean: jax.Array, *,
                        loss_fn: Callable, options: dict[str, Any],
                        ssim_convention: str = "standard") -> dict[str, jax.Array]:
  """Per-image PSNR/SSIM (SSIM of `ssim_convention`, see study_ssim) of the restored and the
  corrupted images, and the loss."""
  ssim = study_ssim.ssim_fn(ssim_convention)
  restored = jnp.clip(restored.astype(jnp.float32), 0.0, 1.0)
  in_options = metrics.input_options(options)  # the input as the model saw it: never rounded
  return {
      "psnr": metrics.psnr(restored, clean, **options),
      "ssim": ssim(restored, clean, **options),
      "input_psnr": metrics.psnr(corrupted, clean, **in_options),
      "input_ssim": ssim(corrupted, clean, **in_options),
      "loss": jax.vmap(lambda r, c: loss_fn(r[None], c[None]))(restored, clean),
  }


def eval_step(variables: Any, images: jax.Array, valid: jax.Array, index: jax.Array, *,
              inference, corrupt: Callable, seed: int) -> tuple[dict, dict, jax.Array]:
  """Per device: returns (global sums incl. 'count', per-image metrics, uint8 grid panels
  [input, output, target] of `inference.show`)."""
  model_input, target = inference.prepare(corrupt, seed, images, index)
  predict = functools.partial(inference.predict, variables)
  output = (any_size.self_ensemble(predict, model_input) if inference.options.self_ensemble
            else predict(model_input))
  per_image = inference.measure(output, model_input, target, variables=variables)
  # where, not multiply: padded slots can hold inf PSNR (identical zero images) and inf*0=nan.
  sums = {k: jnp.sum(jnp.where(valid, v, 0.0)) for k, v in per_image.items()}
  sums["count"] = jnp.sum(valid.astype(jnp.float32))
  sums = lax.psum(sums, parallel.AXIS)
  shown = inference.show(model_input, output, target)
  return sums, per_image, jnp.stack([to_uint8(x) for x in shown])


def to_uint8(x: jax.Array) -> jax.Array:
  # Clip first: float->uint8 of out-of-range values is platform-dependent (wraps on some).
  return jnp.round(jnp.clip(x, 0.0, 1.0) * 255.0).astype(jnp.uint8)


@dataclasses.dataclass
class EvalResult:
  """Means over the eval set plus per-image values and the images kept for the grid."""
  means: dict[str, float]
  n_images: int
  per_image: dict[str, np.ndarray]  # name -> [n] values (this process's images, index order)
  names: list[str]
  samples: list[tuple[np.ndarray, np.ndarray, np.ndarray, float, float]]

  def grid_arrays(self, n: int) -> dict[str, Any] | None:
    """save_grid's keyword arguments for the first n kept images (of the first one's shape).

    None when there is nothing to draw (n <= 0 or no kept samples): callers skip the grid.
    """
    kept = self.samples[:max(int(n), 0)]
    if not kept:
      return None
    shape = kept[0][0].shape
    kept = [s for s in kept if s[0].shape == shape]
    clean, corrupted, restored, pin, pout = zip(*kept)
    return {"clean": np.stack(clean), "corrupted": np.stack(corrupted),
            "restored": np.stack(restored), "psnr_corrupted": list(pin),
            "psnr_restored": list(pout)}


def _result(per_image: dict[int, dict[str, float]], totals: dict[str, float], images, samples
            ) -> EvalResult:
  count = totals.pop("count")
  order = sorted(per_image)
  names = sorted(totals)
  return EvalResult(
      means={k: totals[k] / count for k in names}, n_images=int(round(count)),
      per_image={k: np.array([per_image[i][k] for i in order]) for k in names},
      names=[images[i][0] for i in order], samples=samples)


def bytes_per_pixel(predict: Callable, variables: Any, channels: int, size: int = 64) -> float:
  """Device memory of one model call per input pixel, from XLA's plan (compiles, runs nothing).

  Temporaries, output and input of `predict` on one size x size image; they scale linearly
  with the pixel count for convolutional models, so this predicts any image size.
  """
  abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a), a.dtype), variables)
  x = jax.ShapeDtypeStruct((1, size, size, channels), jnp.float32)
  m = jax.jit(predict).lower(abstract, x).compile().memory_analysis()
  return (m.temp_size_in_bytes + m.output_size_in_bytes + 4 * x.size) / size ** 2


def auto_tile(bytes_px: float, budget_mb: float, *, batch_tiles: int, multiple: int,
              overlap: int) -> int:
  """The largest tile (a multiple of `multiple`) whose batch of tiles fits the budget."""
  side = int((budget_mb * 2 ** 20 / (bytes_px * batch_tiles)) ** 0.5) // multiple * multiple
  if side <= overlap:
    raise ValueError(
        f"config.eval.memory_budget_mb={budget_mb} fits only {side} px tiles of this model "
        f"({bytes_px:.0f} bytes/pixel), not more than eval.tile_overlap={overlap}: raise the "
        "budget or lower the overlap")
  return side


class Evaluator:
  """Evaluates inference variables on the eval images under one or more corruption chains.

  `inference`: the task's inference side (`prepare`, `predict(variables, model_input)`,
  `measure(output, model_input, target, variables=...)`, `show`, `options` (EvalOptions),
  `multiple`);
  `images`: the list from `data.load_eval_images`.
  """

  def __init__(self, inference, images: list[tuple[str, np.ndarray]], *,
               devices: Sequence[jax.Device] | None = None):
    self.inference = inference
    self.options = inference.options
    self.devices = list(devices) if devices is not None else None  # None: all, as pmap's
    self.images = images
    if not self.images:
      raise ValueError("the eval data (config.data.eval) has no images")
    self._steps: dict[str, Callable] = {}
    self._host_fns: dict[str, tuple[Callable, Callable]] = {}
    # The host (tiled) path's model: variables are an argument, so one compilation per shape.
    self.host_apply = jax.jit(inference.predict)
    self._bytes_px: float | None = None

  def tile_for(self, variables: Any, shape: Sequence[int], batch: int = 1) -> int:
    """0 when `batch` images of `shape` fit eval.memory_budget_mb, else the tile to use."""
    if self._bytes_px is None:
      # The model's input channels, not the file's (pairs hold two images, inpaint adds a mask).
      probe = jax.ShapeDtypeStruct((1, 8, 8, shape[-1]), jnp.uint8)
      model_input, _ = jax.eval_shape(
          lambda x: self.inference.prepare(corruptions.chain([]), 0, x, jnp.zeros((1,), int)),
          probe)
      self._bytes_px = bytes_per_pixel(self.inference.predict, variables,
                                       model_input.shape[-1])
    ensemble = 8 if self.options.self_ensemble else 1
    budget = self.options.memory_budget_mb * 2 ** 20
    if self._bytes_px * shape[0] * shape[1] * batch * ensemble <= budget:
      return 0
    return auto_tile(self._bytes_px * ensemble, self.options.memory_budget_mb,
                     batch_tiles=_BATCH_TILES, multiple=self.inference.multiple,
                     overlap=self.options.tile_overlap)

  def _too_big(self, variables: Any) -> list[str]:
    per_device = max(self.options.batch_size // parallel.local_device_count(self.devices), 1)
    return [name for name, image in self.images
            if self.tile_for(variables, image.shape, per_device) > 0]

  def _step(self, specs: list[dict]) -> Callable:
    key = repr(specs)
    if key not in self._steps:
      fn = functools.partial(eval_step, inference=self.inference,
                             corrupt=corruptions.chain(specs), seed=self.options.seed)
      self._steps[key] = parallel.parallelize(fn, devices=self.devices)
    return self._steps[key]

  def _bar(self, progress: str | None) -> tqdm.tqdm:
    """A bar over this process's eval images named `progress`; None: no bar (training)."""
    mine = len(range(jax.process_index(), len(self.images), jax.process_count()))
    return tqdm.tqdm(total=mine, desc=progress, unit="image", dynamic_ncols=True, leave=False,
                     disable=progress is None or jax.process_index() != 0)

  def evaluate(self, variables: Any, specs: list[dict], *, replicated: bool = True,
               keep_samples: int | None = None, progress: str | None = None) -> EvalResult:
    """`variables` replicated over the local devices (as in training) unless replicated=False.

    Callers evaluating several levels should place the variables once themselves
    (`parallel.to_devices(parallel.replicate(...))`) and pass replicated=True. `progress`:
    the description of a progress bar over the images (None: no bar).
    """
    host = variables if not replicated else None
    if host is None:  # one device's copy, only for shapes; nothing is fetched
      host = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype), variables)
    big = self._too_big(host)
    if big:  # whole images would not fit: the host path tiles those that need it
      logging.warning("eval: %d image(s) (e.g. %s) exceed eval.memory_budget_mb=%g; they are "
                      "evaluated in tiles", len(big), big[0], self.options.memory_budget_mb)
      if replicated:
        variables = parallel.unreplicate(variables)
      return self.evaluate_tiled(variables, specs, tile=0, keep_samples=keep_samples,
                                 progress=progress)
    if not replicated:
      variables = parallel.to_devices(parallel.replicate(variables, self.devices), self.devices)
    keep = self.options.num_grid_images if keep_samples is None else keep_samples
    p_eval = self._step(list(specs))
    totals: dict[str, float] = {}
    per_image: dict[int, dict[str, float]] = {}
    samples = []
    bar = self._bar(progress)
    for batch in data.eval_batches(self.images, batch_size=self.options.batch_size,
                                   process_index=jax.process_index(),
                                   process_count=jax.process_count(),
                                   local_device_count=parallel.local_device_count(self.devices)):
      sums, values, pictures = p_eval(variables, batch["image"], batch["valid"], batch["index"])
      bar.update(int(np.sum(batch["valid"])))
      # Only the grid needs pictures: the images of later batches stay on the devices.
      sums, values = jax.device_get((sums, values))
      if len(samples) < keep:
        pictures = jax.device_get(pictures)
      for k, v in sums.items():
        totals[k] = totals.get(k, 0.0) + float(np.asarray(v)[0])
      for d, b in zip(*np.nonzero(batch["valid"])):
        i = int(batch["index"][d, b])
        per_image[i] = {k: float(v[d, b]) for k, v in values.items()}
        if len(samples) < keep:
          samples.append((pictures[d, 2, b], pictures[d, 0, b], pictures[d, 1, b],
                          per_image[i]["input_psnr"], per_image[i]["psnr"]))
    bar.close()
    return _result(per_image, totals, self.images, samples)

  def _host(self, specs: list[dict]) -> tuple[Callable, Callable]:
    key = repr(specs)
    if key not in self._host_fns:
      prepare = jax.jit(functools.partial(self.inference.prepare, corruptions.chain(specs),
                                          self.options.seed))
      show = lambda *a: [to_uint8(x[0]) for x in self.inference.show(*a)]  # noqa: E731
      self._host_fns[key] = (prepare, jax.jit(self.inference.measure), jax.jit(show))
    return self._host_fns[key]

  def evaluate_tiled(self, variables: Any, specs: list[dict], *, tile: int | None = None,
                     overlap: int | None = None, keep_samples: int | None = None,
                     progress: str | None = None) -> EvalResult:
    """Host-driven evaluation, one image at a time, for images too big for the pmapped step.

    `variables` unreplicated. Image i is corrupted exactly as in `eval_step` (key from
    (eval.seed, i)), run through `any_size.apply` (tiles of `tile` px, default eval.tile,
    blended over `overlap`, default eval.tile_overlap; 0 = whole image; eval.self_ensemble) and measured with the same `measure`. The model
    compiles once per tile shape, whatever the image sizes; corruption and metrics (cheap)
    once per image shape. Multi-process: each process takes every process_count-th image;
    means are summed over processes.
    """
    o = self.options
    tile = o.tile if tile is None else int(tile)
    overlap = o.tile_overlap if overlap is None else int(overlap)
    keep = o.num_grid_images if keep_samples is None else keep_samples
    prepare, measure, show = self._host(list(specs))
    variables = jax.device_put(variables)
    apply = functools.partial(self.host_apply, variables)
    per_image: dict[int, dict[str, float]] = {}
    samples = []
    bar = self._bar(progress)
    for i in range(jax.process_index(), len(self.images), jax.process_count()):
      image = self.images[i][1]
      model_input, target = prepare(jnp.asarray(image[None]), jnp.full((1,), i, jnp.int32))
      restored = jnp.asarray(any_size.apply(
          apply, model_input, multiple=self.inference.multiple,
          tile=tile or self.tile_for(variables, image.shape), overlap=overlap,
          self_ensemble=o.self_ensemble, batch_tiles=_BATCH_TILES))
      values = jax.device_get(measure(restored, model_input, target, variables=variables))
      per_image[i] = {k: float(v[0]) for k, v in values.items()}
      bar.update(1)
      if len(samples) < keep:
        shown, output, clean = map(np.asarray, show(model_input, restored, target))
        samples.append((clean, shown, output, per_image[i]["input_psnr"],
                        per_image[i]["psnr"]))
    bar.close()
    order = sorted(per_image)
    names = sorted(per_image[order[0]]) if order else []
    sums = np.array([sum(per_image[i][k] for i in order) for k in names] + [len(order)])
    if jax.process_count() > 1:
      sums = parallel.sum_over_processes(sums)
    totals = dict(zip(names + ["count"], map(float, sums)))
    return _result(per_image, totals, self.images, samples)
