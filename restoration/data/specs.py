"""`config.data.train` / `config.data.eval` spec strings -> opened sources (`open_source`).

The specs and the sources they name are documented in `restoration.data.sources`. This module
sits above `sources`, `pairs` and `tfds_source` so that none of them imports another in a
circle (pairs and tfds_source build on sources' base classes).
"""

from __future__ import annotations

import os

from restoration import datasets
from restoration.data import pairs
from restoration.data import sources
from restoration.data import tfds_source  # imports tensorflow_datasets only when opened

SPEC_PREFIXES = ("builtin", "builtin:color", "folder:PATH", "npz:GLOB", "tfds:NAME[:SPLIT]",
                 "pairs:INPUT_DIR,TARGET_DIR", "dataset:NAME")


def open_source(spec: str, channels: int, *, split: str = "train",
                tfds_data_dir: str = "") -> sources.Source:
  """Opens the source named by `spec`; `split` ('train' | 'eval') picks builtin's split."""
  channels = sources.check_channels(channels)
  spec = str(spec).strip()
  if spec in ("builtin", "builtin:color"):
    return sources.BuiltinSource(split, channels, color_only=spec == "builtin:color")
  kind, sep, arg = spec.partition(":")
  if sep and kind == "folder" and arg:
    return sources.FolderSource(arg, channels, spec)
  if sep and kind == "dataset" and arg:  # a registry set: its verified local copy
    return sources.FolderSource(datasets.locate(arg), channels, spec)
  if sep and kind == "npz" and arg:
    return sources.NpzSource(arg, channels, spec)
  if sep and kind == "pairs" and arg:
    return pairs.open_pairs(spec, arg, channels)
  if sep and kind == "tfds" and arg:
    name, _, tsplit = arg.partition(":")
    defaults = ("train",) if split == "train" else ("test", "validation", "train")
    return tfds_source.TfdsSource(name, tsplit or None, channels, tfds_data_dir, defaults, spec)
  raise ValueError(f"unknown data spec {spec!r}; valid specs: {', '.join(SPEC_PREFIXES)}")


def set_name(spec: str) -> str:
  """A short human name of the set a spec names: the folder (`folder:.../BSD68` -> 'BSD68'),
  the target folder of `pairs:`, the file(s) of `npz:`, `NAME[:SPLIT]` of tfds."""
  spec = str(spec).strip()
  if spec in ("builtin", "builtin:color"):
    return "builtin photos" + (" (colour)" if spec.endswith("color") else "")
  kind, _, arg = spec.partition(":")
  if kind == "dataset" and arg.strip().lower() in datasets.REGISTRY:
    return datasets.REGISTRY[arg.strip().lower()].title
  if kind == "pairs":
    arg = arg.split(",")[-1]
  if kind in ("folder", "pairs"):
    return os.path.basename(os.path.normpath(arg)) or arg
  if kind == "npz":
    parent = os.path.basename(os.path.dirname(arg))
    stem = os.path.basename(arg).removesuffix(".npz")
    return f"{parent}/{stem}" if parent else stem
  return arg or spec
