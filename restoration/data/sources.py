"""Random-access image sources named by a spec string (`config.data.train` / `config.data.eval`).

Every source is a picklable random-access sequence (`len(src)`, `src[i]`) of uint8 HWC arrays
with `channels` channels (1 or 3), plus `src.name(i)` and `src.sizes()` (the (h, w) of every
image, known without decoding where the format allows it; None for a tfds dataset whose image
shape is not static). Grain worker processes receive pickled sources: caches are dropped when
pickling and rebuilt lazily in each process.

Specs
  builtin            natural photographs shipped inside scikit-image (no network needed), with a
                     fixed train/eval split:
                       train (12): brick, chelsea, clock, grass, gravel, hubble_deep_field,
                                   immunohistochemistry, moon, page, rocket,
                                   stereo_motorcycle (left view), text
                                   (gray: brick clock grass gravel moon page text;
                                    colour: chelsea hubble_deep_field immunohistochemistry
                                    rocket stereo_motorcycle)
                       eval (4):   camera (gray), astronaut (colour), coffee (colour), coins (gray)
  builtin:color      the colour photographs of each split only (train 5, eval 2: astronaut,
                     coffee): for colourisation, where gray photos would be trivially exact.
                     Left out: cat (duplicate of chelsea), retina (mostly black border), and the
                     synthetic / binary / microscopy images (colorwheel, logo, horse, cell, ...).
  folder:PATH        every .png .jpg .jpeg .bmp .tif .tiff under PATH, recursively, sorted by
                     relative path. Names are the relative paths. Every file is decoded at
                     start-up (threads), so a truncated or corrupt file fails there, all of
                     them named in one error, instead of at some step on every resume; decoded
                     images are cached per process up to DECODE_CACHE_BYTES (1 GiB), so the
                     first epoch (with data.num_workers=0) and later ones skip decoding.
  npz:GLOB           uint8 NHWC arrays under key `image` in the .npz files matching GLOB (sorted;
                     `**` allowed). Shapes are read from the npy headers at start-up; each file is
                     decompressed once per process, on first use, and kept in memory.
  tfds:NAME[:SPLIT]  a PREPARED tensorflow-datasets dataset, read with `tfds.data_source` (random
                     access, array_record or parquet format, no TensorFlow needed). Never
                     downloads. SPLIT defaults to `train` for training and to the first of
                     `test`, `validation`, `train` that exists for evaluation. The image is the
                     feature `image`, else `hr` (e.g. div2k), else the first image-like feature.
                     tensorflow_datasets is imported only for these specs.
  pairs:INPUT_DIR,TARGET_DIR  (input, target) pairs matched by file stem, each item the two
                     images stacked on the channel axis (restoration.data.pairs); for
                     config.task='paired', and for evaluating any run on your own noisy/clean
                     pairs (with an empty eval chain nothing synthetic is added).
  dataset:NAME       a set of the registry (restoration.datasets: bsd68, set12, cbsd68,
                     train400, ...), read as folder: from its verified local copy (a data root
                     such as ../shared/data, or the cache `python -m restoration.datasets
                     fetch NAME` fills).

Pixel conversion (all sources)
  * Files are decoded by `image_files.reading.read_pixels`, the decoder restore mode uses too (EXIF
    orientation applied; 16-bit colour kept by pypng / tifffile).
  * 16-bit images are scaled to uint8 by round(v / 257) (65535 -> 255).
  * Alpha is dropped (LA, RGBA, PA, palette with transparency); 1-bit and palette images are
    expanded; CMYK / YCbCr / LAB / HSV are converted to RGB by Pillow.
  * gray -> RGB repeats the channel; RGB -> gray is BT.601 luma rounded half up:
    Y = (299 R + 587 G + 114 B + 500) // 1000.
  * 32-bit float images (mode F) are rejected with a clear error.
"""

from __future__ import annotations

import concurrent.futures
import glob
import os
import zipfile
from typing import Sequence

