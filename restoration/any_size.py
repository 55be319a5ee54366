"""Running a trained restoration model on images of any size.

Everything here takes the model as a plain function ``apply_fn(images) -> restored`` on float32
NHWC arrays in [0, 1] (the caller binds parameters, e.g. ``functools.partial(model.apply,
{'params': params})``, and usually wraps it in ``jax.jit``). Only `image_ops` (padding,
dihedral transforms) is imported from ``restoration``.

Three problems are handled:

* **Shape constraints.** A model may need H and W to be multiples of ``multiple`` (16 for a
  4-level U-Net). `image_ops.pad_to_multiple` / `image_ops.crop` pad bottom/right (reflect) and crop back.
* **Recompilation.** ``jax.jit`` keeps one compiled executable *per input shape* (and dtype), so
  an evaluation set with 100 distinct image sizes compiles 100 times. `image_ops.bucket_shape` rounds
  the padded shape up to a coarser ``bucket`` (e.g. 64) so the set compiles **once per shape
  bucket, not once per image**; :class:`CompileCounter` / :func:`jit_cache_size` let tests check it.
* **Memory.** :func:`tiled_apply` runs fixed-size overlapping tiles (so the model compiles once
  for the tile shape, whatever the image size) and blends them with a window that makes the result
  *exactly* equal to the untiled output for models whose receptive-field radius is at most
  ``overlap // 2`` (see :func:`tiled_apply` for why).

:func:`self_ensemble` is the x8 flip/rotate geometric self-ensemble (EDSR / BasicSR), and
`apply` is the single entry point used by the evaluator and ``launch.py --mode=restore``.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Optional, Tuple, Union

import jax
import jax.numpy as jnp
import numpy as np

from restoration import image_ops

ApplyFn = Callable[[Any], Any]
Array = Any  # numpy or jax array

__all__ = [
    "self_ensemble",
    "tiled_apply",
    "blend_window",
    "tile_starts",
    "apply",
    "CompileCounter",
    "jit_cache_size",
]


# --------------------------------------------------------------------------------------------
# Geometric self-ensemble
# --------------------------------------------------------------------------------------------


def self_ensemble(apply_fn: ApplyFn, images: Array) -> jax.Array:
  """x8 geometric self-ensemble (EDSR / BasicSR "x8" test-time augmentation).

  Applies ``apply_fn`` to the 8 dihedral transforms of ``images`` (identity, 3 rotations by
  90 degrees, and the same 4 after a horizontal flip), maps each output back with the inverse
  transform and averages them. Written with ``jnp`` so the whole thing can be ``jax.jit``-ed.

  Non-square images work, but a 90/270 degree rotation turns H x W into W x H: ``apply_fn``
  must accept both shapes (a jitted model then compiles twice per bucket; use square buckets
  or tiles to avoid that). The 8 outputs are summed pairwise, so for a model that commutes
  with flips/rotations (e.g. a pointwise function) the result equals ``apply_fn(images)``
  bit for bit.
  """
  x = jnp.asarray(images)
  outs = [image_ops.dihedral_inverse(apply_fn(image_ops.dihedral(x, k)), k) for k in range(8)]
  while len(outs) > 1:  # pairwise: (a+b)+(c+d) ... exact for identical terms
    outs = [outs[i] + outs[i + 1] for i in range(0, len(outs), 2)]
  return outs[0] * 0.125


# --------------------------------------------------------------------------------------------
# Tiled inference
# --------------------------------------------------------------------------------------------


def tile_starts(length: int, tile: int, overlap: int) -> list:
  """Start offsets of tiles of size ``tile`` covering ``length`` with at least ``overlap``.

  Regular stride ``tile - overlap``; the last tile is shifted inward to end exactly at
  ``length`` (so it overlaps its neighbour by more than ``overlap``) instead of being ragged.
  """
  if length <= tile:
    return [0]
  stride = tile - overlap
  return list(range(0, length - tile, stride)) + [length - tile]


def blend_window(length: int, overlap: int, *, low_border: bool, high_border: bool) -> np.ndarray:
  """1-D blending weights for one tile axis (float32, shape ``[length]``).

  With ``m = overlap // 2``, the weight is exactly 0 on the outer ``m`` pixels of every edge
  that faces a neighbouring tile, rises with a raised cosine over the next ``overlap - m``
  pixels and is 1 in the middle. Edges on the image border (``low_border`` / ``high_border``)
  are not tapered at all. The 2-D window is the outer product of the two axes' windows.
  """
  w = np.ones(length, np.float64)
  if overlap > 0:
    m = overlap // 2
    d = np.arange(length, dtype=np.float64) + 0.5  # pixel-centre distance to the low edge

    def ramp(dist):
      t = np.clip((dist - m) / (overlap - m), 0.0, 1.0)
      return 0.5 - 0.5 * np.cos(np.pi * t)

    if not low_border:
      w = w * ramp(d)
    if not high_border:
      w = w * ramp(length - d)
  return w.astype(np.float32)


def _pair(v) -> Tuple[int, int]:
  if isinstance(v, (tuple, list)):
    return int(v[0]), int(v[1])
  return int(v), int(v)


def tiled_apply(
    apply_fn: ApplyFn,
    image_or_batch: Array,
    *,
    tile: Union[int, Tuple[int, int]],
    overlap: int,
    batch_tiles: int = 8,
) -> np.ndarray:
  """Run ``apply_fn`` over overlapping fixed-size tiles and blend them (for big images).

  (Long for its docstring: the exactness argument below belongs next to the code.)

  Args:
    apply_fn: ``[B, th, tw, C] -> [B, th, tw, C']`` (same spatial size), usually jitted.
    image_or_batch: ``[H, W, C]`` or ``[N, H, W, C]`` (images of a batch are done one by one).
    tile: tile size (int, or ``(th, tw)``). Images smaller than a tile along an axis are
      reflect-padded up to it (a single tile), and the padding is cropped off again.
    overlap: minimum overlap between neighbouring tiles, ``0 <= overlap < tile``.
    batch_tiles: tiles per ``apply_fn`` call. The last batch is padded (with copies of its
      last tile) to ``batch_tiles`` so that ``apply_fn`` always sees **one** shape
      ``[batch_tiles, th, tw, C]`` and compiles once, for every image size.

  Returns:
    float32 numpy array with the input's shape (channels from the model output).

  Tiling: starts at ``0, s, 2s, ...`` with stride ``s = tile - overlap``; the last tile is
  shifted inward to end at the image edge (no ragged tiles), so it overlaps its neighbour by
  more than ``overlap``.

  Blending (:func:`blend_window`): each tile's output is weighted by a separable window that is
  **exactly zero on the outer m = overlap // 2 pixels of every edge facing another tile**,
  rises as a raised cosine over the rest of the overlap, and is untapered on edges lying on
  the image border. The output is ``sum(w * tile_out) / sum(w)``.

  Why this is exact: near an interior tile edge the model sees its own padding (zeros or
  reflection) instead of the real neighbouring pixels, so a model with receptive-field radius
  ``r`` gets the outer ``r`` pixels of the tile wrong and everything further in right (for a
  translation-equivariant model). If ``r <= m``, every pixel with non-zero weight is exact, and
  a normalised weighted average of identical values is that value. The weights never vanish
  inside the image: neighbours overlap by ``>= overlap >= 2m``, so where one tile's weight is 0
  the other is at least ``m`` pixels in from its own edge and positive (and the windows being
  separable over a grid of tiles extends this to 2-D). At the image border the tile edge *is*
  the image edge, where the untiled model pads the same way, so those pixels are exact and
  keep full weight. For models with larger receptive fields (deep U-Nets) the result is an
  approximation whose transitions are smooth rather than seams; models that downsample are
  only shift-equivariant by multiples of their total stride, so keep ``tile``, ``overlap`` and
  the image size multiples of it (:func:`apply` does this).
  """
  th, tw = _pair(tile)
  overlap = int(overlap)
  if th <= 0 or tw <= 0:
    raise ValueError(f"tile must be positive, got {tile}")
  if not 0 <= overlap < min(th, tw):
    raise ValueError(f"need 0 <= overlap < tile, got overlap={overlap}, tile={tile}")
  if batch_tiles < 1:
    raise ValueError(f"batch_tiles must be >= 1, got {batch_tiles}")

  arr = np.asarray(image_or_batch, dtype=np.float32)
  if arr.ndim == 3:
    return _tiled_single(apply_fn, arr, th, tw, overlap, batch_tiles)
  if arr.ndim != 4:
    raise ValueError(f"expected HWC or NHWC, got shape {arr.shape}")
  return np.stack([_tiled_single(apply_fn, im, th, tw, overlap, batch_tiles) for im in arr])


def _tiled_single(
    apply_fn, image: np.ndarray, th: int, tw: int, overlap: int, batch_tiles: int
) -> np.ndarray:
  h, w = image.shape[:2]
  H, W = max(h, th), max(w, tw)
  padded = image_ops.pad_to_shape(image, (H, W))
  ys, xs = tile_starts(H, th, overlap), tile_starts(W, tw, overlap)
  wy = {y: blend_window(th, overlap, low_border=y == 0, high_border=y + th == H) for y in ys}
  wx = {x: blend_window(tw, overlap, low_border=x == 0, high_border=x + tw == W) for x in xs}
  positions = [(y, x) for y in ys for x in xs]

  acc = wsum = None

  def accumulate(result, batch_pos):
    nonlocal acc, wsum
    result = np.asarray(result, dtype=np.float32)
    if result.shape[1:3] != (th, tw):
      raise ValueError(f"apply_fn changed the tile size: {(th, tw)} -> {result.shape[1:3]}")
    if acc is None:
      acc = np.zeros((H, W, result.shape[-1]), np.float32)
      wsum = np.zeros((H, W, 1), np.float32)
    for out, (y, x) in zip(result, batch_pos):
      win = (wy[y][:, None] * wx[x][None, :])[..., None]
      acc[y : y + th, x : x + tw] += win * out
      wsum[y : y + th, x : x + tw] += win

  pending = None  # overlap host-side blending with the next device call (async dispatch)
  for start in range(0, len(positions), batch_tiles):
    batch_pos = positions[start : start + batch_tiles]
    tiles = [padded[y : y + th, x : x + tw] for y, x in batch_pos]
    tiles += [tiles[-1]] * (batch_tiles - len(tiles))  # constant batch shape
    result = apply_fn(np.stack(tiles))
    if pending is not None:
      accumulate(*pending)
    pending = (result, batch_pos)
  accumulate(*pending)
  return (acc / wsum)[:h, :w]


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------

_self_ensemble = self_ensemble


def apply(
    apply_fn: ApplyFn,
    images: Array,
    *,
    multiple: int = 1,
    tile: int = 0,
    overlap: int = 32,
    self_ensemble: bool = False,
    bucket: Optional[int] = None,
    batch_tiles: int = 8,
) -> np.ndarray:
  """Applies ``apply_fn`` to ``images`` of any size; the evaluator's and restore mode's entry.

  (Long for its docstring: every option's effect on compilation is spelled out.)

  Args:
    apply_fn: the model, ``[N, H, W, C] -> [N, H, W, C]``. Pass a **jitted** function and keep
      passing the same object: ``jax.jit`` caches one executable per input shape, so with
      bucketing (or tiling) the number of compilations is bounded by the number of shape
      buckets (tiled: one shape, ``[batch_tiles, tile, tile, C]``).
    images: float32 ``[N, H, W, C]`` (or ``[H, W, C]``) in [0, 1], numpy or jax.
    multiple: H and W the model needs to be multiples of (e.g. 16 for a 4-level U-Net).
    tile: 0 runs the whole (padded) image at once; > 0 runs :func:`tiled_apply` with square
      tiles of this size. ``tile`` and ``overlap`` are rounded up to multiples of ``multiple``
      and the image is padded to a multiple, so every tile starts on the model's
      downsampling grid.
    overlap: tile overlap (only with ``tile > 0``); exact for receptive radius <= overlap // 2.
    self_ensemble: use the x8 flip/rotate :func:`self_ensemble` (8x the compute). Untiled
      non-square inputs also run at the transposed shape (2 compilations per bucket); tiles
      are square so tiling + ensemble still compiles once.
    bucket: untiled only — round the padded shape up to multiples of ``bucket`` (see
      `image_ops.bucket_shape`) so many image sizes share one compiled shape.
    batch_tiles: tiles per model call when tiling.

  Returns:
    float32 numpy array with the same shape as ``images`` (unclipped model output).
  """
  arr = np.asarray(images, dtype=np.float32)
  single = arr.ndim == 3
  if single:
    arr = arr[None]
  if arr.ndim != 4:
    raise ValueError(f"expected NHWC or HWC images, got shape {np.shape(images)}")
  h, w = arr.shape[1:3]
  multiple = max(int(multiple), 1)

  if self_ensemble:
    fn = lambda x: _self_ensemble(apply_fn, x)  # noqa: E731
  else:
    fn = apply_fn

  if tile and tile > 0:
    tile_r = image_ops.round_up(tile, multiple)
    overlap_r = image_ops.round_up(overlap, multiple) if overlap > 0 else 0
    if overlap_r >= tile_r:
      raise ValueError(
          f"overlap {overlap} (rounded to {overlap_r}) must be smaller than "
          f"tile {tile} (rounded to {tile_r}) for multiple={multiple}"
      )
    padded, hw = image_ops.pad_to_multiple(arr, multiple)
    out = tiled_apply(fn, padded, tile=tile_r, overlap=overlap_r, batch_tiles=batch_tiles)
  else:
    H, W = image_ops.bucket_shape(h, w, multiple=multiple, bucket=bucket)
    padded = image_ops.pad_to_shape(arr, (H, W))
    out = np.asarray(fn(padded), dtype=np.float32)
  out = np.asarray(image_ops.crop(out, (h, w)), dtype=np.float32)
  return out[0] if single else out


# --------------------------------------------------------------------------------------------
# Compilation accounting
# --------------------------------------------------------------------------------------------


def _signature(args, kwargs):
  leaves = jax.tree.leaves((args, kwargs))
  return tuple((tuple(np.shape(x)), str(getattr(x, "dtype", type(x).__name__))) for x in leaves)


class CompileCounter:
  """Wraps a function and counts the distinct input signatures (shapes + dtypes) it sees.

  That is the number of compilations ``jax.jit`` would do for those calls (one per signature),
  so ``apply(CompileCounter(jitted), ...)`` can check "compile once per bucket" without
  relying on jax internals. ``jit_cache_size()`` additionally reports the wrapped jitted
  function's real cache size when this jax exposes it (``_cache_size``, present in 0.10).
  """

  def __init__(self, fn: Callable):
    self.fn = fn
    self.signatures: set = set()
    self.calls = 0

  def __call__(self, *args, **kwargs):
    self.signatures.add(_signature(args, kwargs))
    self.calls += 1
    return self.fn(*args, **kwargs)

  @property
  def count(self) -> int:
    """Distinct input signatures seen (== compilations for a jitted ``fn``)."""
    return len(self.signatures)

  @property
  def shapes(self) -> list:
    return sorted(tuple(s for s, _ in sig) for sig in self.signatures)

  def jit_cache_size(self) -> Optional[int]:
    return jit_cache_size(self.fn)


def jit_cache_size(fn: Callable) -> Optional[int]:
  """Number of executables cached by a ``jax.jit``-ed function, or None if unavailable.

  ``functools.partial`` wrappers are looked through, so ``partial(jax.jit(model.apply),
  variables)`` works (the recommended way to bind parameters: jit first, then bind, so the
  parameters are arguments rather than compile-time constants).
  """
  while isinstance(fn, functools.partial):
    fn = fn.func
  size = getattr(fn, "_cache_size", None)
  if size is None:
    return None
  try:
    return int(size())
  except Exception:  # pragma: no cover - private API may change
    return None
