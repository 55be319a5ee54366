"""Evaluation images and their batches.

`load_eval_images` gives (name, uint8 HWC) in a fixed order, with what they are a part of (set
name and size, crop: `EvalImages.label`, e.g. 'BSD68: 4 of 68 images, 64 px crops');
`eval_batches` groups images of one exact shape per batch (or centre crops of `data.eval_crop`),
pads the last batch of each shape with `valid=False` slots, and gives every process the same
number of batches.
"""

from __future__ import annotations

import collections
from typing import Any, Iterator, Sequence

import numpy as np

from restoration.data import pipeline
from restoration.data import sources as sources_lib
from restoration.data import specs


def centre_crop(image: np.ndarray, size: int) -> np.ndarray:
  h, w = image.shape[:2]
  y, x = (h - size) // 2, (w - size) // 2
  return np.ascontiguousarray(image[y:y + size, x:x + size])


class EvalImages(list):
  """The eval images, a list of (name, uint8 HWC), and what they are a part of: `set_name`
  (e.g. 'BSD68'), `set_size` (images in the whole set), `crop` (data.eval_crop; 0: whole
  images). `label` says it in words, e.g. 'BSD68: 4 of 68 images, 64 px crops'."""

  def __init__(self, items, *, set_name: str, set_size: int, crop: int):
    super().__init__(items)
    self.set_name, self.set_size, self.crop = set_name, int(set_size), int(crop)

  @property
  def label(self) -> str:
    return describe_set(self.set_name, len(self), self.set_size, self.crop)

  @property
  def row_fields(self) -> dict[str, Any]:
    """What an eval results row records of the set (`restoration.eval.results`)."""
    return {"set": self.set_name, "set_size": self.set_size, "eval_crop": self.crop}


def describe_set(set_name: str, n_images: int, set_size: int | None, crop: int) -> str:
  """'BSD68: 68 images' / 'BSD68: 4 of 68 images, 64 px crops' (whole images unless crops)."""
  count = (f"{n_images} images" if set_size is None or n_images == set_size
           else f"{n_images} of {set_size} images")
  return f"{set_name}: {count}" + (f", {int(crop)} px crops" if crop else "")


def load_eval_images(config, source: sources_lib.Source | None = None) -> EvalImages:
  """(name, uint8 HWC) eval images in a fixed order (centre-cropped with data.eval_crop).

  `source`: the opened `config.data.eval`; opened here if None.
  """
  d = config.data
  source = pipeline.open_eval_source(config) if source is None else source
  n = len(source)
  if d.get("eval_max_images", 0) > 0:
    n = min(n, int(d.eval_max_images))
  crop = int(d.get("eval_crop", 0))
  if crop > 0:
    sizes = source.sizes()
    if sizes is not None and not d.pad_small:
      small = [i for i in range(n) if min(sizes[i]) < crop]
      if small:
        i = min(small, key=lambda j: min(sizes[j]))
        raise pipeline.too_small_error(source.spec, source.name(i), sizes[i], crop, "data.eval_crop")
  out = []
  for i in range(n):
    image = source[i]
    if crop > 0:
      if min(image.shape[:2]) < crop:
        if not d.pad_small:
          raise pipeline.too_small_error(source.spec, source.name(i), image.shape, crop, "data.eval_crop")
        image = pipeline.pad_to_min(image, crop)
      image = centre_crop(image, crop)
    out.append((source.name(i), image))
  return EvalImages(out, set_name=specs.set_name(str(d.eval)),
                    set_size=len(source), crop=crop)


def eval_batches(images: Sequence, *, batch_size: int, process_index: int = 0,
                 process_count: int = 1,
                 local_device_count: int | None = None) -> Iterator[dict[str, np.ndarray]]:
  """Shape-bucketed eval batches for this process.

  `images`: the list from `load_eval_images` (or bare HWC arrays). `batch_size` is GLOBAL; each
  device gets B = batch_size // (process_count * D). Yields {'image': uint8 [D, B, H, W, C],
  'valid': bool [D, B], 'index': int32 [D, B] (-1 for padding)}; one shape per batch, shapes in
  order of first appearance, images in order within a shape. Every process yields the same
  number of batches and the valid indices over processes cover every image exactly once.
  """
  if not 0 <= process_index < process_count:
    raise ValueError(f"process_index={process_index} not in [0, {process_count})")
  devices = pipeline.local_devices(local_device_count)
  per_device = batch_size // (process_count * devices)
  if per_device < 1:
    raise ValueError(f"data.eval_batch_size={batch_size} is smaller than process_count * "
                     f"local_device_count = {process_count * devices}")
  arrays = [im[1] if isinstance(im, tuple) else im for im in images]
  buckets: dict[tuple[int, ...], list[int]] = collections.OrderedDict()
  for i, a in enumerate(arrays):
    buckets.setdefault(tuple(a.shape), []).append(i)
  local = per_device * devices
  step = local * process_count
  for shape, members in buckets.items():
    for start in range(0, len(members), step):
      mine = members[start + process_index * local:start + (process_index + 1) * local]
      index = np.full((local,), -1, np.int32)
      index[:len(mine)] = mine
      image = np.zeros((local,) + shape, np.uint8)
      for j, i in enumerate(mine):
        image[j] = arrays[i]
      yield {"image": image.reshape((devices, per_device) + shape),
             "valid": (index >= 0).reshape(devices, per_device),
             "index": index.reshape(devices, per_device)}
