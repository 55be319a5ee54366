"""VGG19 feature extractor (Simonyan & Zisserman, "Very Deep Convolutional Networks for
Large-Scale Image Recognition", ICLR 2015): the 16 conv layers of its 5 blocks, no classifier.

Layer names follow the paper's block_index convention so pretrained weights map 1:1:
`convK_J` (3x3 conv, pre-activation), `reluK_J` (after ReLU), `poolK` (2x2 max-pool closing
block K). Block K has VGG19_DEPTHS[K-1] convs of VGG19_WIDTHS[K-1] channels.
"""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from restoration.models.conv import max_pool
from restoration.models.layers import Dtype

VGG19_WIDTHS = (64, 128, 256, 512, 512)
VGG19_DEPTHS = (2, 2, 4, 4, 4)
IMAGENET_MEAN = (0.485, 0.456, 0.406)   # RGB, [0, 1] scale (torchvision convention)
IMAGENET_STD = (0.229, 0.224, 0.225)
PERCEPTUAL_LAYERS = ("relu1_2", "relu2_2", "relu3_4", "relu4_4", "relu5_4")


def conv_names() -> tuple[str, ...]:
  """conv1_1 ... conv5_4 in forward order (the 16 parameterised layers)."""
  return tuple(f"conv{b}_{j}" for b, n in enumerate(VGG19_DEPTHS, 1) for j in range(1, n + 1))


def layer_names() -> tuple[str, ...]:
  """Every tap in forward order: convK_J, reluK_J for each conv, then poolK per block."""
  out = []
  for b, n in enumerate(VGG19_DEPTHS, 1):
    for j in range(1, n + 1):
      out += [f"conv{b}_{j}", f"relu{b}_{j}"]
    out.append(f"pool{b}")
  return tuple(out)


def validate_layers(layers: Sequence[str], field: str = "layers") -> None:
  """Raises ValueError (naming `field`) for an empty, unknown or repeated layer name."""
  if isinstance(layers, str) or not layers:
    raise ValueError(f"{field} must be a non-empty tuple of VGG19 layer names such as "
                     f"{PERCEPTUAL_LAYERS}; got {layers!r}")
  valid = layer_names()
  bad = [name for name in layers if name not in valid]
  if bad:
    raise ValueError(f"{field}: unknown VGG19 layer(s) {bad}; valid names are convK_J / "
                     f"reluK_J (K=1..5, J up to {VGG19_DEPTHS}) and poolK")
  if len(set(layers)) != len(layers):
    raise ValueError(f"{field}: repeated layer names in {tuple(layers)}")


def convs_needed(layers: Sequence[str]) -> tuple[str, ...]:
  """The conv layers evaluated to reach the deepest of `layers` (a forward-order prefix)."""
  order = layer_names()
  deepest = max(order.index(name) for name in layers)
  return tuple(name for name in order[:deepest + 1] if name.startswith("conv"))


def trim_variables(variables: dict, layers: Sequence[str]) -> dict:
  """`variables` without the conv weights deeper than `layers` need (less to keep on device)."""
  keep = set(convs_needed(layers))
  params = {k: v for k, v in variables["params"].items()
            if not k.startswith("conv") or k in keep}
  return {**variables, "params": params}


class VGG19(nn.Module):
  """VGG19 conv trunk returning `{name: activation}` for the requested `layers`.

  Input: float NHWC RGB in [0, 1] (1 channel: gray, repeated to RGB), any H, W (each pool
  floors odd sides; block K needs sides >= 2**(K-1)). It is normalised per channel as
  (x - input_mean) / input_std; those are parameters (ImageNet mean/std by default) so a
  weights file made for another input convention (the Keras/Caffe file: BGR, 0-255, mean
  subtracted) can carry its own, see `restoration.weights.vgg`. Only the layers up to the
  deepest requested one are built and run. Convs are 3x3 'SAME' + bias, as in the paper;
  computation in `dtype`, params in `param_dtype`; activations are returned in `dtype`.
  `widths` other than VGG19_WIDTHS only make sense for small random-weight tests.
  """
  layers: tuple[str, ...] = PERCEPTUAL_LAYERS
  widths: tuple[int, ...] = VGG19_WIDTHS
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
    validate_layers(self.layers, "VGG19.layers")
    if len(self.widths) != len(VGG19_DEPTHS):
      raise ValueError(f"VGG19.widths needs {len(VGG19_DEPTHS)} entries, got {self.widths}")
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
      raise ValueError(f"VGG19: input must be NHWC with 1 or 3 channels, got {x.shape}")
    if x.shape[-1] == 1:
      x = jnp.repeat(x, 3, axis=-1)
    const = lambda v: (lambda key, shape, dtype: jnp.asarray(v, dtype))
    mean = self.param("input_mean", const(IMAGENET_MEAN), (3,), self.param_dtype)
    std = self.param("input_std", const(IMAGENET_STD), (3,), self.param_dtype)
    h = ((x.astype(jnp.float32) - mean) / std).astype(self.dtype)
    wanted, needed = set(self.layers), set(convs_needed(self.layers))
    out = {}
    for b, (n, width) in enumerate(zip(VGG19_DEPTHS, self.widths), 1):
      for j in range(1, n + 1):
        name = f"conv{b}_{j}"
        if name not in needed:
          return out
        h = nn.Conv(width, (3, 3), padding="SAME", dtype=self.dtype,
                    param_dtype=self.param_dtype, name=name)(h)
        if name in wanted:
          out[name] = h
        h = nn.relu(h)
        if f"relu{b}_{j}" in wanted:
          out[f"relu{b}_{j}"] = h
      if f"pool{b}" in wanted or any(c.startswith(f"conv{b + 1}_") for c in needed):
        h = max_pool(h)
        if f"pool{b}" in wanted:
          out[f"pool{b}"] = h
    return out
