"""Pretrained VGG19 weights from a file the user provides (nothing is downloaded).

Two formats, told apart by extension:

  .h5 / .hdf5  the Keras ImageNet file `vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`
               (or any Keras VGG19 `save_weights` HDF5): one group per layer
               `block{b}_conv{c}` holding a kernel (3, 3, in, out) and a bias (out,).
               Dataset names differ by Keras version and are all accepted:
               Keras 1 `block1_conv1_W_1:0` / `block1_conv1_b_1:0` directly in the group;
               Keras 2 `block1_conv1/kernel:0` / `.../bias:0` and Keras 3 (legacy h5)
               `block1_conv1/kernel` / `.../bias` in a subgroup, listed by the group's
               `weight_names` attribute. A whole-model file's `model_weights` group works too.
  .npz         plain named arrays `conv1_1/kernel`, `conv1_1/bias`, ... `conv5_4/bias`, and
               optionally `input_mean`, `input_std` (RGB, [0, 1] scale; ImageNet's when absent).

The Keras weights come from the original Caffe VGG, which expects BGR input in 0-255 minus
the BGR pixel mean. Reading them makes that exact in `VGG19`'s terms: the first kernel's
input channels are reversed (BGR -> RGB) and input_mean = caffe mean / 255, input_std = 1/255
per channel. `python -m restoration.weights.vgg in.h5 out.npz` saves that result as .npz.
"""

import os
import re
import sys
from collections.abc import Mapping

import h5py
import numpy as np

from restoration.models.vgg import IMAGENET_MEAN, IMAGENET_STD, VGG19_WIDTHS, conv_names

FIELD = "config.perceptual.weights_path"
KERAS_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)   # Keras `preprocess_input(mode='caffe')`
_H5 = (".h5", ".hdf5")


def expected_shapes(name: str,
                    widths: tuple[int, ...] = VGG19_WIDTHS) -> tuple[tuple[int, ...], ...]:
  """Kernel and bias shapes of conv `name` ('conv3_2') for a VGG19 of `widths`."""
  b, j = map(int, name[4:].split("_"))
  cout = widths[b - 1]
  cin = 3 if (b, j) == (1, 1) else (widths[b - 2] if j == 1 else cout)
  return (3, 3, cin, cout), (cout,)


def check(arrays: Mapping[str, np.ndarray], source: str,
          widths: tuple[int, ...] = VGG19_WIDTHS) -> None:
  """Raises ValueError naming `source` and the first missing or mis-shaped array."""
  for name in conv_names():
    for leaf, shape in zip(("kernel", "bias"), expected_shapes(name, widths)):
      key = f"{name}/{leaf}"
      if key not in arrays:
        raise ValueError(f"{source}: VGG19 layer {name} has no {leaf} ({key!r} missing)")
      if tuple(arrays[key].shape) != shape:
        raise ValueError(f"{source}: {key} has shape {tuple(arrays[key].shape)}, expected "
                         f"{shape} (kernels must be 3x3xINxOUT, TF dim ordering)")
  for key in ("input_mean", "input_std"):
    if key in arrays and tuple(arrays[key].shape) != (3,):
      raise ValueError(f"{source}: {key} has shape {tuple(arrays[key].shape)}, expected (3,)")


def _role(dataset_name: str) -> str | None:
  """'kernel', 'bias' or None from a Keras dataset name of any version."""
  base = re.sub(r":\d+$", "", dataset_name.rsplit("/", 1)[-1])
  if base == "kernel" or re.fullmatch(r"(.*_)?W(_\d+)?", base):
    return "kernel"
  if base == "bias" or re.fullmatch(r"(.*_)?b(_\d+)?", base):
    return "bias"
  return None


def _layer_datasets(group) -> dict[str, np.ndarray]:
  """{'kernel': ..., 'bias': ...} of one Keras layer group."""
  if "weight_names" in group.attrs:   # Keras' own record of the layer's datasets, in order
    names = [n.decode("utf8") if isinstance(n, bytes) else str(n)
             for n in group.attrs["weight_names"]]
  else:
    names = []
    group.visititems(lambda n, obj: names.append(n) if isinstance(obj, h5py.Dataset) else None)
  found = {}
  for n in names:
    role = _role(n)
    if role is None or role in found:
      raise ValueError(f"{group.file.filename}: layer {group.name} has datasets {names}; "
                       "expected exactly one kernel and one bias")
    found[role] = np.asarray(group[n])
  return found


