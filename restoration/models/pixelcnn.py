"""Conditional Gated PixelCNN (van den Oord et al., "Conditional Image Generation with
PixelCNN Decoders", NeurIPS 2016), conditioned on the corrupted image.

Layout of one forward pass (k = `kernel_size`, F = `features`, C = image channels):

  cond net     corrupted -> 2 x [3x3 conv(cond_features) + ReLU] -> s (no causality needed:
               the corrupted image is fully observed)
  layer 0 (A)  vertical:   (k//2+1) x k conv of the image, rows i-k//2..i -> 2F
               horizontal: 1 x (k//2+1) conv, columns j-k//2..j, centre tap channel-masked A
  layer l (B)  vertical:   (k//2+1) x k conv of v -> 2F
               horizontal: 1 x (k//2+1) conv of h, centre tap channel-masked B
  every layer  v_pre += 1x1(s);  h_pre += 1x1(down_shift(v_pre)) + 1x1(s)
               v = tanh(v_pre[:F]) * sigmoid(v_pre[F:]);  same gate for h
               h_out = masked-B 1x1(gated h); skip += h_out; h = h + h_out (from layer 1 on)
  head         ELU(skip) -> masked-B 1x1 (F) -> ELU -> masked-B 1x1 (C * 256) logits

The vertical stack sees the rows at and above i; it reaches the horizontal stack only through
`down_shift`, so pixel (i, j) sees every pixel of rows < i within the receptive field (no
blind spot) plus pixels (i, < j) through the horizontal stack. RGB is autoregressive over
channels as in PixelCNN: hidden channels are split into C ordered groups; at the centre pixel
group g reads image channels < g (mask A) and hidden groups <= g (mask B), so the logits of
channel c depend on channels < c of the same pixel only.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from restoration.models.layers import Dtype

LEVELS = 256


def _groups(n: int, channels: int) -> np.ndarray:
  """Ordered channel group (0..channels-1) of each of `n` feature channels, in contiguous
  blocks; the gate's 2F pre-activations repeat the grouping of its F outputs."""
  return np.arange(n) * channels // n


def _centre_mask(kh: int, kw: int, in_groups: np.ndarray, out_groups: np.ndarray,
                 strict: bool) -> np.ndarray:
  """Kernel mask (kh, kw, in, out): all ones except the bottom-right tap (the current pixel),
  where input group g_in reaches output group g_out only if g_in < g_out (A) or <= (B)."""
  mask = np.ones((kh, kw, len(in_groups), len(out_groups)), np.float32)
  allowed = (in_groups[:, None] < out_groups[None, :]) if strict else (
      in_groups[:, None] <= out_groups[None, :])
  mask[-1, -1] = allowed
  return mask


def _down_shift(x: jax.Array) -> jax.Array:
  """Row i gets row i - 1 (zeros in row 0): makes the vertical stack strictly 'above'."""
  return jnp.pad(x, ((0, 0), (1, 0), (0, 0), (0, 0)))[:, :-1]


def _gate(x: jax.Array) -> jax.Array:
  a, b = jnp.split(x, 2, axis=-1)
  return jnp.tanh(a) * nn.sigmoid(b)


def to_unit_range(x: jax.Array) -> jax.Array:
  """uint8 0..255 or float [0, 1] -> float32 [-1, 1] (u8 v and float v/255 map alike)."""
  if jnp.issubdtype(x.dtype, jnp.integer):
    x = x.astype(jnp.float32) / 255.0
  return 2.0 * x.astype(jnp.float32) - 1.0


