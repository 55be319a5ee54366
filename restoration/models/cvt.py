"""CvT-style hybrid restorer: convolutional token embedding + transformer blocks with
convolutional projections (Wu et al., "CvT: Introducing Convolutions to Vision
Transformers", ICCV 2021), windowed attention, and a convolutional decoder."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from restoration import image_ops
from restoration.models.conv import Conv, ConvTranspose
from restoration.models.layers import Dtype, finish

_dense_init = nn.initializers.truncated_normal(0.02)


class ConvProjection(nn.Module):
  """CvT convolutional projection: depthwise 3x3 conv -> norm -> pointwise linear.

  CvT normalises with BatchNorm; we use LayerNorm (no batch statistics, so train and eval
  behave identically and small restoration batches are fine).
  """
  features: int
  dtype: Dtype
  param_dtype: Dtype

  @nn.compact
  def __call__(self, x):
    c = x.shape[-1]
    x = nn.Conv(c, (3, 3), padding="SAME", feature_group_count=c, use_bias=False,
                dtype=self.dtype, param_dtype=self.param_dtype, name="depthwise")(x)
    x = nn.LayerNorm(dtype=self.dtype, param_dtype=self.param_dtype, name="norm")(x)
    return nn.Dense(self.features, dtype=self.dtype, param_dtype=self.param_dtype,
                    kernel_init=_dense_init, name="pointwise")(x)


class WindowAttention(nn.Module):
  """Multi-head self-attention inside non-overlapping `window_size`^2 token windows.

  q, k, v come from `ConvProjection`s applied to the whole token map (so the 3x3 depthwise
  convs see across window borders and carry information between windows). Input (N, h, w, C)
  with h, w multiples of `window_size`. Softmax in float32.
  """
  num_heads: int
  window_size: int
  dtype: Dtype
  param_dtype: Dtype

  @nn.compact
  def __call__(self, x):
    n, h, w, c = x.shape
    ws, nh = self.window_size, self.num_heads
    d = c // nh
    proj = lambda name: ConvProjection(c, self.dtype, self.param_dtype, name=name)(x)
    q, k, v = proj("q"), proj("k"), proj("v")

    def windows(t):  # (N, h, w, C) -> (N * nWin, ws*ws, heads, d)
      t = t.reshape(n, h // ws, ws, w // ws, ws, nh, d).transpose(0, 1, 3, 2, 4, 5, 6)
      return t.reshape(-1, ws * ws, nh, d)

    q, k, v = windows(q), windows(k), windows(v)
    logits = jnp.einsum("bqhd,bkhd->bhqk", q * (d ** -0.5), k)
    attn = jax.nn.softmax(logits.astype(jnp.float32), axis=-1).astype(self.dtype)
    out = jnp.einsum("bhqk,bkhd->bqhd", attn, v)
    out = out.reshape(n, h // ws, w // ws, ws, ws, c).transpose(0, 1, 3, 2, 4, 5)
    out = out.reshape(n, h, w, c)
    return nn.Dense(c, dtype=self.dtype, param_dtype=self.param_dtype,
                    kernel_init=_dense_init, name="out")(out)


class CvTBlock(nn.Module):
  """Pre-norm transformer block: x + Attn(LN(x)); x + MLP(LN(x)) with GELU."""
  num_heads: int
  window_size: int
  mlp_ratio: float
  dropout_rate: float
  dtype: Dtype
  param_dtype: Dtype

  @nn.compact
  def __call__(self, x, *, train: bool):
    c = x.shape[-1]
    ln = lambda name: nn.LayerNorm(dtype=self.dtype, param_dtype=self.param_dtype, name=name)
    drop = lambda t: nn.Dropout(self.dropout_rate, deterministic=not train)(t)
    dense = lambda f, name: nn.Dense(f, dtype=self.dtype, param_dtype=self.param_dtype,
                                     kernel_init=_dense_init, name=name)
    y = WindowAttention(self.num_heads, self.window_size, self.dtype, self.param_dtype,
                        name="attn")(ln("norm1")(x))
    x = x + drop(y)
    y = nn.gelu(dense(int(c * self.mlp_ratio), "mlp_in")(ln("norm2")(x)))
    y = dense(c, "mlp_out")(drop(y))
    return x + drop(y)


class CvT(nn.Module):
  """CvT-style hybrid restorer.

  Layout:
    1. Reflect-pad the input at bottom/right to a multiple of patch_size * window_size (edge
       padding where too small to reflect); everything is cropped back at the end.
    2. Shallow full-resolution features: 3x3 conv to max(embed_dim // patch_size, 8)
       channels (kept for a skip into the decoder).
    3. Convolutional token embedding (CvT stage stem): (2*patch_size-1)^2 conv with stride
       `patch_size` ('SAME', i.e. overlapping; 7x7 stride 4 by default) + LayerNorm.
    4. `depth` pre-norm transformer blocks on the (H/p, W/p, embed_dim) token map. q/k/v are
       CvT convolutional projections (depthwise 3x3 conv + LayerNorm + pointwise linear).
       Attention choice: **windowed** self-attention in non-overlapping `window_size` x
       `window_size` token windows (8x8 tokens = 32x32 pixels by default), so the cost is
       linear in image size (at 128x128: 16 windows of 64 tokens); the depthwise convs of the
       projections mix information across window borders. No position embedding (the convs
       provide position, as in CvT). MLP: Dense(mlp_ratio * C) + GELU + Dense(C). Dropout
       `dropout_rate` (rng 'dropout') after attention and in the MLP, following `train`.
    5. Convolutional decoder: log2(patch_size) x [2x2 stride-2 transposed conv halving the
       channels + GELU + 3x3 conv + GELU], concatenation with the shallow features, 3x3 conv +
       GELU, 3x3 conv to out_channels.
    6. Global residual (`residual=True` default): output = x + net(x) (x broadcast to
       out_channels when C_in == 1).

  Defaults (embed_dim=192, depth=6, num_heads=6, window_size=8, patch_size=4, mlp_ratio=4):
  2,976,675 parameters for RGB -> RGB (2,956,129 for 1 -> 1).

  Data contract: x float NHWC of any H, W; returns float NHWC (input dtype), out_channels
  (default C_in) channels. Computation in `dtype` (softmax in float32), params in
  `param_dtype`. No BatchNorm (no 'batch_stats' collection).
  """
  embed_dim: int = 192
  depth: int = 6
  num_heads: int = 6
  window_size: int = 8
  patch_size: int = 4
  mlp_ratio: float = 4.0
  dropout_rate: float = 0.0
  out_channels: int | None = None
  residual: bool = True
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    p = self.patch_size
    if p < 1 or p & (p - 1):
      raise ValueError(f"cvt: patch_size must be a power of 2, got {p}")
    if self.embed_dim % self.num_heads:
      raise ValueError(f"cvt: embed_dim {self.embed_dim} not divisible by num_heads "
                       f"{self.num_heads}")
    h_in, w_in = x.shape[1], x.shape[2]
    out_ch = self.out_channels or x.shape[-1]
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    skip_ch = max(self.embed_dim // p, 8)

    h = image_ops.pad_to_multiple(x, p * self.window_size)[0].astype(self.dtype)
    shallow = Conv(skip_ch, (3, 3), padding="SAME", name="shallow", **kw)(h)
    k = 2 * p - 1
    t = Conv(self.embed_dim, (k, k), strides=(p, p), padding="SAME", name="embed", **kw)(h)
    t = nn.LayerNorm(name="embed_norm", **kw)(t)
    for i in range(self.depth):
      t = CvTBlock(self.num_heads, self.window_size, self.mlp_ratio, self.dropout_rate,
                   name=f"block{i}", **kw)(t, train=train)
    t = nn.LayerNorm(name="norm", **kw)(t)
    c = self.embed_dim
    for i in range(int(math.log2(p))):
      c = max(c // 2, skip_ch)
      t = nn.gelu(ConvTranspose(c, (2, 2), strides=(2, 2), padding="SAME",
                                   name=f"up{i}", **kw)(t))
      t = nn.gelu(Conv(c, (3, 3), padding="SAME", name=f"up{i}_conv", **kw)(t))
    t = jnp.concatenate([t, shallow], axis=-1)
    t = nn.gelu(Conv(c, (3, 3), padding="SAME", name="fuse", **kw)(t))
    t = Conv(out_ch, (3, 3), padding="SAME", name="out", **kw)(t)
    return finish(image_ops.crop(t, (h_in, w_in)), x, residual=self.residual, model="cvt")
