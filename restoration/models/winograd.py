"""Weight gradient of a stride-1 3x3 convolution by Winograd's minimal filtering F(4x4, 3x3).

Why (WORKSPACE, issue 17): on XLA:CPU the im2col weight gradient (`conv.weight_grad`) spends
more time building its 9x-sized patches than in the GEMM, and the GEMM itself runs at ~130
GFLOP/s. Winograd's F(4x4, 3x3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural
Networks", CVPR 2016) computes a 4x4 output tile from a 6x6 input tile with 36 products
instead of 144: the transformed input is 36/16 = 2.25x the input (not 9x), the GEMM work is
4x smaller, and the transforms are a few additions per element. For DnCNN's 64->64 layer at
128 x 40x40 it measured 2.0x faster than im2col, 1.4-3.8x at the U-Net's shapes from 16x16
maps up, 2x slower at 8x8 (`benchmarks/weight_grad.py`; WORKSPACE, issue 17).

In one tile, with d the 6x6 input tile, g the 3x3 filter and the constant matrices below,
    y = A^T [(G g G^T) * (B^T d B)] A          (4x4 output; * is elementwise)
so with U = G g G^T, V = B^T d B, the gradient of the loss with respect to g is
    dg = G^T dU G,   dU = sum over tiles of V * (A dy A^T)
and over channels each of the 36 tile positions k is a GEMM, dU[k] = V[k]^T @ dM[k] (c x o),
summed over tiles. Tiles are processed in chunks of whole images (a `lax.scan`; bands of tile
rows when one image exceeds the budget), so the transformed buffers stay small (in cache) and
peak memory does not grow with the batch.

Accuracy: float32 throughout, transforms with exact small-integer coefficients; G's 1/6 and
1/24 enter only the final 6x6 -> 3x3 reduction. Error against XLA's gradient, relative to its
largest entry: 2e-5 at DnCNN's shape (im2col 2e-5), up to 5e-6 at small maps where im2col's is
1e-6 (benchmarks/weight_grad.py, tests/test_winograd.py). Only float32 inputs take this path.
"""

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

M = 4                # output tile size
A = M + 2            # input tile size, for a 3-tap filter
_BT = np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], np.float64)
_G = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
               [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], np.float64)
_AT = np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0],
                [0, 1, -1, 8, -8, 1]], np.float64)


def applies(x_dtype, w_shape: Sequence[int], strides: Sequence[int],
            pads: Sequence[tuple[int, int]], dilation: Sequence[int]) -> bool:
  """True for float32 3x3 convolutions, stride 1, no dilation, non-negative padding."""
  return (jnp.dtype(x_dtype) == jnp.float32 and tuple(w_shape[:2]) == (3, 3)
          and tuple(strides) == (1, 1) and tuple(dilation) == (1, 1)
          and all(lo >= 0 and hi >= 0 for lo, hi in pads))


def _combine(coefs, terms):
  """sum(c * t) over the nonzero coefficients (small integers: exact in float32)."""
  out = None
  for cf, t in zip(coefs, terms):
    if cf == 0:
      continue
    t = t if cf == 1 else -t if cf == -1 else t * np.float32(cf)
    out = t if out is None else out + t
  return out


