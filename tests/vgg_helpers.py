"""A narrow random-weight VGG19 and writers of its weights in the Keras HDF5 layouts
(shared by test_vgg and test_losses_perceptual)."""

import h5py
import numpy as np

from restoration.weights import vgg
from restoration.models.vgg import conv_names

WIDTHS = (4, 8, 8, 16, 16)


def random_arrays(seed=0, widths=WIDTHS):
  """{'conv1_1/kernel': ..., ...} of a narrow VGG19 (what a Keras file holds, TF layout)."""
  rng = np.random.default_rng(seed)
  out = {}
  for name in conv_names():
    kshape, bshape = vgg.expected_shapes(name, widths)
    out[f"{name}/kernel"] = (rng.standard_normal(kshape) / np.sqrt(9 * kshape[2])
                             ).astype(np.float32)
    out[f"{name}/bias"] = (0.1 * rng.standard_normal(bshape)).astype(np.float32)
  return out


def write_keras_h5(path, arrays, layout):
  """Writes `arrays` as Keras would: 'keras1' (block1_conv1_W_1:0 in the layer group),
  'keras2' (block1_conv1/kernel:0 in a subgroup), 'keras3' (block1_conv1/kernel), or
  'no_attrs' (Keras 1 names, no weight_names attribute)."""
  with h5py.File(path, "w") as f:
    names = []
    for name in conv_names():
      b, j = name[4:].split("_")
      layer = f"block{b}_conv{j}"
      names.append(layer)
      g = f.create_group(layer)
      if layout in ("keras1", "no_attrs"):
        wn = [f"{layer}_W_1:0", f"{layer}_b_1:0"]
      else:
        suffix = ":0" if layout == "keras2" else ""
        wn = [f"{layer}/kernel{suffix}", f"{layer}/bias{suffix}"]
      if layout != "no_attrs":
        g.attrs["weight_names"] = [n.encode("utf8") for n in wn]
      g.create_dataset(wn[0], data=arrays[f"{name}/kernel"])
      g.create_dataset(wn[1], data=arrays[f"{name}/bias"])
    f.create_group("block1_pool").attrs["weight_names"] = []   # weightless layers exist too
    f.attrs["layer_names"] = [n.encode("utf8") for n in names + ["block1_pool"]]