import numpy as np
from PIL import Image

from restoration.image_files import reading
from restoration import image_ops
from restoration.image_files.reading import IMAGE_EXTENSIONS  # one list for reading and restoring

BUILTIN_TRAIN = (
    "brick", "chelsea", "clock", "grass", "gravel", "hubble_deep_field",
    "immunohistochemistry", "moon", "page", "rocket", "stereo_motorcycle", "text",
)
BUILTIN_EVAL = ("camera", "astronaut", "coffee", "coins")
BUILTIN_COLOR = frozenset({"chelsea", "hubble_deep_field", "immunohistochemistry", "rocket",
                           "stereo_motorcycle", "astronaut", "coffee"})

# Decoded images kept in memory per process by FolderSource (then decoding stops being cached).
DECODE_CACHE_BYTES = 1 << 30


# ---------------------------------------------------------------------------------------------
# Pixel conversion
# ---------------------------------------------------------------------------------------------

def as_uint8_image(a: np.ndarray, channels: int, name: str = "image") -> np.ndarray:
  """An HW / HWC (C in 1..4) uint8/uint16/bool array as uint8 HW`channels` (alpha dropped)."""
  a = np.asarray(a)
  if a.dtype == np.bool_:
    a = a.astype(np.uint8) * 255
  elif a.dtype == np.uint16:
    a = image_ops.to_uint8(a, 16)
  elif a.dtype != np.uint8:
    raise ValueError(f"{name}: unsupported pixel type {a.dtype} (expected uint8 or uint16)")
  if a.ndim == 2:
    a = a[..., None]
  if a.ndim != 3 or a.shape[-1] not in (1, 2, 3, 4):
    raise ValueError(f"{name}: expected an HW or HWC image with 1-4 channels, got {a.shape}")
  if a.shape[-1] in (2, 4):  # drop alpha
    a = a[..., :-1]
  return np.ascontiguousarray(image_ops.to_channels(a, check_channels(channels)))


def decode_image_file(path: str, channels: int) -> np.ndarray:
  """Decodes one image file (`reading.read_pixels`) to uint8 HWC with `channels`."""
  arr, _ = reading.read_pixels(path)
  return as_uint8_image(arr, channels, path)


# ---------------------------------------------------------------------------------------------
# Sources
# ---------------------------------------------------------------------------------------------

class Source(Sequence):
  """Random access to uint8 HWC images; subclasses fill in the pieces."""

  spec: str = ""
  channels: int = 3

  def name(self, i: int) -> str:
    raise NotImplementedError

  def sizes(self) -> list[tuple[int, int]] | None:
    raise NotImplementedError

  def __getstate__(self):
    # grain worker processes start with an empty cache rather than a pickled copy of ours.
    state = dict(self.__dict__)
    state.pop("_cache", None)
    state.pop("_cache_bytes", None)
    return state


class _DecodedSource(Source):
  """A source that decodes image i on demand and keeps up to DECODE_CACHE_BYTES per process."""

  _sizes: list[tuple[int, int]]

  def _decode(self, i: int) -> np.ndarray:
    raise NotImplementedError

  def sizes(self) -> list[tuple[int, int]]:
    return list(self._sizes)

  def __getitem__(self, i) -> np.ndarray:
    i = int(i)
    cache = self.__dict__.setdefault("_cache", {})
    a = cache.get(i)
    if a is None:
      a = self._decode(i)
      used = self.__dict__.get("_cache_bytes", 0)
      if used + a.nbytes <= DECODE_CACHE_BYTES:
        cache[i] = a
        self._cache_bytes = used + a.nbytes
    return a


