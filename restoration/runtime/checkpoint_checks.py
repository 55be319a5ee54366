"""What makes a saved checkpoint usable, checked without Orbax's managers: its bytes
(`sha256.json`, the SHA-256 of every file), finite values, and a state layout that fits the
config (`layout`: the arrays by path, from a state or from Orbax's metadata of a saved one).
`runtime.checkpoints` applies them; a damaged checkpoint is set aside, a layout that does not
fit is a config change (`StateMismatch`) and never is.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import jax
import numpy as np

MANIFEST = "sha256.json"


class StateMismatch(ValueError):
  """A checkpoint holds a training state of another structure than the config builds: a
  config change (e.g. optimizer.grad_clip_norm added), never damage, so it is never moved to
  broken/. `stored` / `wanted` are the two `layout()`s."""

  def __init__(self, step_dir: str, step: int, stored: dict, wanted: dict):
    self.step_dir, self.step, self.stored, self.wanted = step_dir, int(step), stored, wanted
    super().__init__(f"checkpoint {step_dir} holds a training state of another structure "
                     f"than this config builds ({layout_diff(stored, wanted)})")


def layout(tree: Any) -> dict[str, tuple[tuple[int, ...], str]]:
  """{'opt_state/0/mu/conv0/kernel': (shape, dtype), ...}: the arrays of a state (or of
  Orbax's metadata of a saved one) by their path as Orbax stores them."""
  return {jax.tree_util.keystr(path, simple=True, separator="/"):
          (tuple(leaf.shape), np.dtype(leaf.dtype).name)
          for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def layout_diff(stored: dict, wanted: dict, limit: int = 2) -> str:
  """A short description of how two layouts differ."""
  parts = []
  for label, keys in (("only in the checkpoint", sorted(set(stored) - set(wanted))),
                      ("only in this config", sorted(set(wanted) - set(stored))),
                      ("shape/dtype differs", sorted(k for k in set(stored) & set(wanted)
                                                      if stored[k] != wanted[k]))):
    if keys:
      more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
      parts.append(f"{label}: {', '.join(keys[:limit])}{more}")
  return "; ".join(parts)


def one_line(e: BaseException) -> str:
  lines = str(e).strip().splitlines()
  return f"{type(e).__name__}: {lines[0] if lines else ''}"[:300]


def _file_hashes(step_dir: str) -> dict[str, str]:
  out = {}
  for root, dirs, files in os.walk(step_dir):
    dirs.sort()
    for name in sorted(files):
      path = os.path.join(root, name)
      rel = os.path.relpath(path, step_dir)
      if rel.startswith(MANIFEST):  # the manifest itself, or its temporary file
        continue
      digest = hashlib.sha256()
      with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
          digest.update(block)
      out[rel] = digest.hexdigest()
  return out


def write_manifest(step_dir: str) -> None:
  """Writes `step_dir/sha256.json` (atomically) for a complete checkpoint."""
  hashes = _file_hashes(step_dir)
  tmp = os.path.join(step_dir, MANIFEST + ".tmp")
  with open(tmp, "w") as f:
    json.dump(hashes, f, indent=0, sort_keys=True)
  os.replace(tmp, os.path.join(step_dir, MANIFEST))


def verify_manifest(step_dir: str) -> str | None:
  """Why `step_dir` fails its checksums (missing/changed/extra file), or None if it passes.

  A checkpoint without a manifest (killed between Orbax's commit and the manifest) passes
  here; Orbax's reading and the finiteness check still apply.
  """
  path = os.path.join(step_dir, MANIFEST)
  if not os.path.exists(path):
    return None
  try:
    with open(path) as f:
      expected = json.load(f)
  except (OSError, ValueError) as e:
    return f"unreadable {MANIFEST}: {one_line(e)}"
  actual = _file_hashes(step_dir)
  for rel, digest in sorted(expected.items()):
    if rel not in actual:
      return f"file {rel} missing"
    if actual[rel] != digest:
      return f"file {rel} fails its checksum"
  return None


def nonfinite(tree: Any) -> list[str]:
  """Paths of the float leaves of `tree` holding NaN or inf (host or device arrays)."""
  bad = []
  for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
    a = np.asarray(leaf)
    if np.issubdtype(a.dtype, np.inexact) and not np.isfinite(a).all():
      bad.append(jax.tree_util.keystr(path))
  return bad

