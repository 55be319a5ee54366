"""Reading users' images: restore mode's inputs and, through `read_pixels`, every data source.

Restore mode takes images that are *already* degraded and writes the restored ones with the same
size, channel layout (alpha kept aside by :func:`read_image`, re-attached by
`writing.write_image`) and bit depth; :class:`ImageInfo` carries what the writer needs.

Codecs: Pillow for everything it represents losslessly (8-bit PNG/JPEG/BMP/TIFF, 16-bit gray
TIFF). Pillow silently truncates 16-bit *colour* PNGs and TIFFs to 8 bits (and cannot open
16-bit gray+alpha TIFFs), so 16-bit PNGs go through ``pypng`` and 16-bit TIFFs through
``tifffile`` (LZW/PackBits-compressed 16-bit TIFFs additionally need ``imagecodecs`` and fail
with a clear error without it). It is the one decoder: the data sources read training and eval images through
:func:`read_pixels` too, so 16-bit colour and EXIF orientation are treated the same everywhere.
"""

from __future__ import annotations

import dataclasses
import io
import os
import warnings
import zlib
from typing import Optional, Tuple

import numpy as np
import png  # pypng
import tifffile
from PIL import Image, ImageOps

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageInfo",
    "read_image",
    "read_pixels",
]

#: Extensions restore.expand_inputs picks up from directories and globs (lower case).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

_MODE16 = {1: "I;16", 2: "LA;16", 3: "RGB;16", 4: "RGBA;16"}  # samples per pixel -> mode
# Pillow modes read through a conversion to one of L / LA / RGB / RGBA ('P' depends on tRNS).
_PILLOW_CONVERT = {
    "1": "L",
    "La": "LA",
    "PA": "RGBA",
    "RGBa": "RGBA",
    "RGBX": "RGB",
    "CMYK": "RGB",
    "YCbCr": "RGB",
    "LAB": "RGB",
    "HSV": "RGB",
}


@dataclasses.dataclass(eq=False)
class ImageInfo:
  """What :func:`write_image` needs to write a restored image back like its source.

  Attributes:
    path: real path of the source file ('' if none); :func:`write_image` never writes there.
    format: source format: 'PNG', 'JPEG', 'BMP' or 'TIFF' (Pillow's names).
    mode: source layout, Pillow style: 'L', 'LA', 'RGB', 'RGBA', 'P', '1', 'CMYK' ... for
      8-bit sources, 'I;16', 'LA;16', 'RGB;16', 'RGBA;16' for 16-bit ones.
    bit_depth: 8 or 16, the depth written back.
    channels: colour channels of the array :func:`read_image` returns and
      :func:`write_image` expects: 1 (gray) or 3 (RGB). Alpha is not counted.
    alpha: the alpha channel, HxW in its original integer dtype (uint8 / uint16), or None.
      Re-attached unchanged on write.
    height, width: image size.
    icc_profile: embedded ICC profile bytes (passed through on write where possible).
  """

  path: str
  format: str
  mode: str
  bit_depth: int
  channels: int
  alpha: Optional[np.ndarray]
  height: int
  width: int
  icc_profile: Optional[bytes] = None

  @property
  def has_alpha(self) -> bool:
    return self.alpha is not None

  @property
  def max_value(self) -> int:
    return (1 << self.bit_depth) - 1

  def __repr__(self) -> str:  # no pixel dump of the alpha channel
    return (
        f"ImageInfo(path={self.path!r}, format={self.format!r}, mode={self.mode!r}, "
        f"bit_depth={self.bit_depth}, channels={self.channels}, "
        f"alpha={'yes' if self.has_alpha else 'no'}, size={self.height}x{self.width})"
    )


# ------------------------------------------------------------------------------------ reading


def _split_alpha(arr: np.ndarray) -> Tuple[np.ndarray, Optional[np.ndarray]]:
  """HxWxC with C in 1..4 -> (colour channels, alpha or None); 2 and 4 channels carry alpha."""
  if arr.shape[-1] in (2, 4):
    return np.ascontiguousarray(arr[..., :-1]), arr[..., -1].copy()
  return np.ascontiguousarray(arr), None


def _from_pillow(im: Image.Image) -> Tuple[np.ndarray, Optional[np.ndarray], int, str]:
  """Pillow image -> (colour uint array HxWxC, alpha or None, bit depth, original mode)."""
  mode = im.mode
  if mode.startswith("I;16") or mode == "I":  # 16-bit gray (TIFF); 'I' is Pillow's int32
    arr = np.asarray(im)
    if arr.min() < 0 or arr.max() > 65535:
      raise ValueError(f"unsupported {mode} image with values outside 0..65535")
    return arr.astype(np.uint16)[..., None], None, 16, "I;16"
  target = _PILLOW_CONVERT.get(mode, mode)
  if mode == "P":  # Pillow expands the palette and its tRNS entries
    target = "RGBA" if "transparency" in im.info else "RGB"
  if target not in ("L", "LA", "RGB", "RGBA"):
    raise ValueError(f"unsupported image mode {mode!r} (float or 32-bit integer images)")
  arr = np.asarray(im if target == mode else im.convert(target))
  return (*_split_alpha(arr if arr.ndim == 3 else arr[..., None]), 8, mode)


