"""The authors' released DnCNN weights (MatConvNet, MATLAB v7.3 .mat) as the zoo's DnCNN.

Zhang et al., "Beyond a Gaussian Denoiser" (IEEE TIP 2017) released MatConvNet SimpleNN models:
`net.layers` is a cell array of structs, `type` 'conv' or 'relu', alternating conv, relu, ...,
conv; a conv's `weights` are {filters [H, W, C_in, C_out], biases [C_out]}. Batch norm is
already folded into the biases, so the matching zoo model is `DnCNN(batch_norm=False)`: every
conv has a bias. The network predicts the noise (denoised = input - output, images in [0, 1]),
which is the zoo DnCNN's `residual=True`.

A v7.3 .mat file is HDF5: cells are datasets of object references, structs are groups, char
arrays are uint16 code points, and MATLAB's column-major arrays appear with their axes reversed
(a [3, 3, 64, 1] filter bank reads as (64, 3, 3): MATLAB drops trailing singleton dimensions).

  model_config, variables = import_dncnn('../shared/data/pretrained/dncnn/dncnn_s25.mat')
  model = models.get_model('dncnn', **model_config['kwargs'])
  denoised = model.apply(variables, noisy, train=False)   # noisy: [N, H, W, channels] floats

`eval_overrides(model_config)` gives the config values of the paper's evaluation protocol;
`launch.py --mode=import` writes a workdir with them that `--mode=eval` evaluates
(benchmarks/dncnn_published.py reproduces the published table that way).
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

# Published PSNR (dB, RGB on uint8 outputs, unclipped noisy input) of the released files,
# Zhang et al. 2017 Tables II/III/VI, as listed in ../shared/data/README.md:
# (file name, eval set, sigma) -> PSNR.
PUBLISHED_PSNR: dict[tuple[str, str, int], float] = {
    **{("dncnn_s15.mat", s, 15): v for s, v in (("BSD68", 31.73), ("Set12", 32.86))},
    **{("dncnn_s25.mat", s, 25): v for s, v in (("BSD68", 29.23), ("Set12", 30.44))},
    **{("dncnn_s50.mat", s, 50): v for s, v in (("BSD68", 26.23), ("Set12", 27.18))},
    **{("dncnn_gray_blind.mat", "BSD68", s): v for s, v in ((15, 31.61), (25, 29.16),
                                                            (50, 26.23))},
    **{("cdncnn_color_blind.mat", "CBSD68", s): v for s, v in ((15, 33.89), (25, 31.23),
                                                               (50, 27.92))},
}
# Where the shared data keeps the released files and the test sets, relative to the repo root.
WEIGHTS_DIR = os.path.join("..", "shared", "data", "pretrained", "dncnn")
TEST_SETS_DIR = os.path.join("..", "shared", "data", "denoise", "test")
# The paper's metric convention (`metrics.convention_name`: 'rgb_uint8out'): all channels, no
# border crop, the output rounded to uint8 (MATLAB im2uint8(output)), the noisy input unrounded.
METRIC_OPTIONS = {"y_channel": False, "crop_border": 0, "quantize": True}


def _text(dataset: h5py.Dataset) -> str:
  """A MATLAB char array (uint16 code points) as a Python string."""
  return "".join(map(chr, np.asarray(dataset).ravel()))


def _matlab_array(dataset: h5py.Dataset, ndim: int) -> np.ndarray:
  """A MATLAB numeric array in MATLAB's axis order, padded with the dropped trailing 1s."""
  a = np.asarray(dataset, dtype=np.float32).T  # HDF5 holds the column-major axes reversed
  if a.ndim > ndim:
    raise ValueError(f"expected at most {ndim} dimensions, got shape {a.shape}")
  return a.reshape(a.shape + (1,) * (ndim - a.ndim))


