"""Restoration models (Flax linen) and their registry.

`get_model(name, **overrides)` builds a registered model; `MODELS` maps each name to a
constructor (a `functools.partial` of the module class with that name's preset fields):

  cnn       `CNN`: plain 3x3 conv + ReLU stack (depth 9, 36 ch, 83,883 params RGB)
  study_cnn `StudyCNN`: the CIFAR-10 block study's Keras net, conv64 + conv64 + 3x3
            transposed conv + sigmoid, glorot init (40,451 params RGB)
  dncnn     `DnCNN`: DnCNN-S, 17 layers, 64 ch, BN, residual noise prediction
  ffdnet    `FFDNet`: 2x2 sub-pixel split + noise-level map input, 15 layers, 64 ch, BN;
            __call__(x, sigma=None, *, train): sigma per image or a map (models/ffdnet.py);
            None: x carries the map as its last channel (the ffdnet task's packed input)
  unet      `UNet`, the configurable class (quick configs set its widths); its default
            bottleneck is 2x the deepest level, so at default widths it equals unet1024
  unet512   `UNet` with bottleneck=512 (the founding ablation's narrow variant)
  unet1024  `UNet` with bottleneck=1024 (the original U-Net), pinned even if `unet`'s
            default changes
  patchgan  `PatchGAN`: pix2pix 70x70 conditional discriminator, __call__(corrupted,
            candidate, *, train) -> (N, h, w, 1) logits
  cvt       `CvT`: conv token embedding + windowed-attention transformer + conv decoder
  vgg_unet  `VggUNet`: U-Net with a VGG19 encoder (params['encoder'] = `VGG19` params, so
            ImageNet weights load with `vgg_unet.load_encoder`) and a trained decoder

  pixelcnn  `PixelCNN`: conditional Gated PixelCNN, __call__(clean, corrupted, *, train) ->
            (N, H, W, C, 256) logits; decoded by `restoration.models.pixelcnn_decode`

`VGG19` (models/vgg.py) is a feature extractor for the perceptual loss, not in the registry.

Common contract of the restorers (cnn, study_cnn, dncnn, unet*, cvt, vgg_unet; not patchgan
or pixelcnn): `__call__(x, *, train)`,
x float NHWC of any height/width (odd sizes included; the U-Nets/CvT pad and crop back);
output NHWC with the input's height, width and dtype, and `out_channels` channels (default:
the input's). Field `dtype` sets the computation dtype (e.g. bfloat16 on GPU/TPU);
parameters stay `param_dtype` (float32). BatchNorm lives in the 'batch_stats' collection
and uses batch statistics when `train=True` (apply with `mutable=['batch_stats']`);
dropout uses the 'dropout' rng when `train=True` and its rate is > 0. `residual=True`
makes the network predict a residual: output = x + net(x) (DnCNN: x - net(x)); when
out_channels != in_channels (only in_channels == 1 is allowed, e.g. gray -> RGB
colourisation) the residual is w.r.t. the input broadcast to out_channels.

This package imports only `restoration.image_ops` from the rest of `restoration`.
"""

import dataclasses
import functools
from typing import Any, Callable

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from restoration.models.cnn import CNN
from restoration.models.cvt import CvT
from restoration.models.dncnn import DnCNN
from restoration.models.ffdnet import FFDNet
from restoration.models.patchgan import PatchGAN
from restoration.models.pixelcnn import PixelCNN
from restoration.models.study_cnn import StudyCNN
from restoration.models.unet import UNet, unet_param_count
from restoration.models.vgg import VGG19
from restoration.models.vgg_unet import VggUNet

MODELS: dict[str, Callable[..., nn.Module]] = {
    "cnn": functools.partial(CNN),
    "study_cnn": functools.partial(StudyCNN),
    "dncnn": functools.partial(DnCNN),
    "ffdnet": functools.partial(FFDNet),
    "unet": functools.partial(UNet),
    "unet512": functools.partial(UNet, bottleneck=512),
    "unet1024": functools.partial(UNet, bottleneck=1024),
    "patchgan": functools.partial(PatchGAN),
    "cvt": functools.partial(CvT),
    "vgg_unet": functools.partial(VggUNet),
    "pixelcnn": functools.partial(PixelCNN),
}