def _read_png16(data: bytes, path: str) -> Tuple[np.ndarray, Optional[np.ndarray], str]:
  """16-bit PNG -> (uint16 colour HxWxC, uint16 alpha or None, mode), via pypng.

  ``asDirect`` turns a tRNS colour key into an explicit alpha channel and, for an sBIT chunk,
  returns fewer bits; those are rescaled to the full 16-bit range here.
  """
  try:
    width, height, rows, meta = png.Reader(bytes=data).asDirect()
    arr = np.vstack([np.asarray(row, np.uint16) for row in rows])
  except (png.Error, zlib.error) as e:  # bad CRC, truncated or corrupt data
    raise ValueError(f"cannot decode PNG {path!r}: {e}") from e
  arr = arr.reshape(height, width, meta["planes"])
  if meta["bitdepth"] != 16:
    arr = np.rint(arr * (65535 / ((1 << meta["bitdepth"]) - 1))).astype(np.uint16)
  return (*_split_alpha(arr), _MODE16[meta["planes"]])


def _tiff_bits(path: str) -> int:
  """Bits per sample of a TIFF's first page (8 if tifffile cannot parse it: Pillow decides)."""
  try:
    with tifffile.TiffFile(path) as tif:
      return int(tif.pages[0].bitspersample)
  except Exception:
    return 8


def _read_tiff16(path: str) -> Tuple[np.ndarray, Optional[np.ndarray], str, Optional[bytes]]:
  """16-bit TIFF -> (uint16 colour HxWxC, uint16 alpha or None, mode, ICC profile)."""
  with tifffile.TiffFile(path) as tif:
    page = tif.pages[0]
    try:
      arr = page.asarray()
    except Exception as e:  # missing codec (LZW, PackBits need imagecodecs)
      raise ValueError(
          f"cannot decode 16-bit TIFF {path!r} ({page.compression.name} " f"compression): {e}"
      ) from e
    spp = int(page.samplesperpixel)
    icc = page.tags.get(34675)  # InterColorProfile
    icc = bytes(icc.value) if icc is not None else None
  if arr.dtype != np.uint16:
    raise ValueError(f"unsupported TIFF sample type {arr.dtype} in {path!r}")
  if arr.ndim == 2:
    arr = arr[..., None]
  elif arr.ndim == 3 and arr.shape[-1] != spp and arr.shape[0] == spp:
    arr = np.moveaxis(arr, 0, -1)  # planar configuration 'separate'
  if arr.ndim != 3 or arr.shape[-1] not in _MODE16:
    raise ValueError(f"unsupported TIFF layout {arr.shape} in {path!r}")
  return (*_split_alpha(arr), _MODE16[arr.shape[-1]], icc)


def read_pixels(path: str) -> Tuple[np.ndarray, ImageInfo]:
  """The one image decoder: integer colour pixels (uint8 or uint16 HWC, 1 or 3 channels) + info.

  Supports PNG (8/16-bit gray, gray+alpha, RGB, RGBA, palette), JPEG, BMP and TIFF (8/16-bit).
  An alpha channel is kept aside in ``info.alpha``. Palette and bilevel images come back as
  RGB(A) / L; CMYK/YCbCr as RGB. JPEG EXIF orientation is applied, so the array is upright as
  viewers show it. Multi-frame files: first frame only (with a warning). A 16-bit PNG's
  transparent colour (tRNS) comes back as an alpha channel. 16-bit colour is kept at 16 bits
  (Pillow alone would truncate it). Raises ValueError naming the file when it cannot be decoded.
  """
  path = os.fspath(path)
  with open(path, "rb") as f:
    data = f.read()
  try:
    if data[:4] in (b"II*\x00", b"MM\x00*") and _tiff_bits(path) > 8:
      arr, alpha, mode, icc = _read_tiff16(path)  # Pillow cannot even open some of these
      fmt, depth = "TIFF", 16
    else:
      with Image.open(io.BytesIO(data)) as im:  # reads the header only, until im.load()
        fmt = im.format
        if getattr(im, "n_frames", 1) > 1:
          warnings.warn(f"{path}: {im.n_frames} frames, reading only the first")
        icc = im.info.get("icc_profile")
        if fmt == "PNG" and data[24] == 16:  # IHDR bit depth; Pillow would keep 8 bits
          arr, alpha, mode = _read_png16(data, path)
          depth = 16
        else:
          if fmt == "JPEG":
            im = ImageOps.exif_transpose(im)
          im.load()
          arr, alpha, depth, mode = _from_pillow(im)
  except (OSError, SyntaxError, Image.DecompressionBombError) as e:
    raise ValueError(f"cannot read image file {path}: {e}") from e
  if fmt not in ("PNG", "JPEG", "BMP", "TIFF"):
    warnings.warn(f"{path}: {fmt} is not one of PNG/JPEG/BMP/TIFF; reading it anyway")
  info = ImageInfo(
      path=os.path.realpath(path),
      format=fmt,
      mode=mode,
      bit_depth=depth,
      channels=arr.shape[-1],
      alpha=alpha,
      height=arr.shape[0],
      width=arr.shape[1],
      icc_profile=icc,
  )
  return arr, info


def read_image(path: str) -> Tuple[np.ndarray, ImageInfo]:
  """`read_pixels` as float32 HWC in [0, 1] (colour channels only), plus its :class:`ImageInfo`."""
  arr, info = read_pixels(path)
  return arr.astype(np.float32) / np.float32(info.max_value), info
