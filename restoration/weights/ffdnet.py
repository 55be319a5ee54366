"""The authors' released FFDNet weights (MatConvNet, MATLAB v7.3 .mat) as the zoo's FFDNet.

Zhang et al., "FFDNet" (IEEE TIP 2018), `models/FFDNet_{gray,color}.mat` and the `_Clip_`
variants (trained on noisy inputs clipped to [0, 1]) of github.com/cszn/FFDNet. `net.layers`:
'SubP' (scale 0.5: the 2x2 split), 'concat' (the noise-level map as the last channel), conv,
relu, ..., conv, 'SubP' (scale 2: the inverse split). Batch norm is folded into the biases, so
the matching zoo model is `FFDNet(batch_norm=False)`. The split's channel order is that of the
repository's `vl_nnSubP.m`, which `models.ffdnet.space_to_depth` follows, so the filters are
used as stored: MATLAB [H, W, C_in, C_out] is HWIO.

  model_config, variables = import_ffdnet('../shared/data/pretrained/ffdnet/FFDNet_gray.mat')
  model = models.get_model('ffdnet', **model_config['kwargs'])
  denoised = model.apply(variables, noisy, 25 / 255, train=False)

The v7.3 HDF5 reading (char arrays, reversed axes) is `restoration.weights.dncnn`'s.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import h5py
import jax
import jax.numpy as jnp
import numpy as np

from restoration import models
from restoration.weights import dncnn

WEIGHTS_DIR = os.path.join("..", "shared", "data", "pretrained", "ffdnet")
SIGMAS = (15, 25, 35, 50, 75)
# Published PSNR (dB; RGB on uint8 outputs; noisy input not clipped), the paper's Tables,
# as listed in ../shared/data/README.md: (file name, eval set, sigma) -> PSNR.
PUBLISHED_PSNR: dict[tuple[str, str, int], float] = {
    **{("FFDNet_gray.mat", "BSD68", s): v
       for s, v in zip(SIGMAS, (31.63, 29.19, 27.73, 26.29, 24.79))},
    **{("FFDNet_color.mat", "CBSD68", s): v
       for s, v in zip(SIGMAS, (33.87, 31.21, 29.58, 27.96, 26.24))},
}
_HEAD, _TAIL = ("SubP", "concat"), ("SubP",)


def is_ffdnet(path: str) -> bool:
  """Whether a .mat holds an FFDNet (its first layer is the sub-pixel split); False for
  anything else, including files that are not HDF5 (the DnCNN reader then explains)."""
  if not os.path.isfile(path) or not h5py.is_hdf5(path):
    return False
  with h5py.File(path, "r") as f:
    layers = f.get("net/layers")
    if not isinstance(layers, h5py.Dataset) or layers.dtype != h5py.ref_dtype or not layers.size:
      return False
    first = f[np.asarray(layers).ravel()[0]]
    return isinstance(first, h5py.Group) and "type" in first and \
        dncnn._text(first["type"]) == "SubP"


def _layer_types(f: h5py.File, refs: np.ndarray) -> list[str]:
  return [dncnn._text(f[r]["type"]) if isinstance(f[r], h5py.Group) and "type" in f[r]
          else "?" for r in refs]


def _check_layout(path: str, f: h5py.File, refs: np.ndarray, types: list[str]) -> None:
  """SubP(0.5), concat, conv, relu, ..., conv, SubP(2); raises ValueError naming the layer."""
  n = len(types)
  body = types[2:n - 1]
  expected = list(_HEAD) + ["conv" if i % 2 == 0 else "relu" for i in range(len(body))] + \
      list(_TAIL)
  if n < 6 or len(body) % 2 == 0 or types != expected:
    bad = next((i for i, (t, e) in enumerate(zip(types, expected)) if t != e), n - 1)
    raise ValueError(f"{path}: net.layers[{bad}] has type {types[bad]!r}, expected "
                     f"{expected[bad]!r} (FFDNet layers are SubP, concat, conv, relu, ..., "
                     "conv, SubP)")
  for i, want in ((0, 0.5), (n - 1, 2.0)):
    got = dncnn._matlab_array(f[refs[i]]["scale"], 2).ravel()
    if not np.allclose(got, want):
      raise ValueError(f"{path}: net.layers[{i}] (SubP) has scale {got.tolist()}, expected "
                       f"{want} (the released models' 2x2 split)")


def read_ffdnet(path: str) -> list[tuple[np.ndarray, np.ndarray]]:
  """The conv layers of a released FFDNet .mat as (kernel HWIO, bias) float32 pairs.

  Raises FileNotFoundError for a missing file, ValueError (naming the file and the 0-based
  `net.layers` index) for anything that is not the FFDNet layout.
  """
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path}: no such file")
  if not h5py.is_hdf5(path):
    raise ValueError(f"{path}: not an HDF5 file; expected a MATLAB v7.3 .mat")
  with h5py.File(path, "r") as f:
    layers = f.get("net/layers")
    if not isinstance(layers, h5py.Dataset) or layers.dtype != h5py.ref_dtype:
      raise ValueError(f"{path}: no MatConvNet 'net.layers' cell array")
    refs = np.asarray(layers).ravel()
    types = _layer_types(f, refs)
    _check_layout(path, f, refs, types)
    convs = []
    for i in range(2, len(refs) - 1, 2):
      layer = f[refs[i]]
      for field in ("stride", "pad"):
        got = dncnn._matlab_array(layer[field], 2).ravel() if field in layer else [1]
        if not np.all(np.asarray(got) == 1):
          raise ValueError(f"{path}: net.layers[{i}] (conv) has {field} {list(got)}, "
                           "expected 1 (FFDNet convs are 3x3, stride 1, pad 1)")
      cell = np.asarray(layer["weights"]).ravel()
      if len(cell) != 2:
        raise ValueError(f"{path}: net.layers[{i}] (conv) has {len(cell)} weight arrays, "
                         "expected 2 (filters and biases)")
      kernel = dncnn._matlab_array(f[cell[0]], 4)
      bias = dncnn._matlab_array(f[cell[1]], 2).ravel()
      if kernel.shape[:2] != (3, 3) or bias.shape != kernel.shape[3:]:
        raise ValueError(f"{path}: net.layers[{i}] (conv) has filters {kernel.shape} and "
                         f"biases {bias.shape}; expected (3, 3, C_in, C_out) and (C_out,)")
      convs.append((kernel, bias))
  return convs


def import_ffdnet(path: str) -> tuple[dict[str, Any], dict[str, Any]]:
  """Reads released FFDNet weights: `(model_config, variables)` for the zoo's FFDNet.

  model_config = {'name': 'ffdnet', 'kwargs': {depth, features, batch_norm: False},
  'channels': C}; the first conv takes 4C + 1 channels (split image + map), the last gives
  4C. Raises ValueError naming the layer when a shape does not fit.
  """
  convs = read_ffdnet(path)
  c_in, features = convs[0][0].shape[2:]
  channels = (int(c_in) - 1) // 4
  if channels not in (1, 3) or 4 * channels + 1 != c_in:
    raise ValueError(f"{path}: the first conv takes {c_in} channels; an FFDNet takes 4C + 1 "
                     "(C = 1 or 3 image channels split 2x2, plus the noise-level map)")
  kwargs = {"depth": len(convs), "features": int(features), "batch_norm": False}
  model = models.get_model("ffdnet", **kwargs)
  x = jax.ShapeDtypeStruct((1, 8, 8, channels + 1), jnp.float32)
  expected = jax.eval_shape(functools.partial(model.init, train=False),
                            jax.random.key(0), x)["params"]
  params = {}
  for j, (kernel, bias) in enumerate(convs):
    want = expected[f"conv{j}"]
    for name, got in (("kernel", kernel), ("bias", bias)):
      if got.shape != want[name].shape:
        raise ValueError(f"{path}: net.layers[{2 * j + 2}] (conv {j} of {len(convs)}) has "
                         f"{name} {got.shape}; an FFDNet with {channels} channel(s) and "
                         f"{features} features needs {want[name].shape}")
    params[f"conv{j}"] = {"kernel": jnp.asarray(kernel), "bias": jnp.asarray(bias)}
  return {"name": "ffdnet", "kwargs": kwargs, "channels": channels}, {"params": params}


def eval_overrides(model_config: dict[str, Any]) -> dict[str, Any]:
  """Config values of the paper's protocol for an imported FFDNet (on top of
  configs/ffdnet.py): the DnCNN import's (whole images, RGB PSNR on outputs rounded to uint8)
  plus task='ffdnet', whose input carries the noise-level map."""
  return {**dncnn.eval_overrides(model_config), "task": "ffdnet"}
