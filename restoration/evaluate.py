"""Evaluation: the pmapped eval step and the Evaluator used during training and by --mode=eval.

Every eval image is corrupted with a key derived from (config.eval.seed, image index), so all
models, runs and device counts see the same corrupted images. Metrics are computed per image
on outputs clipped to [0, 1] with the convention in config.eval (RGB or Y, border crop, uint8
quantisation), summed over valid images with `psum` (padding of the last partial batch is
masked out), and divided by the global count: exact means across devices and hosts.

`validate_eval_config` checks every eval-time field (called by train.validate_config, eval mode
and restore mode) so a bad value fails at start-up, not at the first eval's trace.
"""

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax import lax

from restoration import corruptions
from restoration import data
from restoration import inference
from restoration import losses
from restoration import metrics
from restoration import parallel

METRICS = ("psnr", "ssim", "input_psnr", "input_ssim", "loss")


def _is_int(value: Any) -> bool:
  return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _check_int(value: Any, name: str, minimum: int) -> int:
  if not _is_int(value) or value < minimum:
    raise ValueError(f"config.{name} must be an integer >= {minimum}, got {value!r}")
  return int(value)


def validate_eval_config(config: ml_collections.ConfigDict) -> None:
  """Checks every eval-time field, raising ValueError naming it and its allowed values.

  eval.crop_border, data.eval_crop, eval.tile, eval.tile_overlap, eval.num_grid_images,
  data.eval_max_images: integers >= 0; data.eval_crop, when > 0, at least the SSIM window
  (11) plus 2 * crop_border; eval.tile_overlap < eval.tile when tiling; data.eval_batch_size an
  integer >= 1; eval.seed an integer; eval.y_channel / quantize / self_ensemble booleans; every
  eval.sweep level a non-empty list of corruption specs (`corruptions.validate`). Image sizes
  and device counts are checked elsewhere (data.validate_data_config, train.validate_config).
  """
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
  _check_int(d.eval_batch_size, "data.eval_batch_size", 1)
  tile = _check_int(ev.tile, "eval.tile", 0)
  overlap = _check_int(ev.tile_overlap, "eval.tile_overlap", 0)
  if tile > 0 and overlap >= tile:
    raise ValueError(f"config.eval.tile_overlap={overlap} must be smaller than "
                     f"config.eval.tile={tile} (or set eval.tile=0: no tiling)")
  _check_int(ev.num_grid_images, "eval.num_grid_images", 0)
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


def jit_apply(model) -> Callable[[Any, jax.Array], jax.Array]:
  """`(variables, x) -> model.apply(variables, x, train=False)`, jitted.

  The variables are an argument, not constants: one compilation per input shape (`jax.jit`'s
  cache; `inference.jit_cache_size` counts them), whatever the variables' values.
  """
  return jax.jit(lambda variables, x: model.apply(variables, x, train=False))


def metric_options(config: ml_collections.ConfigDict) -> dict[str, Any]:
  return dict(y_channel=config.eval.y_channel, crop_border=config.eval.crop_border,
              quantize=config.eval.quantize)


def convention(config: ml_collections.ConfigDict) -> str:
  return metrics.convention_name(**metric_options(config))


def corrupt_eval_images(corrupt: Callable, seed: int, clean: jax.Array,
                        index: jax.Array) -> jax.Array:
  """Corrupts each image with a key from (seed, its dataset index): batching-independent."""
  return corruptions.per_example(corrupt, jax.random.key(seed), clean, index)[0]


def per_image_metrics(restored: jax.Array, corrupted: jax.Array, clean: jax.Array, *,
                      loss_fn: Callable, options: dict[str, Any]) -> dict[str, jax.Array]:
  restored = jnp.clip(restored.astype(jnp.float32), 0.0, 1.0)
  return {
      "psnr": metrics.psnr(restored, clean, **options),
      "ssim": metrics.ssim(restored, clean, **options),
      "input_psnr": metrics.psnr(corrupted, clean, **options),
      "input_ssim": metrics.ssim(corrupted, clean, **options),
      "loss": jax.vmap(lambda r, c: loss_fn(r[None], c[None]))(restored, clean),
  }


