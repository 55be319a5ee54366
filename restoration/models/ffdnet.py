"""FFDNet (Zhang, Zuo and Zhang, "FFDNet: Toward a Fast and Flexible Solution for CNN based
Image Denoising", IEEE TIP 2018): denoising whose strength is an input, the noise-level map.

The network works at half resolution: a 2x2 sub-pixel split (space-to-depth) of the noisy
image, concatenated with the noise-level map (sigma / 255 at every split pixel), a plain
conv + ReLU stack, and the inverse split. The output is the denoised image itself.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from restoration.models.conv import Conv
from restoration.models.layers import Dtype

SCALE = 2  # the sub-pixel split factor of the released models


def space_to_depth(x: jax.Array) -> jax.Array:
  """[N, H, W, C] (H, W even) -> [N, H/2, W/2, 4C] in the authors' `vl_nnSubP.m` order.

  Output channel 4c + 2j + i holds x[:, i::2, j::2, c]: the row offset i varies fastest, then
  the column offset j, then the input channel (MATLAB's column-major loop over the 2x2 cell).
  """
  n, h, w, c = x.shape
  y = x.reshape(n, h // SCALE, SCALE, w // SCALE, SCALE, c)  # n, H/2, i, W/2, j, c
  y = y.transpose(0, 1, 3, 5, 4, 2)                          # n, H/2, W/2, c, j, i
  return y.reshape(n, h // SCALE, w // SCALE, c * SCALE * SCALE)


def depth_to_space(y: jax.Array) -> jax.Array:
  """The exact inverse of `space_to_depth`: [N, h, w, 4C] -> [N, 2h, 2w, C]."""
  n, h, w, c4 = y.shape
  c = c4 // (SCALE * SCALE)
  x = y.reshape(n, h, w, c, SCALE, SCALE)                    # n, h, w, c, j, i
  x = x.transpose(0, 1, 5, 2, 4, 3)                          # n, h, i, w, j, c
  return x.reshape(n, h * SCALE, w * SCALE, c)


def pad_even(x: jax.Array) -> jax.Array:
  """Repeats the last row / column of an odd-sized image, as the authors' demo scripts do."""
  h, w = x.shape[1:3]
  return jnp.pad(x, ((0, 0), (0, h % SCALE), (0, w % SCALE), (0, 0)), mode="edge")


def noise_level_plane(sigma: jax.Array, batch: int, height: int, width: int) -> jax.Array:
  """The map at split resolution [N, H/2, W/2, 1] from `sigma` (0-1 scale) of any accepted
  form: a scalar, one value per image [N], or a full-resolution map [N, H, W, 1] (H, W even
  here), averaged over each 2x2 cell (a constant map stays exact)."""
  sigma = jnp.asarray(sigma, jnp.float32)
  h2, w2 = height // SCALE, width // SCALE
  if sigma.ndim == 0 or sigma.shape == (batch,):
    return jnp.broadcast_to(sigma.reshape(-1, 1, 1, 1), (batch, h2, w2, 1))
  if sigma.shape != (batch, height, width, 1):
    raise ValueError(f"ffdnet: sigma must be a scalar, [N]={batch} values or a map "
                     f"[N, H, W, 1]={(batch, height, width, 1)}, got shape {sigma.shape}")
  return sigma.reshape(batch, h2, SCALE, w2, SCALE, 1).mean(axis=(2, 4))


class FFDNet(nn.Module):
  """FFDNet: sub-pixel split + noise-level map -> `depth` 3x3 convs -> inverse split.

  Layout (defaults = the released grayscale model: depth 15, 64 channels; colour: 12 x 96):
  conv + ReLU, (depth - 2) x [conv (no bias) + BatchNorm + ReLU], conv to 4C. With
  `batch_norm=False` (the released weights, BN folded, `restoration.weights.ffdnet`) every
  conv has a bias and there is no 'batch_stats'.

  `__call__(x, sigma=None, *, train)`:
    x      float NHWC in [0, 1], any H, W (odd sizes: last row / column repeated, output
           cropped back), C = 1 or 3 image channels;
    sigma  the noise level on the 0-1 scale (sigma / 255): a scalar, [N] per image, or a map
           [N, H, W, 1]. None: `x` is the packed input of the ffdnet task, C image channels
           followed by the map as one more channel (so the generic trainer, tiling and
           self-ensemble pass it along as pixels).
  Returns the denoised image, NHWC with C channels, in x's dtype. Computation in `dtype`,
  params in `param_dtype`; `train=True` uses batch statistics (`mutable=['batch_stats']`).
  """
  depth: int = 15
  features: int = 64
  batch_norm: bool = True
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-5
  weight_init: str = "he"   # 'he' or 'orthogonal' (KAIR's recipe, gain `init_gain`)
  init_gain: float = 1.0
  bn_axis_name: str | None = None
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  def _split_input(self, x: jax.Array, sigma) -> tuple[jax.Array, jax.Array]:
    """(image, sigma as a full-resolution map or per-image values)."""
    if sigma is not None:
      return x, sigma
    if x.shape[-1] not in (2, 4):
      raise ValueError(f"ffdnet: without sigma, x must be the packed input (1 or 3 image "
                       f"channels + the noise-level map), got {x.shape[-1]} channels")
    return x[..., :-1], x[..., -1:]

  @nn.compact
  def __call__(self, x: jax.Array, sigma: jax.Array | float | None = None, *,
               train: bool) -> jax.Array:
    if self.depth < 2:
      raise ValueError(f"ffdnet: depth must be >= 2, got {self.depth}")
    if self.weight_init not in ("he", "orthogonal"):
      raise ValueError(f"ffdnet: weight_init={self.weight_init!r}; allowed: 'he', 'orthogonal'")
    image, sigma = self._split_input(x, sigma)
    n, h, w, c = image.shape
    if jnp.ndim(sigma) == 4:
      sigma = pad_even(jnp.asarray(sigma, jnp.float32))
    padded = pad_even(image.astype(jnp.float32))
    level = noise_level_plane(sigma, n, padded.shape[1], padded.shape[2])
    h_ = jnp.concatenate([space_to_depth(padded), level], axis=-1).astype(self.dtype)
    if self.weight_init == "orthogonal":
      hidden_init = out_init = nn.initializers.orthogonal(self.init_gain)
      bn_scale_init = lambda key, shape, dtype: jax.random.uniform(key, shape, dtype, 0.1, 1.0)
    else:  # He before ReLUs; LeCun for the linear output conv (as DnCNN)
      hidden_init, out_init = nn.initializers.kaiming_normal(), nn.initializers.lecun_normal()
      bn_scale_init = nn.initializers.ones
    conv = lambda f, bias, name, init=hidden_init: Conv(
        f, (3, 3), padding="SAME", use_bias=bias, dtype=self.dtype,
        param_dtype=self.param_dtype, kernel_init=init, name=name)
    h_ = nn.relu(conv(self.features, True, "conv0")(h_))
    for i in range(1, self.depth - 1):
      h_ = conv(self.features, not self.batch_norm, f"conv{i}")(h_)
      if self.batch_norm:
        h_ = nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                          axis_name=self.bn_axis_name, epsilon=self.bn_epsilon,
                          dtype=self.dtype, scale_init=bn_scale_init,
                          param_dtype=self.param_dtype, name=f"bn{i}")(h_)
      h_ = nn.relu(h_)
    out = conv(c * SCALE * SCALE, True, f"conv{self.depth - 1}", out_init)(h_)
    return depth_to_space(out.astype(jnp.float32))[:, :h, :w, :].astype(x.dtype)
