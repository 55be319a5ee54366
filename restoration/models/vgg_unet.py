"""U-Net restorer with a VGG19 encoder (transfer learning from ImageNet weights), in the
spirit of TernausNet (Iglovikov & Shvets 2018) with VGG19 instead of VGG11."""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from restoration import image_ops
from restoration.models.conv import ConvTranspose
from restoration.models.layers import Dtype, finish
from restoration.models.vgg import VGG19, VGG19_DEPTHS, VGG19_WIDTHS

ENCODER = "encoder"   # the VGG19 submodule's name: its params are params['encoder']


class VggUNet(nn.Module):
  """U-Net whose encoder is VGG19's first `depth` conv blocks; the decoder is trained.

  Layout: params['encoder'] is exactly a `VGG19`'s params (conv1_1 ... and input_mean /
  input_std), so `load_encoder` copies pretrained weights 1:1. The last ReLU of each encoder
  block (relu1_2, relu2_2, relu3_4, relu4_4, relu5_4) is a skip; the deepest block is the
  bottleneck. Each decoder level i (deepest first): 2x2 stride-2 transposed conv to the
  block's width, concatenation with the skip, two 3x3 conv + ReLU (`up{i}`, `dec{i}_{1,2}`);
  then a 1x1 output conv. Default (depth 5) RGB: 31,164,489 params, 20,024,390 of them
  the encoder's.

  The input is padded at the bottom/right to a multiple of 2**(depth-1) (reflect, or edge
  where too small) and the output cropped back, so any H, W work. The encoder normalises
  [0, 1] input itself (ImageNet or the weights file's mean/std) and takes 1-channel input
  as gray (repeated to RGB).

  Data contract: as every restorer (`restoration.models`): x float NHWC; output with the
  input's H, W, dtype and `out_channels` channels (default C_in); `residual=True` returns
  x + net(x). `train` is accepted and unused (no BatchNorm, no dropout). Freeze the
  encoder with `freeze_mask(params)` in the optimizer.
  """
  depth: int = 5
  widths: tuple[int, ...] = VGG19_WIDTHS   # VGG19 block widths (smaller only in tests)
  out_channels: int | None = None
  residual: bool = True
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    del train
    if not 1 <= self.depth <= len(VGG19_DEPTHS):
      raise ValueError(f"vgg_unet: depth={self.depth}; allowed: 1..{len(VGG19_DEPTHS)}")
    h_in, w_in = x.shape[1], x.shape[2]
    out_ch = self.out_channels or x.shape[-1]
    taps = tuple(f"relu{b}_{VGG19_DEPTHS[b - 1]}" for b in range(1, self.depth + 1))
    feats = VGG19(layers=taps, widths=self.widths, dtype=self.dtype,
                  param_dtype=self.param_dtype, name=ENCODER)(
                      image_ops.pad_to_multiple(x, 2 ** (self.depth - 1))[0])
    conv = lambda f, k, name: nn.Conv(f, (k, k), padding="SAME", dtype=self.dtype,
                                      param_dtype=self.param_dtype, name=name)
    h = feats[taps[-1]]
    for i in reversed(range(1, self.depth)):
      f = self.widths[i - 1]
      h = ConvTranspose(f, (2, 2), strides=(2, 2), padding="SAME", dtype=self.dtype,
                           param_dtype=self.param_dtype, name=f"up{i}")(h)
      h = jnp.concatenate([h, feats[taps[i - 1]]], axis=-1)
      h = nn.relu(conv(f, 3, f"dec{i}_1")(h))
      h = nn.relu(conv(f, 3, f"dec{i}_2")(h))
    h = conv(out_ch, 1, "out")(h)
    return finish(image_ops.crop(h, (h_in, w_in)), x, residual=self.residual, model="vgg_unet")


def freeze_mask(params: Any) -> Any:
  """A pytree like `params` of bools, True for the VGG encoder's leaves: e.g.
  `optax.multi_transform({False: tx, True: optax.set_to_zero()}, freeze_mask(params))`."""
  if ENCODER not in params:
    raise ValueError(f"freeze_mask: params have no {ENCODER!r} subtree (not a vgg_unet); "
                     f"top-level keys: {sorted(params)}")
  return jax.tree_util.tree_map_with_path(lambda path, _: path[0].key == ENCODER, params)


def load_encoder(params: Any, vgg_variables: Any) -> dict:
  """`params` with the encoder replaced by the loaded VGG19 weights (from
  `restoration.weights.vgg.load_vgg19`); deeper VGG layers than the encoder uses are
  ignored. Raises ValueError for a missing layer or a shape mismatch."""
  source = vgg_variables["params"]
  encoder = params[ENCODER]
  missing = sorted(set(encoder) - set(source))
  if missing:
    raise ValueError(f"load_encoder: VGG weights lack layer(s) {missing}")

  def take(path, leaf):
    keys = [p.key for p in path]
    value = source
    for k in keys:
      value = value[k]
    if value.shape != leaf.shape:
      raise ValueError(f"load_encoder: {'/'.join(keys)} has shape {value.shape} in the VGG "
                       f"weights, {leaf.shape} in the encoder")
    return jnp.asarray(value, leaf.dtype)

  return {**params, ENCODER: jax.tree_util.tree_map_with_path(take, encoder)}