class FolderSource(_DecodedSource):
  """Every image file under a folder (recursive, sorted)."""

  def __init__(self, path: str, channels: int, spec: str | None = None):
    self.spec = spec or f"folder:{path}"
    self.channels = channels
    self.root = os.path.abspath(os.path.expanduser(path))
    exts = " ".join(IMAGE_EXTENSIONS)
    if not os.path.isdir(self.root):
      raise FileNotFoundError(
          f"data spec {self.spec!r}: folder {self.root} does not exist (expected a folder "
          f"containing images with extensions {exts}, searched recursively)")
    files = []
    seen = {os.path.realpath(self.root)}  # a symlink loop (loop -> .) is walked once
    for dirpath, dirnames, filenames in os.walk(self.root, followlinks=True):
      real = [(d, os.path.realpath(os.path.join(dirpath, d))) for d in sorted(dirnames)]
      dirnames[:] = [d for d, r in real if r not in seen]
      seen.update(r for _, r in real)
      for f in filenames:
        if f.lower().endswith(IMAGE_EXTENSIONS):
          files.append(os.path.relpath(os.path.join(dirpath, f), self.root))
    if not files:
      raise FileNotFoundError(
          f"data spec {self.spec!r}: no images under {self.root} (accepted extensions: {exts},"
          " searched recursively)")
    self.files = sorted(files, key=lambda p: p.replace(os.sep, "/"))
    for f in self.files:
      self._header_size(f)  # cheap: garbage and unsupported modes fail before any decoding
    self._sizes = self._decode_all()

  def _decode_all(self, chunk: int = 64) -> list[tuple[int, int]]:
    """Decodes every file once (Pillow releases the GIL: threads); keeps them in the cache.

    Raises ValueError naming every file that fails to decode (truncated, corrupt data).
    """
    def decode(i):
      try:
        return self._decode(i), None
      except (OSError, ValueError, SyntaxError) as e:
        return None, f"{self.files[i]} ({str(e).splitlines()[0] if str(e) else type(e).__name__})"

    sizes, bad = [], []
    with concurrent.futures.ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
      for start in range(0, len(self.files), chunk):  # bounded memory: a chunk at a time
        for i, (a, error) in enumerate(pool.map(decode, range(start, min(start + chunk,
                                                                         len(self.files)))),
                                       start):
          if error:
            bad.append(error)
            continue
          sizes.append(a.shape[:2])
          used = self.__dict__.get("_cache_bytes", 0)
          if used + a.nbytes <= DECODE_CACHE_BYTES:
            self.__dict__.setdefault("_cache", {})[i] = a
            self._cache_bytes = used + a.nbytes
    if bad:
      more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
      raise ValueError(f"data spec {self.spec!r}: {len(bad)} of {len(self.files)} image files "
                       f"under {self.root} cannot be decoded: {'; '.join(bad[:5])}{more}; "
                       "remove or replace them")
    return sizes

  def _header_size(self, rel: str) -> tuple[int, int]:
    path = os.path.join(self.root, rel)
    try:
      with Image.open(path) as im:
        w, h = im.size
        mode = im.mode
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
      raise ValueError(f"data spec {self.spec!r}: unreadable image file {path}: {e}") from e
    if mode == "F":
      raise ValueError(f"{path}: 32-bit float images (PIL mode F) are not supported")
    return (h, w)

  def __len__(self) -> int:
    return len(self.files)

  def name(self, i: int) -> str:
    return self.files[i].replace(os.sep, "/")

  def _decode(self, i: int) -> np.ndarray:
    return decode_image_file(os.path.join(self.root, self.files[i]), self.channels)


