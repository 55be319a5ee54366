"""PatchGAN discriminator of pix2pix (Isola et al., "Image-to-Image Translation with
Conditional Adversarial Networks", CVPR 2017), the 70x70 variant."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from restoration.models.conv import Conv
from restoration.models.layers import Dtype


class PatchGAN(nn.Module):
  """Conditional 70x70 PatchGAN: classifies every 70x70 patch of (corrupted, candidate).

  Layout (pix2pix `n_layers=3`): C64-C128-C256-C512 where Ck = 4x4 conv with k filters,
  padding 1, strides 2, 2, 2, 1, BatchNorm (not after the first conv; those convs have no
  bias) and LeakyReLU(0.2); then a 4x4 stride-1 conv to 1 channel (logits, no activation).
  Receptive field of each output logit: 70 x 70 input pixels. Output size per side:
  256 -> 30, 128 -> 14 (n -> n/8 - 2 for n divisible by 8). Weights ~ N(0, 0.02) as in
  pix2pix. Defaults: 2,768,705 params for RGB+RGB (6 input channels), plus BN
  running statistics.

  Data contract: `corrupted` (the condition) and `candidate` (clean or restored image),
  float NHWC with the same N, H, W (H, W >= 16 or so); they are concatenated on channels.
  Returns float32 logits (N, h, w, 1). Computation in `dtype`, params in `param_dtype`.
  BatchNorm follows `train` (needs `mutable=['batch_stats']` when training).
  """
  features: int = 64
  n_layers: int = 3
  negative_slope: float = 0.2
  bn_axis_name: str | None = None  # sync BN across devices (set by the trainer); see DnCNN
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, corrupted: jax.Array, candidate: jax.Array, *, train: bool) -> jax.Array:
    if corrupted.shape[:3] != candidate.shape[:3]:
      raise ValueError(f"patchgan: corrupted {corrupted.shape} and candidate "
                       f"{candidate.shape} differ in N, H or W")
    init = nn.initializers.normal(0.02)
    conv = lambda f, stride, bias, name: Conv(
        f, (4, 4), strides=(stride, stride), padding=((1, 1), (1, 1)), use_bias=bias,
        dtype=self.dtype, param_dtype=self.param_dtype, kernel_init=init, name=name)
    bn = lambda name: nn.BatchNorm(
        use_running_average=not train, momentum=0.9, axis_name=self.bn_axis_name,
        dtype=self.dtype,
        param_dtype=self.param_dtype, name=name)
    act = lambda h: nn.leaky_relu(h, self.negative_slope)
    h = jnp.concatenate([corrupted, candidate.astype(corrupted.dtype)], axis=-1)
    h = act(conv(self.features, 2, True, "conv0")(h.astype(self.dtype)))
    for i in range(1, self.n_layers + 1):
      f = self.features * 2 ** min(i, 3)
      stride = 2 if i < self.n_layers else 1
      h = act(bn(f"bn{i}")(conv(f, stride, False, f"conv{i}")(h)))
    h = conv(1, 1, True, f"conv{self.n_layers + 1}")(h)
    return h.astype(jnp.float32)
