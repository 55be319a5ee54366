"""DnCNN (Zhang et al., "Beyond a Gaussian Denoiser: Residual Learning of Deep CNN for Image
Denoising", IEEE TIP 2017)."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from restoration.models.conv import Conv
from restoration.models.layers import Dtype, finish


class DnCNN(nn.Module):
  """DnCNN: `depth` 3x3 conv layers of `features` channels with residual learning.

  Layout (defaults = DnCNN-S, depth 17, 64 channels): conv + ReLU, then (depth - 2) x
  [conv (no bias) + BatchNorm + ReLU], then conv to C_out. The network predicts the noise;
  with `residual=True` (default) the output is `x - net(x)`. `batch_norm=False` is the
  inference form with BN folded into the convs (the authors' released weights,
  `restoration.weights.dncnn`): the middle convs get biases and there is no 'batch_stats';
  1 -> 1 channel, depth 17: 554,177 + 15 * 64 = 555,137 params.

  Parameters, 1 -> 1 channel: 640 + 15 * 36,864 + 576 + 1 = 554,177 conv weights/biases plus
  15 * 128 = 1,920 BN scale/bias = 556,097 params (running mean/var live in 'batch_stats').
  3 -> 3: 558,403.

  Data contract: x float NHWC of any H, W; returns float NHWC (input dtype) with
  `out_channels` channels (default: C_in; when C_in == 1 < out_channels the residual is
  taken w.r.t. the gray input broadcast to every channel). Computation in `dtype`, params in
  `param_dtype`. `train=True` normalises with batch statistics and needs
  `mutable=['batch_stats']`; `train=False` uses the running averages.
  """
  depth: int = 17
  features: int = 64
  out_channels: int | None = None
  residual: bool = True
  batch_norm: bool = True
  bn_momentum: float = 0.9   # flax convention: running = m * running + (1 - m) * batch
  bn_epsilon: float = 1e-5
  # 'he': He-normal convs before ReLUs, LeCun for the output conv, BN scale 1 (flax's).
  # 'orthogonal': every conv orthogonal with gain `init_gain`, BN scales U(0.1, 1) and zero
  # biases: the init of the widely used PyTorch toolbox's DnCNN recipe (KAIR: gain 0.2).
  weight_init: str = "he"
  init_gain: float = 1.0
  # Set by the trainer to its pmap axis: batch statistics over the whole global batch, so
  # results do not depend on how many devices share it (sync BN). None outside pmap.
  bn_axis_name: str | None = None
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    if self.depth < 2:
      raise ValueError(f"dncnn: depth must be >= 2, got {self.depth}")
    if self.weight_init not in ("he", "orthogonal"):
      raise ValueError(f"dncnn: weight_init={self.weight_init!r}; allowed: 'he', 'orthogonal'")
    out_ch = self.out_channels or x.shape[-1]
    if self.weight_init == "orthogonal":
      hidden_init = out_init = nn.initializers.orthogonal(self.init_gain)
      bn_scale_init = lambda key, shape, dtype: jax.random.uniform(key, shape, dtype, 0.1, 1.0)
    else:  # He init before ReLUs; LeCun (unit gain) for the linear output layer.
      hidden_init, out_init = nn.initializers.kaiming_normal(), nn.initializers.lecun_normal()
      bn_scale_init = nn.initializers.ones
    conv = lambda f, bias, name, init=hidden_init: Conv(
        f, (3, 3), padding="SAME", use_bias=bias, dtype=self.dtype,
        param_dtype=self.param_dtype, kernel_init=init, name=name)
    h = x.astype(self.dtype)
    h = nn.relu(conv(self.features, True, "conv0")(h))
    for i in range(1, self.depth - 1):
      # BN's shift makes a conv bias redundant; without BN the bias carries the folded shift.
      h = conv(self.features, not self.batch_norm, f"conv{i}")(h)
      if self.batch_norm:
        h = nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                         axis_name=self.bn_axis_name,
                         epsilon=self.bn_epsilon, dtype=self.dtype, scale_init=bn_scale_init,
                         param_dtype=self.param_dtype, name=f"bn{i}")(h)
      h = nn.relu(h)
    noise = conv(out_ch, True, f"conv{self.depth - 1}", out_init)(h)
    return finish(noise, x, residual=self.residual, sign=-1.0, model="dncnn")
