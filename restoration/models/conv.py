"""A drop-in `flax.linen.Conv` whose training gradients are fast on XLA:CPU.

Why: on XLA:CPU the weight gradient of a 3x3 convolution (a convolution of the input with
the output gradient, which XLA lowers to a generic, poorly blocked loop) runs ~3x slower
than the forward pass, while a plain GEMM of the same FLOPs runs at full speed. Here the
weight gradient is an im2col GEMM instead: the kh*kw shifted (strided, dilated) views of
the padded input, stacked channel-major, times the output gradient, `dW = patches @ dy` (for
wide layers on small maps NHWC patches and `dy^T @ patches`: `channels_last`), in
bounded-memory chunks (a `lax.scan` over batch chunks, and over bands of output rows when one
image alone exceeds the budget). The forward pass and the input gradient stay XLA's own
convolution, but for many narrow images (DnCNN's 128 patches of 40x40) it runs on a mosaic of
them side by side (`_to_mosaic`): XLA:CPU's convolution of narrow images ran at ~40% of its
speed on wide ones. Measured numbers:
`benchmarks/train_step.py`, `benchmarks/torch_peer.py`, `benchmarks/conv_layer.py`.

`Conv` has the same fields, parameter names and shapes as `flax.linen.Conv` (it *is* one,
with `conv_general_dilated` defaulting to the function below), so checkpoints and parameter
counts do not change. The fast path is chosen at trace time when `jax.default_backend() ==
'cpu'`, the convolution is 2-D NHWC/HWIO with no input dilation and no feature groups;
everything else (GPU/TPU, depthwise, transposed) calls `lax.conv_general_dilated`.

Switch (read at trace time): `RESTORATION_FAST_CPU_CONV=auto` (default) takes the fast path
only when the weight gradient is at least MIN_FAST_GFLOP of work: for tiny convs (test
models, quick variants) the scan over chunks costs more than it saves, and their numbers stay
XLA's own; `1` takes it wherever it applies, `0` never. `RESTORATION_CONV_CHUNK_MB` (default 8)
bounds the im2col (or Winograd) buffer of one chunk. On the fast path the weight gradient of
a float32 3x3 stride-1 conv on maps of 16x16 and up is Winograd's F(4x4, 3x3)
(`restoration.models.winograd`, 1.4-3.8x faster than im2col there);
`RESTORATION_CONV_WEIGHT_GRAD=im2col|winograd|auto` overrides that (`weight_grad_method`).
"""

import functools
import os
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from restoration.models import winograd

_NHWC = lax.conv_dimension_numbers((1, 1, 1, 1), (1, 1, 1, 1), ("NHWC", "HWIO", "NHWC"))
_DEFAULT_CHUNK_MB = 8.0


MIN_FAST_GFLOP = 0.5  # weight-gradient work below which XLA's own path is kept ('auto')
MOSAIC_WIDTH = 2048   # widest mosaic row, in columns (see `_to_mosaic`)


def _mode() -> str:
  flag = os.environ.get("RESTORATION_FAST_CPU_CONV", "auto").strip().lower()
  modes = {"auto": "auto", "": "auto", "1": "on", "true": "on", "on": "on", "0": "off",
           "false": "off", "off": "off"}
  if flag not in modes:
    raise ValueError(f"RESTORATION_FAST_CPU_CONV={flag!r}; allowed: auto, 0/1, false/true, "
                     "off/on")
  return modes[flag]


def fast_path_enabled() -> bool:
  """True when convs traced now may use the im2col weight gradient (CPU backend, switch on)."""
  return _mode() != "off" and jax.default_backend() == "cpu"


