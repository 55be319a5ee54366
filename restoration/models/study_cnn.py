"""The CIFAR-10 block-inpainting study's network: the Keras model this project grew from.

    Conv2D(64, 3x3, relu, same) -> Conv2D(64, 3x3, relu, same)
      -> Conv2DTranspose(3, 3x3, sigmoid, same)

Keras defaults: glorot_uniform kernels, zero biases, stride 1. 64*3*9+64 + 64*64*9+64 +
3*64*9+3 = 40,451 parameters for RGB.

The last layer is a transposed convolution. With stride 1 a transposed convolution is the
gradient of a convolution with respect to its input, i.e. a convolution with the spatially
flipped kernel whose input/output axes are swapped. Keras stores that layer's kernel as
(kh, kw, out, in) = (3, 3, 3, 64) and applies it with those semantics (TF's conv2d_transpose).
flax's `ConvTranspose(transpose_kernel=True)` uses the same layout and the same semantics
(lax.conv_transpose flips and swaps), so Keras weights load unchanged; with the flax default
`transpose_kernel=False` the kernel would be (3, 3, 64, 3), applied unflipped. For a fresh
model this only matters for importing weights: both parameterise the same function class and
glorot's fans (9*64 + 9*3) are the same either way. tests/test_cifar_study.py checks the
equality with the gradient of a convolution.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from restoration.models.conv import Conv
from restoration.models.layers import Dtype, finish


class StudyCNN(nn.Module):
  """Two 3x3 conv + ReLU layers, a 3x3 transposed conv + sigmoid: outputs in (0, 1).

  Data contract: x float NHWC of any H, W; returns float NHWC (input dtype) with
  `out_channels` channels (default: C_in). Computation in `dtype`, params in `param_dtype`.
  Not residual (the study's output is the image itself, squashed by the sigmoid). `train` is
  accepted for the common interface; there is no BN or dropout.
  """
  features: int = 64
  out_channels: int | None = None
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    del train
    out_ch = self.out_channels or x.shape[-1]
    # Keras' defaults, not this zoo's He init: the study's initialisation is the point.
    init = dict(kernel_init=nn.initializers.glorot_uniform(),
                bias_init=nn.initializers.zeros, dtype=self.dtype, param_dtype=self.param_dtype)
    h = x.astype(self.dtype)
    h = nn.relu(Conv(self.features, (3, 3), padding="SAME", name="conv0", **init)(h))
    h = nn.relu(Conv(self.features, (3, 3), padding="SAME", name="conv1", **init)(h))
    h = nn.ConvTranspose(out_ch, (3, 3), padding="SAME", transpose_kernel=True,
                         name="deconv", **init)(h)
    return finish(nn.sigmoid(h), x, residual=False, model="study_cnn")
