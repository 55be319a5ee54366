"""Host input pipelines: grain training batches, and the sources both pipelines open.

Training (`make_train_data`), as a grain MapDataset graph:

    epoch-shuffled infinite stream of the source (a new permutation every epoch)
           -> crop + augment, seeded by (seed, position in the stream)
           -> batch(global_batch / process_count) -> every process_count-th chunk
           -> to_iter_dataset (+ mp_prefetch with data.num_workers > 0)

Global batch k is stream positions [k*G, (k+1)*G); process p takes the p-th of its
process_count equal contiguous chunks, so processes read disjoint images within an epoch and the
concatenation over processes is the same global batch whatever the number of processes. Each
grain element is a whole per-process batch, so worker processes hand out whole batches and the
result does not depend on data.num_workers either. Crop offsets and the dihedral transform come
from a splitmix64 hash of (seed, position), never from worker-local state; epoch e is the
permutation `np.random.default_rng([salt, seed, e]).permutation(N)`. (Both are cheap: grain's
own `shuffle` costs ~0.1 ms per element through its index_shuffle, more than the crop.)

Because the MapDataset is random access, the checkpointable iterator state is simply the number
of batches consumed: `set_state` rebuilds the grain iterator from `batches[k:]`. The state is
therefore JSON-serialisable and valid across worker counts (and process counts).

Images stay uint8 until the device: `next()` gives uint8 [local_devices, per_device_batch, P, P,
C]; with `with_index` (config.corruption_fixed_per_image) a dict {'image': that, 'index': int32
[local_devices, per_device_batch]}, each crop's source index (recomputed here from the same
epoch permutations, so it does not travel through grain or its workers). Sizes smaller than
`patch_size` raise at start-up (or at first read for tfds datasets whose shape is not static)
unless `data.pad_small`, which reflect-pads them (centred) to the patch.

Evaluation images and their batches: `restoration.data.eval_images`.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any, NamedTuple

from absl import logging
import grain
import jax
import numpy as np

from restoration import image_ops
from restoration.data import sources as sources_lib
from restoration.data import specs

_SHUFFLE_SALT = 0x5EED_5A1F
_CROP_SALT = 0xC40B
STATE_VERSION = 1
_M64 = (1 << 64) - 1


def _seed_words(seed: int) -> list[int]:
  seed = int(seed)
  return [seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF, 1 if seed < 0 else 0]


def _mix64(x: int) -> int:
  """splitmix64 finaliser: a bijective 64-bit hash."""
  x = (x + 0x9E3779B97F4A7C15) & _M64
  x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
  x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
  return x ^ (x >> 31)


def _seed_key(seed: int, salt: int) -> int:
  return int(np.random.SeedSequence([salt] + _seed_words(seed)).generate_state(2, np.uint64)[0])


class _EpochShuffled:
  """Infinite random-access stream: position -> (source index, image), reshuffled per epoch."""

  def __init__(self, source, seed: int):
    self.source = source
    self.seed_words = _seed_words(seed)
    self._perms: dict[int, np.ndarray] = {}

  def __len__(self):
    return sys.maxsize

  def permutation(self, epoch: int) -> np.ndarray:
    perm = self._perms.get(epoch)
    if perm is None:
      if len(self._perms) >= 2:
        self._perms.pop(min(self._perms))
      rng = np.random.default_rng([_SHUFFLE_SALT] + self.seed_words + [epoch])
      perm = self._perms[epoch] = rng.permutation(len(self.source))
    return perm

  def __getitem__(self, position):
    epoch, k = divmod(int(position), len(self.source))
    i = int(self.permutation(epoch)[k])
    return i, self.source[i]

  def __getstate__(self):
    return {**self.__dict__, "_perms": {}}


def open_train_source(config) -> sources_lib.Source:
  return specs.open_source(config.data.train, config.data.channels, split="train",
                                 tfds_data_dir=config.data.get("tfds_data_dir", ""))


def open_eval_source(config) -> sources_lib.Source:
  return specs.open_source(config.data.eval, config.data.channels, split="eval",
                                 tfds_data_dir=config.data.get("tfds_data_dir", ""))


def pad_to_min(image: np.ndarray, size: int) -> np.ndarray:
  """Reflect-pads (centred) an HWC image so that both sides are at least `size`."""
  h, w = image.shape[:2]
  return image_ops.pad_to_shape(image, (max(h, size), max(w, size)), centre=True)


def too_small_error(spec: str, name: str, hw, size: int, what: str = "patch_size") -> ValueError:
  return ValueError(
      f"data spec {spec!r}: image {name} is {hw[0]}x{hw[1]}, smaller than {what}={size}; "
      f"use a smaller {what}, remove the image, or set data.pad_small=True to reflect-pad it")


def check_min_size(source: sources_lib.Source, size: int, pad_small: bool,
                   what: str = "patch_size") -> None:
  """Raises naming the smallest image when some image is smaller than `size`."""
  sizes = source.sizes()
  if pad_small or not sizes:
    return
  small = [i for i, (h, w) in enumerate(sizes) if h < size or w < size]
  if small:
    i = min(small, key=lambda j: (min(sizes[j]), sizes[j][0] * sizes[j][1]))
    err = too_small_error(source.spec, source.name(i), sizes[i], size, what)
    raise ValueError(f"{err} ({len(small)} of {len(sizes)} images are too small)")


class _CropAugment:
  """map_with_index transform: (stream position, (source index, image)) -> uint8 patch."""

  def __init__(self, source, seed: int, patch_size: int, augment: bool, pad_small: bool):
    self.source = source
    self.key = _seed_key(seed, _CROP_SALT)
    self.patch_size = int(patch_size)
    self.augment = bool(augment)
    self.pad_small = bool(pad_small)

  def __call__(self, position: int, item):
    i, image = item
    p = self.patch_size
    h, w = image.shape[:2]
    if h < p or w < p:
      if not self.pad_small:
        raise too_small_error(self.source.spec, self.source.name(i), (h, w), p)
      image = pad_to_min(image, p)
      h, w = image.shape[:2]
    r = _mix64(self.key ^ _mix64(int(position)))
    y = _mix64(r + 1) % (h - p + 1)
    x = _mix64(r + 2) % (w - p + 1)
    t = _mix64(r + 3) % 8
    patch = image[y:y + p, x:x + p]
    return image_ops.dihedral(patch, int(t)) if self.augment else np.ascontiguousarray(patch)


def local_devices(local_device_count: int | None) -> int:
  return int(local_device_count) if local_device_count else jax.local_device_count()


def _check_batch(batch_size: int, process_count: int, local_devices: int, what: str) -> int:
  div = process_count * local_devices
  if batch_size <= 0 or batch_size % div:
    raise ValueError(f"{what}={batch_size} must be a positive multiple of process_count * "
                     f"local_device_count = {process_count} * {local_devices} = {div}")
  return batch_size // div


def _die_with_parent(worker_index: int, worker_count: int) -> None:
  """grain worker init: the worker exits once the training process is gone.

  A graceful stop closes the workers; a kill -9 or a second SIGTERM/SIGINT does not, and they
  would run on, holding their memory and keeping multiprocessing's resource tracker alive.
  A thread watching the parent pid, not PR_SET_PDEATHSIG: that fires when the parent *thread*
  that started the worker ends, and grain starts workers from its own pool threads.
  """
  del worker_index, worker_count
  parent = os.getppid()

  def watch():
    while os.getppid() == parent:
      time.sleep(0.5)
    os._exit(1)  # pylint: disable=protected-access

  threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


class TrainData:
  """Infinite iterator of uint8 [local_devices, per_device_batch, P, P, C] training batches
  (with_index: dicts that add each crop's source index, see the module docstring)."""

  def __init__(self, source, *, seed: int, batch_size: int, patch_size: int, augment: bool,
               pad_small: bool, process_index: int, process_count: int,
               local_device_count: int, num_workers: int = 0, prefetch: int = 2,
               with_index: bool = False):
    if not 0 <= process_index < process_count:
      raise ValueError(f"process_index={process_index} not in [0, {process_count})")
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
      raise ValueError(f"config.data.num_workers must be an integer >= 0 (0: no worker "
                       f"processes), got {num_workers!r}")
    self.source = source
    self.seed = int(seed)
    self.batch_size = int(batch_size)
    self.local_device_count = int(local_device_count)
    self.per_device_batch = _check_batch(self.batch_size, process_count,
                                         self.local_device_count, "batch_size")
    self.process_index, self.process_count = int(process_index), int(process_count)
    self.num_workers, self.prefetch = int(num_workers), max(1, int(prefetch))
    self.shape = (self.local_device_count, self.per_device_batch, int(patch_size),
                  int(patch_size), int(source.channels))
    self.with_index = bool(with_index)
    self._order = _EpochShuffled(source, seed)  # the stream's own order, for `_indices`
    ds = grain.MapDataset.source(_EpochShuffled(source, seed))
    ds = ds.map_with_index(_CropAugment(source, seed, patch_size, augment, pad_small))
    ds = ds.batch(self.batch_size // self.process_count)
    self._batches = ds[self.process_index::self.process_count]
    self._next = 0
    self._it = None

  def _start(self):
    read = grain.ReadOptions(num_threads=1, prefetch_buffer_size=self.prefetch)
    it = self._batches[self._next:].to_iter_dataset(read)
    if self.num_workers > 0:
      it = it.mp_prefetch(grain.MultiprocessingOptions(
          num_workers=self.num_workers, per_worker_buffer_size=self.prefetch),
                          worker_init_fn=_die_with_parent)
    self._it = iter(it)

  def __iter__(self):
    return self

  def __next__(self) -> np.ndarray:
    if self._it is None:
      self._start()
    batch = next(self._it)
    self._next += 1
    # A plain copy: worker batches arrive in shared memory, released as soon as this drops it.
    images = np.array(batch, dtype=np.uint8, copy=True).reshape(self.shape)
    if not self.with_index:
      return images
    return {"image": images, "index": self._indices(self._next - 1).reshape(self.shape[:2])}

  def _indices(self, k: int) -> np.ndarray:
    """Source indices of this process's batch k: grain batch p + k * P of the stream."""
    chunk = self.batch_size // self.process_count
    start = (self.process_index + k * self.process_count) * chunk
    epoch, j = np.divmod(np.arange(start, start + chunk), len(self.source))
    return np.array([self._order.permutation(int(e))[int(i)] for e, i in zip(epoch, j)],
                    np.int32)

  def get_state(self) -> dict[str, Any]:
    """JSON-serialisable position; valid across worker counts."""
    return {"version": STATE_VERSION, "next_batch": self._next, "seed": self.seed,
            "batch_size": self.batch_size, "spec": self.source.spec,
            "num_images": len(self.source)}

  def set_state(self, state: dict[str, Any]) -> None:
    if int(state.get("version", -1)) != STATE_VERSION or "next_batch" not in state:
      raise ValueError(f"not a TrainData state (version {STATE_VERSION}): {state!r}")
    for key, now in (("seed", self.seed), ("batch_size", self.batch_size),
                     ("spec", self.source.spec), ("num_images", len(self.source))):
      if key in state and state[key] != now:
        logging.warning("Restoring train data state saved with %s=%r, now %r: the batch "
                        "sequence differs from the interrupted run.", key, state[key], now)
    self.close()
    self._next = int(state["next_batch"])

  def close(self) -> None:
    """Stops prefetch threads / worker processes (also done by set_state and on deletion)."""
    it, self._it = self._it, None
    if it is not None and hasattr(it, "close"):
      it.close()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()

  def __del__(self):
    try:
      self.close()
    except Exception:  # pylint: disable=broad-except
      pass


def make_train_data(config, source: sources_lib.Source | None = None, *, process_index: int = 0,
                    process_count: int = 1, local_device_count: int | None = None) -> TrainData:
  """The training iterator for this process (see module docstring).

  `source`: the opened `config.data.train` (`open_sources(...).train`); opened here if None.
  """
  d = config.data
  if source is None:
    source = open_train_source(config)
    check_min_size(source, config.patch_size, d.pad_small)
  return TrainData(
      source, seed=config.seed, batch_size=config.batch_size, patch_size=config.patch_size,
      augment=d.augment, pad_small=d.pad_small, process_index=process_index,
      process_count=process_count, local_device_count=local_devices(local_device_count),
      num_workers=d.get("num_workers", 0), prefetch=d.get("prefetch", 2),
      with_index=bool(config.get("corruption_fixed_per_image", False)))


class Sources(NamedTuple):
  train: sources_lib.Source
  eval: sources_lib.Source


def open_sources(config, *, process_count: int | None = None,
                 local_device_count: int | None = None) -> Sources:
  """Opens config.data.train and .eval once, checking them; raises a clear error.

  Checks channels, spec prefixes, paths, readability of headers (no full decode), patch / eval
  crop against the image sizes and the batch divisibility (process_count /
  local_device_count default to JAX's).
  """
  d = config.data
  sources_lib.check_channels(d.channels)
  process_count = jax.process_count() if process_count is None else int(process_count)
  devices = local_devices(local_device_count)
  _check_batch(config.batch_size, process_count, devices, "batch_size")
  train = open_train_source(config)
  check_min_size(train, config.patch_size, d.pad_small)
  evals = open_eval_source(config)
  if d.get("eval_crop", 0) > 0:
    check_min_size(evals, d.eval_crop, d.pad_small, "data.eval_crop")
  if d.eval_batch_size < process_count * devices:
    raise ValueError(f"data.eval_batch_size={d.eval_batch_size} is smaller than process_count "
                     f"* local_device_count = {process_count * devices}")
  return Sources(train, evals)