def _worth_it(lhs_shape, rhs_shape, strides) -> bool:
  """'auto': the weight gradient's GEMM is big enough for the fast path to pay."""
  if _mode() == "on":
    return True
  n, h, w, _ = lhs_shape
  kh, kw, cin, cout = rhs_shape
  gflop = 2.0 * n * (h // strides[0]) * (w // strides[1]) * kh * kw * cin * cout / 1e9
  return gflop >= MIN_FAST_GFLOP


WEIGHT_GRADS = ("auto", "winograd", "im2col")


def weight_grad_method(x: jax.Array, w_shape, strides, pads, dilation) -> str:
  """'winograd' or 'im2col': how the fast path computes this conv's weight gradient.

  Switch RESTORATION_CONV_WEIGHT_GRAD (read at trace time): `auto` (default) takes Winograd
  F(4x4, 3x3) (`restoration.models.winograd`) where it applies (float32 3x3, stride 1,
  undilated) on output maps of at least 16x16, `winograd` wherever it applies, `im2col` never.
  Why (`benchmarks/weight_grad.py`, WORKSPACE, issue 17): 1.4-3.8x faster than im2col at
  DnCNN's shape and every U-Net 3x3 shape from 16x16 up; 2x slower at 8x8 (two tiles a side:
  the transforms cost more than the GEMM work they save)."""
  flag = os.environ.get("RESTORATION_CONV_WEIGHT_GRAD", "auto").strip().lower() or "auto"
  if flag not in WEIGHT_GRADS:
    raise ValueError(f"RESTORATION_CONV_WEIGHT_GRAD={flag!r}; allowed: {', '.join(WEIGHT_GRADS)}")
  if flag == "im2col" or not winograd.applies(x.dtype, w_shape, strides, pads, dilation):
    return "im2col"
  ho, wo = (x.shape[i + 1] + lo + hi - 2 for i, (lo, hi) in enumerate(pads))
  return "winograd" if flag == "winograd" or min(ho, wo) >= 16 else "im2col"


def _chunk_bytes() -> int:
  raw = os.environ.get("RESTORATION_CONV_CHUNK_MB", str(_DEFAULT_CHUNK_MB))
  try:
    mb = float(raw)
  except ValueError:
    mb = -1.0
  if mb <= 0:
    raise ValueError(f"RESTORATION_CONV_CHUNK_MB={raw!r}; allowed: a positive number of MiB")
  return int(mb * 2 ** 20)


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None, feature_group_count=1,
                         batch_group_count=1, precision=None, preferred_element_type=None):
  """`lax.conv_general_dilated` with the im2col weight gradient where it applies (see top)."""
  nd = lhs.ndim - 2
  lhs_dilation = tuple(lhs_dilation or (1,) * nd)
  rhs_dilation = tuple(rhs_dilation or (1,) * nd)
  dn = lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
  plain = functools.partial(
      lax.conv_general_dilated, window_strides=window_strides, padding=padding,
      lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation, dimension_numbers=dn,
      feature_group_count=feature_group_count, batch_group_count=batch_group_count,
      precision=precision, preferred_element_type=preferred_element_type)
  if (nd != 2 or dn != _NHWC or any(d != 1 for d in lhs_dilation) or feature_group_count != 1
      or batch_group_count != 1 or preferred_element_type is not None
      or not fast_path_enabled() or not _worth_it(lhs.shape, rhs.shape, window_strides)):
    return plain(lhs, rhs)
  if isinstance(padding, str):
    dilated = [(k - 1) * d + 1 for k, d in zip(rhs.shape[:2], rhs_dilation)]
    pads = lax.padtype_to_pads(lhs.shape[1:3], dilated, window_strides, padding)
  else:
    pads = padding
  pads = tuple((int(lo), int(hi)) for lo, hi in pads)
  per = mosaic_tiles(lhs.shape, rhs.shape, tuple(window_strides), pads, rhs_dilation)
  return _conv(lhs, rhs, tuple(window_strides), pads, rhs_dilation, precision,
               _chunk_bytes(), per)