_DTYPE_FIELDS = ("dtype", "param_dtype")


def model_fields(name: str) -> dict[str, Any]:
  """The overridable fields of model `name` with their effective defaults."""
  ctor = _lookup(name)
  out = {}
  for f in dataclasses.fields(ctor.func):
    if f.name in ("parent", "name"):
      continue
    out[f.name] = ctor.keywords.get(f.name, f.default)
  return out


def _lookup(name: str) -> functools.partial:
  if name not in MODELS:
    raise ValueError(f"unknown model {name!r}; valid names: {', '.join(sorted(MODELS))}")
  return MODELS[name]


def spatial_multiple(name: str, kwargs: dict[str, Any] | None = None) -> int:
  """The H/W multiple model `name` pads to internally (tiles are aligned to it); 1 if none."""
  try:
    fields = model_fields(name)
  except ValueError:
    return 1
  fields.update(dict(kwargs or {}))
  if "bottleneck" in fields:  # the U-Nets
    return 2 ** int(fields["depth"])
  if "window_size" in fields:  # CvT
    return int(fields["patch_size"]) * int(fields["window_size"])
  return 1


# Integer fields that may be 0 (every other int field is a size or count >= 1).
_MAY_BE_ZERO = frozenset({"n_layers"})


def _check_value(name: str, cls: type, field: str, value: Any) -> None:
  """ValueError naming `field` when `value` does not fit its annotation (int sizes >= 1,
  bools, numbers, strings), before Flax or JAX would fail on it somewhere deep."""
  kind = next(f.type for f in dataclasses.fields(cls) if f.name == field)
  kind = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
  base, optional = kind.split("|")[0].strip(), "None" in kind
  if value is None:
    if optional or base not in ("int", "float", "bool", "str"):
      return
    raise ValueError(f"model {name!r} field {field}=None: a value is required")
  where = f"model {name!r} field {field}={value!r}"
  if base == "int":
    low = 0 if field in _MAY_BE_ZERO else 1
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
      raise ValueError(f"{where}: an integer >= {low} is expected")
  elif base == "float":
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not (
        np.isfinite(value)):
      raise ValueError(f"{where}: a number is expected")
    if field == "dropout_rate" and not 0 <= value < 1:
      raise ValueError(f"{where}: a rate in [0, 1) is expected")
  elif base == "bool" and not isinstance(value, (bool, np.bool_)):
    raise ValueError(f"{where}: true or false is expected")
  elif base == "str" and not isinstance(value, str):
    raise ValueError(f"{where}: a string is expected")


def get_model(name: str, **overrides: Any) -> nn.Module:
  """Builds the registered model `name` with field `overrides` (e.g. features=32).

  `dtype`/`param_dtype` may be given as strings ('bfloat16', 'float32'). Raises ValueError
  for an unknown name (listing the valid ones) or an override that is not a field of the
  model (listing its fields).
  """
  ctor = _lookup(name)
  fields = model_fields(name)
  bad = sorted(k for k in overrides if k not in fields)
  if bad:
    raise ValueError(f"model {name!r} ({ctor.func.__name__}) has no field(s) "
                     f"{', '.join(map(repr, bad))}; valid fields: {', '.join(fields)}")
  for k, v in overrides.items():
    _check_value(name, ctor.func, k, v)
  overrides = dict(overrides)
  for k in _DTYPE_FIELDS:
    if isinstance(overrides.get(k), str):
      overrides[k] = jnp.dtype(overrides[k])
  return ctor(**overrides)


__all__ = ["MODELS", "get_model", "model_fields", "spatial_multiple", "CNN", "DnCNN", "FFDNet",
           "UNet", "PatchGAN", "CvT", "VggUNet", "VGG19", "PixelCNN", "StudyCNN",
           "unet_param_count"]