class NpzSource(Source):
  """uint8 NHWC arrays under key `image` in the .npz files matching a glob."""

  def __init__(self, pattern: str, channels: int, spec: str | None = None):
    self.spec = spec or f"npz:{pattern}"
    self.channels = channels
    pattern = os.path.expanduser(pattern)
    self.files = sorted(glob.glob(pattern, recursive=True))
    if not self.files:
      raise FileNotFoundError(
          f"data spec {self.spec!r}: no files match {pattern} (expected .npz files holding "
          "uint8 NHWC images under key 'image')")
    self.shapes = [self._header_shape(f) for f in self.files]
    self.offsets = np.cumsum([0] + [s[0] for s in self.shapes])
    if self.offsets[-1] == 0:
      raise FileNotFoundError(f"data spec {self.spec!r}: the files matching {pattern} hold "
                              "no images")
    self._cache: dict[int, np.ndarray] = {}  # file index -> its whole array

  def _header_shape(self, path: str) -> tuple[int, ...]:
    try:
      with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        if "image.npy" not in names:
          keys = [n[:-4] for n in names if n.endswith(".npy")]
          raise ValueError(f"data spec {self.spec!r}: {path} has no key 'image' "
                           f"(keys: {keys})")
        with zf.open("image.npy") as f:
          version = np.lib.format.read_magic(f)
          if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
          elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
          else:
            shape, _, dtype = np.lib.format._read_array_header(f, version)  # pylint: disable=protected-access
    except (OSError, zipfile.BadZipFile, EOFError) as e:
      raise ValueError(f"data spec {self.spec!r}: cannot read {path}: {e}") from e
    if dtype != np.uint8 or len(shape) != 4 or shape[-1] not in (1, 2, 3, 4):
      raise ValueError(f"data spec {self.spec!r}: {path}['image'] must be uint8 NHWC with "
                       f"C in 1..4, got {dtype} {shape}")
    return tuple(shape)

  def __len__(self) -> int:
    return int(self.offsets[-1])

  def _locate(self, i: int) -> tuple[int, int]:
    if not 0 <= i < len(self):
      raise IndexError(i)
    f = int(np.searchsorted(self.offsets, i, side="right") - 1)
    return f, i - int(self.offsets[f])

  def name(self, i: int) -> str:
    f, j = self._locate(int(i))
    return f"{os.path.basename(self.files[f])}[{j}]"

  def sizes(self):
    out = []
    for s in self.shapes:
      out += [(s[1], s[2])] * s[0]
    return out

  def __getitem__(self, i):
    f, j = self._locate(int(i))
    arr = self.__dict__.setdefault("_cache", {}).get(f)
    if arr is None:
      try:
        with np.load(self.files[f]) as z:
          arr = z["image"]
      except Exception as e:  # pylint: disable=broad-except
        raise ValueError(f"data spec {self.spec!r}: cannot read {self.files[f]}: {e}") from e
      self._cache[f] = arr
    return as_uint8_image(arr[j], self.channels, self.name(i))


def _load_builtin(name: str) -> np.ndarray:
  from skimage import data as skdata  # pylint: disable=g-import-not-at-top
  a = getattr(skdata, name)()
  if isinstance(a, tuple):  # stereo_motorcycle -> (left, right, disparity)
    a = a[0]
  return a


class BuiltinSource(_DecodedSource):
  """scikit-image's bundled photographs, `train` or `eval` split (see module docstring)."""

  def __init__(self, split: str, channels: int, *, color_only: bool = False):
    if split not in ("train", "eval"):
      raise ValueError(f"builtin split must be 'train' or 'eval', got {split!r}")
    self.spec = "builtin:color" if color_only else "builtin"
    self.split = split
    self.channels = channels
    names = BUILTIN_TRAIN if split == "train" else BUILTIN_EVAL
    self.names = tuple(n for n in names if n in BUILTIN_COLOR) if color_only else names
    self._sizes = [tuple(self[i].shape[:2]) for i in range(len(self.names))]

  def __len__(self) -> int:
    return len(self.names)

  def name(self, i: int) -> str:
    return self.names[i]

  def _decode(self, i: int) -> np.ndarray:
    return as_uint8_image(_load_builtin(self.names[i]), self.channels, self.names[i])


def check_channels(channels) -> int:
  if channels not in (1, 3):
    raise ValueError(f"data.channels must be 1 (gray) or 3 (RGB), got {channels!r}")
  return int(channels)
