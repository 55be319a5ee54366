"""`tfds:NAME[:SPLIT]`: a PREPARED tensorflow-datasets dataset as a random-access Source.

Read with `tfds.data_source` (array_record or parquet, no TensorFlow needed); never downloads.
tensorflow_datasets is imported only when such a spec is opened (see `specs.open_source`).
"""

from __future__ import annotations

from typing import Sequence

from restoration.data.sources import Source, as_uint8_image


class TfdsSource(Source):
  """A prepared tensorflow-datasets dataset through `tfds.data_source` (never downloads)."""

  def __init__(self, name: str, split: str | None, channels: int, data_dir: str = "",
               default_splits: Sequence[str] = ("train",), spec: str | None = None):
    self.spec = spec or f"tfds:{name}" + (f":{split}" if split else "")
    self.channels = channels
    try:
      import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    except ImportError as e:
      raise ValueError(f"data spec {self.spec!r} needs tensorflow-datasets, which is not "
                       "installed; use folder:PATH or npz:GLOB instead") from e
    hint = ("This code never downloads: prepare the dataset elsewhere with "
            "`tfds.builder(NAME, data_dir=DIR).download_and_prepare(file_format='array_record')`"
            " and point data.tfds_data_dir at DIR, or export the images and use folder:PATH or "
            "npz:GLOB instead.")
    data_dir = data_dir or None
    try:
      builder = tfds.builder(name, data_dir=data_dir)
    except Exception as e:  # pylint: disable=broad-except
      raise ValueError(f"data spec {self.spec!r}: unknown tfds dataset {name!r}: "
                       f"{str(e).splitlines()[0]}. {hint}") from e
    if not builder.is_prepared():
      raise ValueError(f"data spec {self.spec!r}: tfds dataset {name!r} is not prepared in "
                       f"{builder.data_dir}. {hint}")
    splits = list(builder.info.splits.keys())  # empty only under tfds.testing.mock_data
    if split is None:
      split = next((s for s in default_splits if s in splits or not splits), None)
      if split is None:
        raise ValueError(f"data spec {self.spec!r}: none of the splits {list(default_splits)} "
                         f"exists; available: {splits}")
    if splits and split not in splits and split.split("[")[0] not in splits:
      raise ValueError(f"data spec {self.spec!r}: split {split!r} not found; available: "
                       f"{splits}")
    self.split = split
    self.tfds_name = name
    features = builder.info.features
    self.key = self._image_key(features)
    try:
      self._ds = tfds.data_source(name, split=split, data_dir=data_dir, download=False)
    except Exception as e:  # pylint: disable=broad-except
      raise ValueError(f"data spec {self.spec!r}: cannot open {name!r} for random access: "
                       f"{e}. {hint}") from e
    if len(self._ds) == 0:
      raise ValueError(f"data spec {self.spec!r}: split {split!r} is empty")
    shape = tuple(features[self.key].shape)
    self._static_hw = shape[:2] if len(shape) >= 2 and None not in shape[:2] else None

  def _image_key(self, features) -> str:
    keys = list(features.keys())
    for k in ("image", "hr"):
      if k in keys:
        return k
    for k in keys:
      shape = getattr(features[k], "shape", ())
      if len(shape) == 3 and shape[-1] in (1, 3, 4):
        return k
    raise ValueError(f"data spec {self.spec!r}: no image feature among {keys}")

  def __len__(self) -> int:
    return len(self._ds)

  def name(self, i: int) -> str:
    return f"{self.tfds_name}:{self.split}[{i}]"

  def sizes(self):
    return None if self._static_hw is None else [self._static_hw] * len(self)

  def __getitem__(self, i):
    return as_uint8_image(self._ds[int(i)][self.key], self.channels, self.name(i))


# ---------------------------------------------------------------------------------------------
# Spec parsing
# ---------------------------------------------------------------------------------------------