def read_convs(path: str) -> list[tuple[np.ndarray, np.ndarray]]:
  """The conv layers of a MatConvNet SimpleNN .mat (v7.3) as (kernel HWIO, bias) float32 pairs.

  Checks the DnCNN layout: layers alternate conv and relu, start and end with a conv; every
  conv is 3x3 with stride 1 and padding 1 ('SAME'). Raises FileNotFoundError for a missing
  file and ValueError (naming the file and the layer index, 0-based in `net.layers`) otherwise.
  """
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path}: no such file")
  if not h5py.is_hdf5(path):
    raise ValueError(f"{path}: not an HDF5 file; expected a MATLAB v7.3 .mat "
                     "(re-save in MATLAB with save(name, 'net', '-v7.3'))")
  with h5py.File(path, "r") as f:
    layers = f.get("net/layers")
    if not isinstance(layers, h5py.Dataset) or layers.dtype != h5py.ref_dtype:
      raise ValueError(f"{path}: no MatConvNet 'net.layers' cell array (top-level entries: "
                       f"{', '.join(k for k in f if k != '#refs#') or 'none'})")
    refs = np.asarray(layers).ravel()
    types = [_text(f[r]["type"]) if isinstance(f[r], h5py.Group) and "type" in f[r] else "?"
             for r in refs]
    for i, t in enumerate(types):
      expected = "conv" if i % 2 == 0 else "relu"
      if t != expected:
        raise ValueError(f"{path}: net.layers[{i}] has type {t!r}, expected {expected!r} "
                         "(DnCNN layers are conv, relu, conv, ..., relu, conv)")
    if len(types) % 2 == 0:
      raise ValueError(f"{path}: net.layers has {len(types)} layers ending with a relu; a "
                       "DnCNN of depth d has 2d - 1 (conv, relu, ..., conv), d >= 2")
    if len(types) < 3:
      raise ValueError(f"{path}: net.layers has {len(types)} layer(s); a DnCNN of depth d "
                       "has 2d - 1 (conv, relu, ..., conv), d >= 2")
    convs = []
    for i in range(0, len(refs), 2):
      layer = f[refs[i]]
      for field, want in (("stride", 1), ("pad", 1)):
        got = _matlab_array(layer[field], 2).ravel() if field in layer else np.array([want])
        if not np.all(got == want):
          raise ValueError(f"{path}: net.layers[{i}] (conv) has {field} {got.tolist()}, "
                           f"expected {want} (DnCNN convs are 3x3, stride 1, pad 1)")
      cell = np.asarray(layer["weights"]).ravel()
      if len(cell) != 2:
        raise ValueError(f"{path}: net.layers[{i}] (conv) has {len(cell)} weight arrays, "
                         "expected 2 (filters and biases)")
      kernel = _matlab_array(f[cell[0]], 4)
      bias = _matlab_array(f[cell[1]], 2).ravel()
      if kernel.shape[:2] != (3, 3) or bias.shape != kernel.shape[3:]:
        raise ValueError(f"{path}: net.layers[{i}] (conv) has filters {kernel.shape} and "
                         f"biases {bias.shape}; expected filters (3, 3, C_in, C_out) and "
                         "biases (C_out,)")
      convs.append((kernel, bias))
  return convs


def import_dncnn(path: str) -> tuple[dict[str, Any], dict[str, Any]]:
  """Reads released DnCNN weights: `(model_config, variables)` for the zoo's DnCNN.

  model_config = {'name': 'dncnn', 'kwargs': {depth, features, batch_norm: False,
  residual: True}, 'channels': C} and variables = {'params': ...} (float32 arrays) such that
  `models.get_model('dncnn', **kwargs).apply(variables, x, train=False)` is the released
  network on C-channel images in [0, 1]. Raises ValueError (see `read_convs`) when a layer's
  shape does not fit a DnCNN, naming the layer and both shapes.
  """
  convs = read_convs(path)
  channels, features = convs[0][0].shape[2:]
  kwargs = {"depth": len(convs), "features": int(features), "batch_norm": False,
            "residual": True}
  model = models.get_model("dncnn", **kwargs)
  x = jax.ShapeDtypeStruct((1, 8, 8, int(channels)), jnp.float32)
  expected = jax.eval_shape(functools.partial(model.init, train=False),
                            jax.random.key(0), x)["params"]
  params = {}
  for j, (kernel, bias) in enumerate(convs):
    want = expected[f"conv{j}"]
    for name, got in (("kernel", kernel), ("bias", bias)):
      if got.shape != want[name].shape:
        what = "filters (H, W, C_in, C_out)" if name == "kernel" else "biases"
        raise ValueError(f"{path}: net.layers[{2 * j}] (conv {j} of {len(convs)}) has {what} "
                         f"{got.shape}; a DnCNN with {channels} channel(s) and {features} "
                         f"features needs {want[name].shape}")
    params[f"conv{j}"] = {"kernel": jnp.asarray(kernel), "bias": jnp.asarray(bias)}
  return {"name": "dncnn", "kwargs": kwargs, "channels": int(channels)}, {"params": params}


def eval_overrides(model_config: dict[str, Any]) -> dict[str, Any]:
  """Config values (dotted keys) that evaluate an imported DnCNN with the paper's protocol.

  On top of `configs/dncnn.py` (Gaussian noise with clip=False, sweep sigma 15/25/50): the
  imported architecture, whole images (no eval crop, every image, no tiles), RGB metrics
  with no border crop on outputs rounded to uint8 (MATLAB im2uint8(output)); the eval set
  (`data.eval`) is the caller's choice.
  """
  return {
      "model.name": model_config["name"],
      "model.kwargs": dict(model_config["kwargs"]),
      "data.channels": int(model_config["channels"]),
      "data.eval_crop": 0,
      "data.eval_max_images": 0,
      **{f"eval.{k}": v for k, v in METRIC_OPTIONS.items()},
      "eval.self_ensemble": False,
      "eval.tile": 0,
  }


def noise_spec(sigma: float) -> list[dict[str, Any]]:
  """The paper's corruption: Gaussian noise of std sigma/255, the noisy image NOT clipped."""
  return [{"name": "gaussian_noise", "sigma": float(sigma), "clip": False}]