def read_keras_h5(path: str) -> dict[str, np.ndarray]:
  """The Keras VGG19 file as flat named arrays for `VGG19` (RGB input; see module doc)."""
  out = {}
  with h5py.File(path, "r") as f:
    root = f["model_weights"] if "model_weights" in f else f
    for name in conv_names():
      b, j = name[4:].split("_")
      keras_name = f"block{b}_conv{j}"
      if keras_name not in root:
        raise ValueError(f"{path}: VGG19 layer {name} (Keras group {keras_name!r}) missing")
      arrays = _layer_datasets(root[keras_name])
      for leaf in ("kernel", "bias"):
        if leaf not in arrays:
          raise ValueError(f"{path}: Keras group {keras_name!r} has no {leaf} dataset")
        out[f"{name}/{leaf}"] = arrays[leaf].astype(np.float32)
  k = out["conv1_1/kernel"]
  if k.ndim == 4:
    out["conv1_1/kernel"] = k[:, :, ::-1, :].copy()   # BGR -> RGB input channels
  out["input_mean"] = np.asarray(CAFFE_MEAN_BGR[::-1], np.float32) / 255.0
  out["input_std"] = np.full((3,), 1 / 255.0, np.float32)
  return out


def read_npz(path: str) -> dict[str, np.ndarray]:
  with np.load(path, allow_pickle=False) as data:
    return {k: np.asarray(data[k], np.float32) for k in data.files}


def read_arrays(path: str, field: str = FIELD,
                widths: tuple[int, ...] = VGG19_WIDTHS) -> dict[str, np.ndarray]:
  """Flat named arrays from `path` (.h5/.hdf5 Keras or .npz), shape-checked."""
  what = (f"expected the Keras ImageNet VGG19 weights {KERAS_FILE} (HDF5) or an .npz "
          "made from it by `python -m restoration.weights.vgg in.h5 out.npz`")
  if not path:
    raise ValueError(f"{field} is not set; {what}")
  if not os.path.isfile(path):
    raise ValueError(f"{field}={path!r}: no such file; {what}")
  ext = os.path.splitext(path)[1].lower()
  if ext in _H5:
    arrays = read_keras_h5(path)
  elif ext == ".npz":
    arrays = read_npz(path)
  else:
    raise ValueError(f"{field}={path!r}: unknown extension {ext!r}; allowed: .h5, .hdf5, .npz")
  check(arrays, path, widths)
  return arrays


def to_variables(arrays: Mapping[str, np.ndarray]) -> dict:
  """Flat named arrays -> `VGG19` variables {'params': ...} (ImageNet mean/std if absent)."""
  params = {name: {"kernel": np.asarray(arrays[f"{name}/kernel"]),
                   "bias": np.asarray(arrays[f"{name}/bias"])} for name in conv_names()}
  params["input_mean"] = np.asarray(arrays.get("input_mean", IMAGENET_MEAN), np.float32)
  params["input_std"] = np.asarray(arrays.get("input_std", IMAGENET_STD), np.float32)
  return {"params": params}


def load_vgg19(path: str, *, field: str = FIELD,
               widths: tuple[int, ...] = VGG19_WIDTHS) -> dict:
  """`VGG19` variables from the weights file `path`; ValueError names `field` when absent."""
  return to_variables(read_arrays(path, field, widths))


def h5_to_npz(h5_path: str, npz_path: str, *,
              widths: tuple[int, ...] = VGG19_WIDTHS) -> dict[str, np.ndarray]:
  """Converts the Keras VGG19 HDF5 file to the .npz layout (RGB kernels + input mean/std);
  returns the arrays written."""
  if os.path.splitext(h5_path)[1].lower() not in _H5:
    raise ValueError(f"h5_to_npz: {h5_path!r} is not a .h5/.hdf5 file")
  arrays = read_arrays(h5_path, "h5_to_npz input", widths)
  np.savez(npz_path, **arrays)
  return arrays


def main(argv: list[str]) -> int:
  if len(argv) != 3:
    print(f"usage: python -m restoration.weights.vgg {KERAS_FILE} out.npz", file=sys.stderr)
    return 2
  try:
    arrays = h5_to_npz(argv[1], argv[2])
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  n = sum(a.size for k, a in arrays.items() if k.startswith("conv"))
  print(f"wrote {argv[2]}: {len(conv_names())} VGG19 conv layers, {n:,} parameters")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