def mosaic_tiles(lhs_shape, rhs_shape, strides, pads, dilation) -> int:
  """Images per mosaic row for this conv under the current switch, when it takes the fast path
  at all (1: no mosaic; only 'SAME' stride-1 undilated convs qualify). See `_to_mosaic`."""
  n, _, w, c = lhs_shape
  kh, kw, _, o = rhs_shape
  same = all(k % 2 == 1 and tuple(p) == ((k - 1) // 2,) * 2 for k, p in zip((kh, kw), pads))
  if strides != (1, 1) or tuple(dilation) != (1, 1) or not same or n < 2:
    return 1
  # 'auto': only where XLA:CPU was measured slow and the mosaic faster (WORKSPACE, issue 17):
  # many narrow images with few channels (DnCNN's 128 of 40x40x64: forward and input gradient
  # ~1.5x faster); at the U-Net's shapes (batch 8, or 128+ channels) it was slower.
  if _mode() == "auto" and not (n >= 16 and w <= 96 and max(c, o) <= 64):
    return 1
  fits = [d for d in range(2, n + 1) if n % d == 0 and d * (w + kw - 1) <= MOSAIC_WIDTH]
  return max(fits, default=1)


def _to_mosaic(x, per, ph, pw):
  """(n, h, w, c) -> (n/per, h+2ph, per*(w+2pw), c): each image with its own zero border,
  `per` of them side by side. Why: XLA:CPU's convolution of many narrow images ran at ~40% of
  its speed on wide ones; a 'SAME' conv of the mosaic equals the per-image convs on the
  tiles' interiors (the kernel reaches no further than the border), the rest is cropped."""
  n, h, w, c = x.shape
  xp = jnp.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
  xp = xp.reshape(n // per, per, h + 2 * ph, w + 2 * pw, c).transpose(0, 2, 1, 3, 4)
  return xp.reshape(n // per, h + 2 * ph, per * (w + 2 * pw), c)


def _from_mosaic(y, per, ph, pw, h, w):
  """Inverse of `_to_mosaic` for the conv output: the per-image interiors, (n, h, w, o)."""
  g, hp, _, o = y.shape
  y = y.reshape(g, hp, per, w + 2 * pw, o).transpose(0, 2, 1, 3, 4)
  return y.reshape(g * per, hp, w + 2 * pw, o)[:, ph:ph + h, pw:pw + w]


def _xla_conv(x, w, strides, pads, dilation, precision, per):
  """XLA's own convolution; of the mosaic of `x` (`per` images a row) when per > 1."""
  (ph, _), (pw, _) = pads
  y = lax.conv_general_dilated(x if per == 1 else _to_mosaic(x, per, ph, pw), w, strides,
                               pads, rhs_dilation=dilation, dimension_numbers=_NHWC,
                               precision=precision)
  return y if per == 1 else _from_mosaic(y, per, ph, pw, x.shape[1], x.shape[2])


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5, 6, 7))
def _conv(x, w, strides, pads, dilation, precision, chunk_bytes, per):
  return _xla_conv(x, w, strides, pads, dilation, precision, per)


def _conv_fwd(x, w, strides, pads, dilation, precision, chunk_bytes, per):
  return _conv(x, w, strides, pads, dilation, precision, chunk_bytes, per), (x, w)


def _conv_bwd(strides, pads, dilation, precision, chunk_bytes, per, res, dy):
  x, w = res
  # Input gradient: XLA's own transpose of the (mosaic) convolution, as fast as its forward.
  _, vjp_x = jax.vjp(lambda x_: _xla_conv(x_, w, strides, pads, dilation, precision, per), x)
  (dx,) = vjp_x(dy)
  # Weight gradient on the images as they are (the mosaic's borders would only add work).
  if weight_grad_method(x, w.shape, strides, pads, dilation) == "winograd":
    dw = winograd.weight_grad(x, dy, w.shape, pads, chunk_bytes=chunk_bytes,
                              precision=precision)
  else:
    dw = weight_grad(x, dy, w.shape, strides, pads, dilation, chunk_bytes=chunk_bytes,
                     precision=precision)
  return dx, dw.astype(w.dtype)


_conv.defvjp(_conv_fwd, _conv_bwd)


def _taps_t(xt, kh, kw, ho, wo, strides, dilation):
  """(kh*kw*c, m*ho*wo) im2col of padded channel-major `xt` (m, c, h, w), rows in HWIO order.

  Why transposed: the shifted views are slices of the two minor axes, concatenated on a major
  one, and the GEMM `patches @ dy` is then a plain (NN) product: measured 1.1-2.2x faster than
  building (m*ho*wo, kh*kw*c) patches and contracting their rows (WORKSPACE, issue 17)."""
  (sh, sw), (dh, dw_) = strides, dilation
  m, c = xt.shape[:2]
  views = [lax.slice(xt, (0, 0, i * dh, j * dw_),
                     (m, c, i * dh + (ho - 1) * sh + 1, j * dw_ + (wo - 1) * sw + 1),
                     (1, 1, sh, sw))
           for i in range(kh) for j in range(kw)]
  p = jnp.concatenate(views, axis=1)                   # (m, kh*kw*c, ho, wo)
  return jnp.transpose(p, (1, 0, 2, 3)).reshape(kh * kw * c, m * ho * wo)


def _taps(xp, kh, kw, ho, wo, strides, dilation):
  """(m*ho*wo, kh*kw*c) im2col of padded NHWC `xp` (m, h, w, c), columns in HWIO order."""
  (sh, sw), (dh, dw_) = strides, dilation
  m, _, _, c = xp.shape
  views = [lax.slice(xp, (0, i * dh, j * dw_, 0),
                     (m, i * dh + (ho - 1) * sh + 1, j * dw_ + (wo - 1) * sw + 1, c),
                     (1, sh, sw, 1))
           for i in range(kh) for j in range(kw)]
  return jnp.concatenate(views, axis=-1).reshape(m * ho * wo, kh * kw * c)


def channels_last(c: int, ho: int, wo: int) -> bool:
  """Layout of the weight gradient's patches: NHWC (`dy^T @ patches`) for wide, small maps,
  channel-major (`patches @ dy`) elsewhere. Why: measured per U-Net shape (WORKSPACE, issue
  17): for >= 256 input channels on 16x16-32x32 maps the NHWC form was 1.1-1.7x faster (its
  transposed operand is dy, 1/9 of the patches' bytes); for 64-128 channels on large maps and
  for DnCNN's layer the channel-major form was 1.2-1.4x faster."""
  return c >= 256 and 256 <= ho * wo <= 1024


def weight_grad(x: jax.Array, dy: jax.Array, w_shape: Sequence[int],
                strides: Sequence[int], pads: Sequence[tuple[int, int]],
                dilation: Sequence[int], *, chunk_bytes: int | None = None,
                precision: Any = None, layout: str | None = None) -> jax.Array:
  """float32 dL/dW (HWIO `w_shape`) of an NHWC convolution, as chunked im2col GEMMs.

  `x` (N, H, W, C) is the conv input, `dy` (N, Ho, Wo, O) the output gradient; `pads`
  explicit (lo, hi) per spatial axis (negative allowed, as in lax). The im2col buffer of one
  step holds at most ~`chunk_bytes` (whole images per step when one fits, else bands of
  output rows of one image), so peak memory does not grow with the batch. `layout`: the
  patches' layout, 'channels_first' or 'channels_last' (default: `channels_last`'s rule).
  """
  kh, kw, c, o = w_shape
  n, ho, wo = dy.shape[:3]
  strides, dilation = tuple(strides), tuple(dilation)
  chunk_bytes = chunk_bytes or _chunk_bytes()
  if layout is None:
    layout = "channels_last" if channels_last(c, ho, wo) else "channels_first"
  if layout not in ("channels_first", "channels_last"):
    raise ValueError(f"layout={layout!r}; allowed: channels_first, channels_last")
  last = layout == "channels_last"
  xp = lax.pad(x, jnp.zeros((), x.dtype), ((0, 0, 0),) + tuple((lo, hi, 0) for lo, hi in pads)
               + ((0, 0, 0),))
  xs = xp if last else jnp.transpose(xp, (0, 3, 1, 2))  # (n, c, hp, wp), see _taps_t
  rows_axis = 1 if last else 2
  row_bytes = wo * kh * kw * c * x.dtype.itemsize
  acc0 = jnp.zeros((o, kh * kw * c) if last else (kh * kw * c, o), jnp.float32)

  def gemm(xc, dc, rows):
    dc = dc.reshape(-1, o)
    if last:   # (o, kh*kw*c): contract the pixel axis of dy and of the patches
      return lax.dot_general(dc, _taps(xc, kh, kw, rows, wo, strides, dilation),
                             (((0,), (0,)), ((), ())), precision=precision,
                             preferred_element_type=jnp.float32)
    return lax.dot_general(_taps_t(xc, kh, kw, rows, wo, strides, dilation), dc,
                           (((1,), (0,)), ((), ())), precision=precision,
                           preferred_element_type=jnp.float32)

  def result(acc):
    return (acc.T if last else acc).reshape(kh, kw, c, o)

  if ho * row_bytes <= chunk_bytes:      # whole images per step: scan over batch chunks
    per = max(1, min(n, chunk_bytes // (ho * row_bytes)))
    full, rest = divmod(n, per)

    def body(acc, chunk):
      return acc + gemm(chunk[0], chunk[1], ho), None

    split = lambda a, m: a[:m * per].reshape((m, per) + a.shape[1:])
    acc = acc0
    if full:
      acc, _ = lax.scan(body, acc, (split(xs, full), split(dy, full)))
    if rest:
      acc = acc + gemm(xs[full * per:], dy[full * per:], ho)
    return result(acc)

  # One image is too big: bands of `band` output rows (dy zero-padded to whole bands; zero
  # rows add nothing), scanned over (image, band).
  band = max(1, chunk_bytes // row_bytes)
  bands = -(-ho // band)
  span = (band - 1) * strides[0] + (kh - 1) * dilation[0] + 1   # input rows of one band
  need = (bands - 1) * band * strides[0] + span
  grow = [(0, 0)] * 4
  grow[rows_axis] = (0, max(0, need - xs.shape[rows_axis]))
  xs = jnp.pad(xs, grow)
  dy = jnp.pad(dy, ((0, 0), (0, bands * band - ho), (0, 0), (0, 0)))

  def band_body(acc, idx):
    i, b = idx // bands, idx % bands
    start, size = [i, 0, 0, 0], [1, *xs.shape[1:]]
    start[rows_axis], size[rows_axis] = b * band * strides[0], span
    xc = lax.dynamic_slice(xs, start, size)
    dc = lax.dynamic_slice(dy, (i, b * band, 0, 0), (1, band, wo, o))
    return acc + gemm(xc, dc, band), None

  acc, _ = lax.scan(band_body, acc0, jnp.arange(n * bands))
  return result(acc)


class Conv(nn.Conv):
  """`flax.linen.Conv` with the fast CPU weight gradient (same fields, params, names)."""
  conv_general_dilated: Any = conv_general_dilated


class ConvTranspose(nn.ConvTranspose):
  """`flax.linen.ConvTranspose` for non-overlapping up-sampling (kernel_size == strides, e.g.
  the U-Net's 2x2 / stride 2): same fields, parameter names, shapes and initialisers.

  Why: on XLA:CPU the gradients of a strided transposed convolution (convolutions with input
  dilation) ran 20-40x slower than the equivalent GEMM (WORKSPACE, issue 17). With no overlap,
  each output block is one matrix product, y[s*i + a, s*j + b] = x[i, j] @ kernel[s-1-a, s-1-b]
  (flax's kernel is not flipped by `conv_transpose`), so on the fast path it is one einsum;
  elsewhere (GPU/TPU, switch off) `lax.conv_transpose` as flax computes it.
  """

  @nn.compact
  def __call__(self, inputs: jax.Array) -> jax.Array:
    k = (self.kernel_size,) * 2 if isinstance(self.kernel_size, int) else tuple(self.kernel_size)
    s = (self.strides,) * 2 if isinstance(self.strides, int) else tuple(self.strides or (1, 1))
    dilation = self.kernel_dilation
    if (len(k) != 2 or s != k or inputs.ndim != 4 or self.padding not in ("SAME", "VALID")
        or self.transpose_kernel or self.mask is not None or dilation not in (None, 1, (1, 1))):
      raise ValueError("conv.ConvTranspose is for non-overlapping 2-D up-sampling (NHWC input, "
                       f"kernel_size == strides, SAME/VALID); got kernel_size={k}, strides={s}, "
                       f"padding={self.padding!r}; use flax.linen.ConvTranspose")
    kernel = self.param("kernel", self.kernel_init, k + (inputs.shape[-1], self.features),
                        self.param_dtype)
    bias = (self.param("bias", self.bias_init, (self.features,), self.param_dtype)
            if self.use_bias else None)
    inputs, kernel, bias = self.promote_dtype(inputs, kernel, bias, dtype=self.dtype)
    if fast_path_enabled():
      n, h, w, _ = inputs.shape
      y = jnp.einsum("nhwc,abcd->nhawbd", inputs, kernel[::-1, ::-1], precision=self.precision,
                     preferred_element_type=self.preferred_element_type)
      y = y.reshape(n, h * k[0], w * k[1], self.features)
    else:
      y = lax.conv_transpose(inputs, kernel, s, self.padding, precision=self.precision,
                             preferred_element_type=self.preferred_element_type)
    return y if bias is None else y + bias


def max_pool(x: jax.Array, window: int = 2) -> jax.Array:
  """`nn.max_pool(x, (window,) * 2, strides=(window,) * 2)` (VALID: trailing rows/columns
  that fill no window are dropped) as a reshape + max over NHWC `x`.

  Same values; the gradient is elementwise instead of XLA's select-and-scatter, which ran
  2.5-8x slower on XLA:CPU at the U-Net's shapes (WORKSPACE, issue 17). On ties the gradient is
  split equally among the maxima (select-and-scatter gives it to the first); after a ReLU the
  usual tie, an all-zero window, passes no gradient either way.
  """
  n, h, w, c = x.shape
  h, w = h // window * window, w // window * window
  x = x[:, :h, :w]
  return x.reshape(n, h // window, window, w // window, window, c).max(axis=(2, 4))


__all__ = ["Conv", "ConvTranspose", "conv_general_dilated", "max_pool", "weight_grad",
           "fast_path_enabled", "mosaic_tiles", "channels_last", "weight_grad_method"]
