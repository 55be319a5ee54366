"""Small data builders shared by the restoration.data tests (written to tmp_path)."""

import os

import numpy as np
from PIL import Image

from configs import default
from restoration import image_ops


def make_config(train="builtin", eval_spec=None, **overrides):
  c = default.get_config()
  c.data.train = train
  c.data.eval = eval_spec or train
  c.seed = 0
  c.batch_size = 4
  c.patch_size = 8
  c.data.channels = 3
  c.data.num_workers = 0
  for key, value in overrides.items():
    target = c
    *path, last = key.split(".")
    for p in path:
      target = target[p]
    target[last] = value
  return c


def write_const_folder(root, n=8, hw=(12, 14), channels=3, start=1):
  """n PNGs, image i filled with the constant start + i (identifiable inside any crop)."""
  os.makedirs(root, exist_ok=True)
  for i in range(n):
    shape = hw if channels == 1 else hw + (3,)
    Image.fromarray(np.full(shape, start + i, np.uint8)).save(os.path.join(root, f"{i:03d}.png"))
  return str(root)


def coord_image(h, w):
  """RGB image whose R = row, G = column, B = 7: crops/transforms are recoverable."""
  yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
  return np.stack([yy, xx, np.full_like(yy, 7)], -1).astype(np.uint8)


def is_dihedral_crop(patch, image):
  """True when patch is one of the 8 flips/rotations of a crop of coord_image `image`."""
  p = patch.shape[0]
  for t in range(8):
    q = image_ops.dihedral(patch, t)  # the group: applying some t undoes any transform
    y0, x0 = int(q[0, 0, 0]), int(q[0, 0, 1])
    if y0 + p <= image.shape[0] and x0 + p <= image.shape[1]:
      if np.array_equal(q, image[y0:y0 + p, x0:x0 + p]):
        return True
  return False


def take(it, n):
  return [next(it) for _ in range(n)]


# ------------------------------------------------------------------------------ sources