def _input_tiles(xp, th, tw):
  """B^T d B of every tile: padded input (n, M*(th+1), M*(tw+1), c) -> (36, n*th*tw, c).

  Tile (t, s) reads padded rows M*t .. M*t+5 and columns likewise; with the rows reshaped to
  (th+1, M), row M*t + i is [t + i // M, i % M]: plain slices, no strided ones. Rows first,
  then columns, each pass one stacked array (measured faster than 36 separate fusions, which
  XLA:CPU fed by recomputing the row pass)."""
  n, _, wp, c = xp.shape
  r = xp.reshape(n, th + 1, M, wp, c)
  rows = [r[:, i // M:i // M + th, i % M] for i in range(A)]               # (n, th, wp, c)
  rt = jnp.stack([_combine(_BT[u], rows) for u in range(A)])
  rt = rt.reshape(A, n, th, tw + 1, M, c)
  cols = [rt[:, :, :, j // M:j // M + tw, j % M] for j in range(A)]        # (A, n, th, tw, c)
  v = jnp.stack([_combine(_BT[k], cols) for k in range(A)], axis=1)        # (A, A, n, th, tw, c)
  return v.reshape(A * A, n * th * tw, c)


def _output_tiles(dyp, th, tw):
  """A dy A^T of every 4x4 output tile: (n, M*th, M*tw, o) -> (36, n*th*tw, o)."""
  n, _, _, o = dyp.shape
  d = dyp.reshape(n, th, M, tw, M, o)
  rt = jnp.stack([_combine(_AT[:, u], [d[:, :, p] for p in range(M)]) for u in range(A)])
  v = jnp.stack([_combine(_AT[:, k], [rt[:, :, :, :, q] for q in range(M)]) for k in range(A)],
                axis=1)                                                    # (A, A, n, th, tw, o)
  return v.reshape(A * A, n * th * tw, o)


def weight_grad(x: jax.Array, dy: jax.Array, w_shape: Sequence[int],
                pads: Sequence[tuple[int, int]], *, chunk_bytes: int,
                precision: Any = None) -> jax.Array:
  """float32 dL/dW (HWIO, 3x3) of a stride-1 NHWC convolution with explicit (lo, hi) `pads`.

  `x` (N, H, W, C) is the conv input, `dy` (N, Ho, Wo, O) the output gradient. The
  transformed input and output gradient of one scan step hold at most ~`chunk_bytes` (whole
  images when one fits, else bands of tile rows of one image)."""
  kh, kw, c, o = w_shape
  if (kh, kw) != (3, 3):
    raise ValueError(f"winograd.weight_grad is for 3x3 kernels, got {kh}x{kw}")
  n, h, w = x.shape[:3]
  ho, wo = dy.shape[1:3]
  th, tw = -(-ho // M), -(-wo // M)
  (plo, _), (qlo, _) = pads
  tile_row_bytes = A * A * tw * (c + o) * 4
  whole = th * tile_row_bytes <= chunk_bytes       # whole images per scan step, else bands
  bands = 1 if whole else -(-th // max(1, chunk_bytes // tile_row_bytes))
  band = -(-th // bands)      # balanced: the padding to whole bands stays under `bands` rows
  # One pad each (zeros past the conv's own padding meet only zero rows of dy): tile rows
  # rounded up to whole bands, plus the 2 rows/columns a 6x6 tile reaches past its 4x4.
  xp = jnp.pad(x, ((0, 0), (plo, M * (bands * band + 1) - h - plo),
                   (qlo, M * (tw + 1) - w - qlo), (0, 0)))
  dyp = jnp.pad(dy, ((0, 0), (0, M * bands * band - ho), (0, M * tw - wo), (0, 0)))

  def gemm(xc, dc, rows):
    v, d = _input_tiles(xc, rows, tw), _output_tiles(dc, rows, tw)
    return jnp.einsum("ktc,kto->kco", v, d, precision=precision,
                      preferred_element_type=jnp.float32)

  acc = jnp.zeros((A * A, c, o), jnp.float32)
  if whole:
    per = max(1, min(n, chunk_bytes // (th * tile_row_bytes)))
    full, rest = divmod(n, per)
    split = lambda a: a[:full * per].reshape((full, per) + a.shape[1:])
    if full:
      acc, _ = lax.scan(lambda s, xd: (s + gemm(xd[0], xd[1], th), None), acc,
                        (split(xp), split(dyp)))
    if rest:
      acc = acc + gemm(xp[full * per:], dyp[full * per:], th)
  else:
    def band_body(s, idx):
      i, b = idx // bands, idx % bands
      xc = lax.dynamic_slice(xp, (i, M * band * b, 0, 0), (1, M * (band + 1)) + xp.shape[2:])
      dc = lax.dynamic_slice(dyp, (i, M * band * b, 0, 0), (1, M * band) + dyp.shape[2:])
      return s + gemm(xc, dc, band), None

    acc, _ = lax.scan(band_body, acc, jnp.arange(n * bands))
  g = _G.astype(np.float32)
  return jnp.einsum("ai,abco,bj->ijco", g, acc.reshape(A, A, c, o), g,
                    precision=lax.Precision.HIGHEST)


__all__ = ["weight_grad", "applies"]