def eval_step(variables: Any, images: jax.Array, valid: jax.Array, index: jax.Array, *,
              model, corrupt: Callable, seed: int, loss_fn: Callable,
              options: dict[str, Any], self_ensemble: bool) -> tuple[dict, dict, jax.Array]:
  """Per device: returns (global sums incl. 'count', per-image metrics, restored uint8)."""
  clean = images.astype(jnp.float32) / 255.0
  corrupted = corrupt_eval_images(corrupt, seed, clean, index)
  apply = lambda x: model.apply(variables, x, train=False)
  restored = inference.self_ensemble(apply, corrupted) if self_ensemble else apply(corrupted)
  per_image = per_image_metrics(restored, corrupted, clean, loss_fn=loss_fn, options=options)
  # where, not multiply: padded slots can hold inf PSNR (identical zero images) and inf*0=nan.
  sums = {k: jnp.sum(jnp.where(valid, v, 0.0)) for k, v in per_image.items()}
  sums["count"] = jnp.sum(valid.astype(jnp.float32))
  sums = lax.psum(sums, parallel.AXIS)
  # Clip first: float->uint8 of out-of-range values is platform-dependent (wraps on some).
  to_u8 = lambda x: jnp.round(jnp.clip(x, 0.0, 1.0) * 255.0).astype(jnp.uint8)
  return sums, per_image, jnp.stack([to_u8(corrupted), to_u8(restored)])


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


