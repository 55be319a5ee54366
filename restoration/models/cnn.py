"""Plain convolutional restorer: a stack of 3x3 convolutions with ReLU."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from restoration.models.conv import Conv
from restoration.models.layers import Dtype, finish


class CNN(nn.Module):
  """A plain fully-convolutional network: `depth` 3x3 convs, ReLU between them.

  Layout: conv(C_in -> features) + ReLU, (depth - 2) x [conv(features -> features) + ReLU],
  conv(features -> C_out). 'SAME' zero padding, stride 1, biases everywhere, He-normal init
  (LeCun-normal for the output conv), no normalisation. Receptive field 2 * depth + 1 pixels.

  Defaults (depth=9, features=36) give 83,883 parameters for RGB -> RGB
  (3*9*36+36 + 7*(9*36*36+36) + 36*9*3+3); 1 -> 1 has 82,585. Used as the block-inpainting
  restorer and deblurring baseline; the low-light config uses `depth=16`.

  Data contract: x float NHWC of any H, W; returns float NHWC (input dtype) with
  `out_channels` channels (default: C_in). Computation in `dtype`, params in `param_dtype`.
  `residual=True` (default) returns x + net(x) (x broadcast to out_channels when C_in == 1).
  `train` is accepted for the common interface; this model has no BN/dropout.
  """
  depth: int = 9
  features: int = 36
  out_channels: int | None = None
  residual: bool = True
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    del train
    if self.depth < 2:
      raise ValueError(f"cnn: depth must be >= 2, got {self.depth}")
    out_ch = self.out_channels or x.shape[-1]
    # He init before ReLUs; LeCun (unit gain) for the linear output layer.
    conv = lambda f, name, init=nn.initializers.kaiming_normal(): Conv(
        f, (3, 3), padding="SAME", dtype=self.dtype, param_dtype=self.param_dtype,
        kernel_init=init, name=name)
    h = x.astype(self.dtype)
    for i in range(self.depth - 1):
      h = nn.relu(conv(self.features, f"conv{i}")(h))
    h = conv(out_ch, f"conv{self.depth - 1}", nn.initializers.lecun_normal())(h)
    return finish(h, x, residual=self.residual, model="cnn")
