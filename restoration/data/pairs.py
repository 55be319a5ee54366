"""Paired data: `pairs:INPUT_DIR,TARGET_DIR`, (degraded input, original target) image pairs.

Files are matched by stem: the path relative to each folder without its extension, so
`in/a/001.jpg` pairs with `out/a/001.png`. A name on one side only is an error listing them.

Each item is ONE uint8 array, the input's channels followed by the target's
(H, W, 2 * channels), so everything downstream of a source treats a pair as one image: the
grain pipeline's crop offsets and dihedral transform, the device-resident sampler, eval
centre crops and shape buckets all act on both halves at once, which keeps them aligned by
construction. `split_pair` takes the halves apart on the device.

Sizes: a pair must have the same size, except that an input smaller than its target by an even
number of pixels per axis (a 'valid' convolution, as Levin et al.'s blurred images) is paired
with the target's centre crop of the input's size.
"""

from __future__ import annotations

import os

import numpy as np

from restoration.data import sources as sources_lib

_SHOWN = 8  # unmatched names listed in the error


def _stem(rel: str) -> str:
  return os.path.splitext(rel.replace(os.sep, "/"))[0]


def _centre_crop_offsets(spec: str, name: str, inp: tuple[int, int], tgt: tuple[int, int]
                         ) -> tuple[int, int]:
  dy, dx = tgt[0] - inp[0], tgt[1] - inp[1]
  if dy < 0 or dx < 0 or dy % 2 or dx % 2:
    raise ValueError(
        f"data spec {spec!r}: pair {name!r} has input {inp[0]}x{inp[1]} and target "
        f"{tgt[0]}x{tgt[1]}; sizes must match, or the input be smaller by an even number of "
        "pixels per axis ('valid' convolution: the target's centre crop is used)")
  return dy // 2, dx // 2


class PairedSource(sources_lib._DecodedSource):  # pylint: disable=protected-access
  """(input, target) pairs of two folders matched by stem, as (H, W, 2 * channels) arrays."""

  def __init__(self, input_dir: str, target_dir: str, channels: int, spec: str | None = None):
    self.spec = spec or f"pairs:{input_dir},{target_dir}"
    self.image_channels = sources_lib.check_channels(channels)
    self.channels = 2 * self.image_channels  # what the pipelines see: both halves
    self.inputs = sources_lib.FolderSource(input_dir, channels, self.spec)
    self.targets = sources_lib.FolderSource(target_dir, channels, self.spec)
    by_stem = [{_stem(f): i for i, f in enumerate(s.files)} for s in (self.inputs, self.targets)]
    for side, source, mine in (("input", self.inputs, by_stem[0]),
                               ("target", self.targets, by_stem[1])):
      if len(mine) != len(source.files):
        raise ValueError(f"data spec {self.spec!r}: two {side} files share a stem (e.g. a.png "
                         "and a.jpg); stems must be unique")
    only_in, only_tg = sorted(set(by_stem[0]) - set(by_stem[1])), sorted(
        set(by_stem[1]) - set(by_stem[0]))
    if only_in or only_tg:
      show = lambda names: f"{names[:_SHOWN]}" + (f" (+{len(names) - _SHOWN} more)"
                                                  if len(names) > _SHOWN else "")
      raise ValueError(
          f"data spec {self.spec!r}: files are paired by name without extension; "
          f"{len(only_in)} input(s) have no target: {show(only_in)}; {len(only_tg)} target(s) "
          f"have no input: {show(only_tg)}")
    self.stems = sorted(by_stem[0])
    self.index = [(by_stem[0][s], by_stem[1][s]) for s in self.stems]
    self._sizes, self.offsets = [], []
    for stem, (i, t) in zip(self.stems, self.index):
      inp, tgt = self.inputs._sizes[i], self.targets._sizes[t]  # pylint: disable=protected-access
      self.offsets.append(_centre_crop_offsets(self.spec, stem, inp, tgt))
      self._sizes.append(inp)

  def __len__(self) -> int:
    return len(self.stems)

  def name(self, i: int) -> str:
    return self.stems[i]

  def _decode(self, i: int) -> np.ndarray:
    a, b = self.index[i]
    inp = self.inputs._decode(a)  # pylint: disable=protected-access
    tgt = self.targets._decode(b)  # pylint: disable=protected-access
    (h, w), (y, x) = inp.shape[:2], self.offsets[i]
    return np.concatenate([inp, tgt[y:y + h, x:x + w]], axis=-1)


def open_pairs(spec: str, arg: str, channels: int) -> PairedSource:
  """`pairs:INPUT_DIR,TARGET_DIR` (the part after `pairs:` is `arg`)."""
  parts = arg.split(",")
  if len(parts) != 2 or not all(p.strip() for p in parts):
    raise ValueError(f"data spec {spec!r}: expected pairs:INPUT_DIR,TARGET_DIR (two folders, "
                     "comma-separated)")
  return PairedSource(parts[0].strip(), parts[1].strip(), channels, spec)


def split_pair(images, channels: int):
  """(input, target) halves of stacked pairs [..., 2 * channels] (numpy or jax)."""
  if images.shape[-1] != 2 * channels:
    raise ValueError(f"expected stacked pairs with {2 * channels} channels, got shape "
                     f"{images.shape}")
  return images[..., :channels], images[..., channels:]
