"""U-Net (Ronneberger et al., "U-Net: Convolutional Networks for Biomedical Image
Segmentation", MICCAI 2015), with 'SAME' padding for image-to-image restoration."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from restoration import image_ops
from restoration.models.conv import Conv, ConvTranspose, max_pool
from restoration.models.layers import Dtype, finish


def unet_param_count(in_channels: int, out_channels: int, features: int = 64, depth: int = 4,
                     bottleneck: int | None = None, batch_norm: bool = False) -> int:
  """Analytic parameter count of `UNet` (documented layout below; BN adds scale+bias)."""
  bottleneck = bottleneck or features * 2 ** depth

  def conv(k, cin, cout):  # weights + (bias, or BN scale and bias)
    return k * k * cin * cout + (2 * cout if batch_norm else cout)

  widths = [features * 2 ** i for i in range(depth)]
  n, cin = 0, in_channels
  for c in widths:                                   # encoder: two 3x3 convs per level
    n += conv(3, cin, c) + conv(3, c, c)
    cin = c
  n += conv(3, cin, bottleneck) + conv(3, bottleneck, bottleneck)
  prev = bottleneck
  for c in reversed(widths):                         # decoder: up 2x2, concat, two 3x3 convs
    n += 4 * prev * c + c + conv(3, 2 * c, c) + conv(3, c, c)
    prev = c
  return n + prev * out_channels + out_channels      # 1x1 output conv


class _DoubleConv(nn.Module):
  features: int
  batch_norm: bool
  dtype: Dtype
  param_dtype: Dtype
  bn_axis_name: str | None = None
  bn_momentum: float = 0.9

  @nn.compact
  def __call__(self, x, *, train: bool):
    for i in range(2):
      x = Conv(self.features, (3, 3), padding="SAME", use_bias=not self.batch_norm,
                  dtype=self.dtype, param_dtype=self.param_dtype,
                  kernel_init=nn.initializers.kaiming_normal(), name=f"conv{i}")(x)
      if self.batch_norm:
        x = nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                         dtype=self.dtype,
                         axis_name=self.bn_axis_name,
                         param_dtype=self.param_dtype, name=f"bn{i}")(x)
      x = nn.relu(x)
    return x


class UNet(nn.Module):
  """U-Net restorer.

  Layout: `depth` encoder levels of widths features * 2**i (64-128-256-512 by default), each
  two 3x3 conv + ReLU (+ BatchNorm before the ReLU if `batch_norm`) then 2x2 max-pool; a
  bottleneck of two 3x3 convs with `bottleneck` channels (None: 2 x the deepest width, i.e.
  1024 by default = the original U-Net; `unet512` uses 512) and optional dropout; `depth`
  decoder levels, each a 2x2 stride-2 transposed conv to the level width, concatenation with
  the encoder skip, two 3x3 conv + ReLU; a 1x1 output conv.

  Parameter counts (RGB -> RGB, no BN; `unet_param_count` gives the formula):
  unet1024 / unet: 31,031,875; unet512: 20,545,091 (1 -> 1: 31,030,593 and 20,543,809).

  The input is reflect-padded at the bottom/right to a multiple of 2**depth (edge padding
  where the image is too small to reflect) and the output cropped back, so any H, W work.

  Data contract: x float NHWC; returns float NHWC (input dtype) with `out_channels` channels
  (default: C_in). Computation in `dtype`, params in `param_dtype`. `residual=True`
  (default, the usual choice for restoration where output ~ input) returns x + net(x), with x
  broadcast to out_channels when C_in == 1. BatchNorm (off by default) and bottleneck dropout
  (rate 0 by default, rng 'dropout') follow `train`.
  """
  features: int = 64
  depth: int = 4
  bottleneck: int | None = None
  out_channels: int | None = None
  residual: bool = True
  batch_norm: bool = False
  bn_axis_name: str | None = None  # sync BN across devices (set by the trainer); see DnCNN
  bn_momentum: float = 0.9         # flax convention: running = m * running + (1 - m) * batch
  dropout_rate: float = 0.0
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    h_in, w_in = x.shape[1], x.shape[2]
    out_ch = self.out_channels or x.shape[-1]
    block = lambda f, name: _DoubleConv(f, self.batch_norm, self.dtype, self.param_dtype,
                                        self.bn_axis_name, self.bn_momentum, name=name)
    h = image_ops.pad_to_multiple(x, 2 ** self.depth)[0].astype(self.dtype)
    skips = []
    for i in range(self.depth):
      h = block(self.features * 2 ** i, f"enc{i}")(h, train=train)
      skips.append(h)
      h = max_pool(h)
    h = block(self.bottleneck or self.features * 2 ** self.depth, "bottleneck")(h, train=train)
    h = nn.Dropout(self.dropout_rate, deterministic=not train)(h)
    for i in reversed(range(self.depth)):
      f = self.features * 2 ** i
      h = ConvTranspose(f, (2, 2), strides=(2, 2), padding="SAME", dtype=self.dtype,
                           param_dtype=self.param_dtype, name=f"up{i}")(h)
      h = jnp.concatenate([h, skips[i]], axis=-1)
      h = block(f, f"dec{i}")(h, train=train)
    h = Conv(out_ch, (1, 1), dtype=self.dtype, param_dtype=self.param_dtype, name="out")(h)
    return finish(image_ops.crop(h, (h_in, w_in)), x, residual=self.residual, model="unet")