class Evaluator:
  """Evaluates a model's variables on config.data.eval under one or more corruption chains."""

  def __init__(self, config: ml_collections.ConfigDict, model, *,
               devices: Sequence[jax.Device] | None = None,
               images: list[tuple[str, np.ndarray]] | None = None):
    self.config = config
    self.model = model
    self.devices = list(devices) if devices is not None else None  # None: all, as pmap's
    self.images = images if images is not None else data.load_eval_images(config)
    if not self.images:
      raise ValueError(f"config.data.eval={config.data.eval!r} has no images")
    self.loss_fn = losses.make_loss(dict(config.loss))
    self._steps: dict[str, Callable] = {}
    self._host_fns: dict[str, tuple[Callable, Callable]] = {}
    self.host_apply = jit_apply(model)  # the host (tiled) path's model

  def _step(self, specs: list[dict]) -> Callable:
    key = repr(specs)
    if key not in self._steps:
      fn = functools.partial(
          eval_step, model=self.model, corrupt=corruptions.chain(specs), seed=self.config.eval.seed,
          loss_fn=self.loss_fn, options=metric_options(self.config),
          self_ensemble=self.config.eval.self_ensemble)
      self._steps[key] = parallel.parallelize(fn, devices=self.devices)
    return self._steps[key]

  def evaluate(self, variables: Any, specs: list[dict] | None = None, *,
               replicated: bool = True, keep_samples: int | None = None) -> EvalResult:
    """`variables` replicated over the local devices (as in training) unless replicated=False.

    Unreplicated variables are placed on the devices once here (not re-sent with every batch);
    callers evaluating several levels should place them once themselves
    (`parallel.to_devices(parallel.replicate(...))`) and pass replicated=True.
    """
    specs = list(self.config.corruption) if specs is None else list(specs)
    if not replicated:
      variables = parallel.to_devices(parallel.replicate(variables, self.devices), self.devices)
    keep = self.config.eval.num_grid_images if keep_samples is None else keep_samples
    p_eval = self._step(specs)
    totals: dict[str, float] = {}
    per_image: dict[int, dict[str, float]] = {}
    samples = []
    for batch in data.eval_batches(self.images, batch_size=self.config.data.eval_batch_size,
                                   process_index=jax.process_index(),
                                   process_count=jax.process_count(),
                                   local_device_count=parallel.local_device_count(self.devices)):
      sums, values, pictures = p_eval(variables, batch["image"], batch["valid"], batch["index"])
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
          samples.append((batch["image"][d, b], pictures[d, 0, b], pictures[d, 1, b],
                          per_image[i]["input_psnr"], per_image[i]["psnr"]))
    count = totals.pop("count")
    means = {k: totals[k] / count for k in METRICS}
    order = sorted(per_image)
    return EvalResult(
        means=means, n_images=int(round(count)),
        per_image={k: np.array([per_image[i][k] for i in order]) for k in METRICS},
        names=[self.images[i][0] for i in order], samples=samples)

  def _host(self, specs: list[dict]) -> tuple[Callable, Callable]:
    key = repr(specs)
    if key not in self._host_fns:
      corrupt = jax.jit(functools.partial(corrupt_eval_images, corruptions.chain(specs),
                                          self.config.eval.seed))
      measure = jax.jit(functools.partial(per_image_metrics, loss_fn=self.loss_fn,
                                          options=metric_options(self.config)))
      self._host_fns[key] = (corrupt, measure)
    return self._host_fns[key]

  def evaluate_tiled(self, variables: Any, specs: list[dict] | None = None, *,
                     tile: int | None = None, overlap: int | None = None, multiple: int = 1,
                     keep_samples: int | None = None) -> EvalResult:
    """Host-driven evaluation, one image at a time, for images too big for the pmapped step.

    `variables` unreplicated. Image i is corrupted exactly as in `eval_step` (key from
    (eval.seed, i)), restored with `inference.restore` (tiles of `tile` px, default
    config.eval.tile, blended over `overlap`, default eval.tile_overlap; 0 = whole image;
    config.eval.self_ensemble) and measured with the same `per_image_metrics`. The model
    compiles once per tile shape ([batch_tiles, tile, tile, C]), whatever the image sizes;
    corruption and metrics (cheap) once per image shape. Multi-process: each process takes
    every process_count-th image; means are summed over processes.
    """
    c = self.config
    specs = list(c.corruption) if specs is None else list(specs)
    tile = c.eval.tile if tile is None else int(tile)
    overlap = c.eval.tile_overlap if overlap is None else int(overlap)
    keep = c.eval.num_grid_images if keep_samples is None else keep_samples
    corrupt, measure = self._host(specs)
    apply = functools.partial(self.host_apply, jax.device_put(variables))
    to_u8 = lambda x: np.round(np.clip(np.asarray(x), 0.0, 1.0) * 255.0).astype(np.uint8)
    per_image: dict[int, dict[str, float]] = {}
    samples = []
    for i in range(jax.process_index(), len(self.images), jax.process_count()):
      image = self.images[i][1]
      clean = jnp.asarray(image[None]).astype(jnp.float32) / 255.0
      corrupted = corrupt(clean, jnp.full((1,), i, jnp.int32))
      restored = inference.restore(apply, corrupted, multiple=multiple, tile=tile,
                                   overlap=overlap, self_ensemble=c.eval.self_ensemble)
      restored = np.clip(restored, 0.0, 1.0)
      values = jax.device_get(measure(restored, corrupted, clean))
      per_image[i] = {k: float(v[0]) for k, v in values.items()}
      if len(samples) < keep:
        samples.append((image, to_u8(corrupted[0]), to_u8(restored[0]),
                        per_image[i]["input_psnr"], per_image[i]["psnr"]))
    order = sorted(per_image)
    sums = np.array([sum(per_image[i][k] for i in order) for k in METRICS] + [len(order)])
    if jax.process_count() > 1:
      sums = parallel.sum_over_processes(sums)
    count = float(sums[-1])
    return EvalResult(
        means={k: float(sums[j]) / count for j, k in enumerate(METRICS)},
        n_images=int(round(count)),
        per_image={k: np.array([per_image[i][k] for i in order]) for k in METRICS},
        names=[self.images[i][0] for i in order], samples=samples)