class PixelCNN(nn.Module):
  """Conditional Gated PixelCNN with a 256-way softmax per sub-pixel.

  Call: `model.apply(variables, clean, cond, train=...)` with `clean` the image being
  modelled, uint8 NHWC (0..255) or float NHWC in [0, 1] (same scale: float = u8 / 255), and
  `cond` the corrupted image, float NHWC with the same N, H, W (any channel count, e.g. a
  gray input for an RGB target). Any H, W >= 1 (odd included). Returns float32 logits of
  shape (N, H, W, C, 256) where C = clean's channels; logits[n, i, j, c] depend only on
  clean sub-pixels before (i, j, c) in raster-then-channel order, and on all of `cond`.

  Computation in `dtype` (e.g. bfloat16), params in `param_dtype`; logits always float32.
  `train` is accepted for the common interface (no BN/dropout). Likelihood, sampling and
  decoding: `restoration.models.pixelcnn_decode`.
  """
  features: int = 64
  layers: int = 8
  cond_features: int = 32
  kernel_size: int = 3
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  def _conv(self, features, kernel, padding, name, mask=None):
    return nn.Conv(features, kernel, padding=padding, mask=mask, dtype=self.dtype,
                   param_dtype=self.param_dtype, name=name)

  @nn.compact
  def __call__(self, clean: jax.Array, cond: jax.Array, *, train: bool) -> jax.Array:
    del train
    if clean.ndim != 4 or cond.ndim != 4 or clean.shape[:3] != cond.shape[:3]:
      raise ValueError(f"pixelcnn: clean {clean.shape} and cond {cond.shape} must be NHWC "
                       "with the same N, H, W")
    c = clean.shape[-1]
    f = self.features
    if f < c or self.layers < 1 or self.kernel_size < 3 or self.kernel_size % 2 == 0:
      raise ValueError(f"pixelcnn: need features >= channels ({f} < {c}?), layers >= 1 "
                       f"(got {self.layers}) and an odd kernel_size >= 3 (got "
                       f"{self.kernel_size})")
    k, r = self.kernel_size, self.kernel_size // 2
    g_img, g_hid = np.arange(c), _groups(f, c)
    g_gate = np.concatenate([g_hid, g_hid])

    s = cond.astype(self.dtype)
    for i in range(2):
      s = nn.relu(self._conv(self.cond_features, (3, 3), "SAME", f"cond{i}")(s))

    x = to_unit_range(clean).astype(self.dtype)
    # Vertical conv covers rows i-r..i (pad top only), full k columns; horizontal conv
    # covers columns j-r..j (pad left only) of the current row.
    v_pad, h_pad = ((r, 0), (r, r)), ((0, 0), (r, 0))
    v, h, skip = x, x, None
    for l in range(self.layers):
      g_in = g_img if l == 0 else g_hid
      v_pre = self._conv(2 * f, (r + 1, k), v_pad, f"v{l}")(v)
      h_mask = _centre_mask(1, r + 1, g_in, g_gate, strict=(l == 0))
      h_pre = self._conv(2 * f, (1, r + 1), h_pad, f"h{l}", h_mask)(h)
      # Conditioning enters inside the gate of both stacks (the paper's V^T s terms).
      v_pre = v_pre + self._conv(2 * f, (1, 1), "VALID", f"v_cond{l}")(s)
      h_pre = (h_pre + self._conv(2 * f, (1, 1), "VALID", f"v_to_h{l}")(_down_shift(v_pre))
               + self._conv(2 * f, (1, 1), "VALID", f"h_cond{l}")(s))
      v = _gate(v_pre)
      out_mask = _centre_mask(1, 1, g_hid, g_hid, strict=False)
      h_out = self._conv(f, (1, 1), "VALID", f"h_out{l}", out_mask)(_gate(h_pre))
      skip = h_out if skip is None else skip + h_out
      h = h_out if l == 0 else h + h_out

    g_logit = np.repeat(g_img, LEVELS)
    # ELU rather than the paper's ReLU: a channel group holds only F / C units, and dead
    # ReLUs could cut a whole group's logits off from the context.
    y = nn.elu(skip)
    y = nn.elu(self._conv(f, (1, 1), "VALID", "head0",
                           _centre_mask(1, 1, g_hid, g_hid, strict=False))(y))
    y = self._conv(c * LEVELS, (1, 1), "VALID", "head1",
                   _centre_mask(1, 1, g_hid, g_logit, strict=False))(y)
    return y.astype(jnp.float32).reshape(clean.shape + (LEVELS,))
