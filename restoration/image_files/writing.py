"""Writing restored images back like their sources (``launch.py --mode=restore``).

`write_image` writes with the size, channel layout (alpha re-attached from the
`reading.ImageInfo` that `reading.read_image` returned) and bit depth of the source, never
touching the inputs: `restore.plan_outputs` decides every output path before anything is
processed, and `write_image` refuses to write over its source or, unless told to, over any
existing file. Codecs as in `reading`: Pillow where it is lossless, ``pypng`` for 16-bit PNGs,
``tifffile`` for 16-bit TIFFs.
"""

from __future__ import annotations

import io
import os
import struct
import tempfile
import warnings
import zlib
from typing import Optional

import numpy as np
import png  # pypng
import tifffile
from PIL import Image, features

from restoration import image_ops
from restoration.image_files.reading import IMAGE_EXTENSIONS, ImageInfo

__all__ = [
    "LOSSLESS_EXTENSIONS",
    "write_image",
    "exists_error",
    "same_file",
]

#: Extensions restore.plan_outputs keeps; anything else (JPEG) is written as ``.png``.
LOSSLESS_EXTENSIONS = (".png", ".bmp", ".tif", ".tiff")

_FORMAT_BY_EXT = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    "": "PNG",
}


def _png16(full: np.ndarray, icc: Optional[bytes]) -> bytes:
  """uint16 HxWxC (C in 1..4, alpha last) -> 16-bit PNG bytes, via pypng."""
  h, w, c = full.shape
  buf = io.BytesIO()
  png.Writer(w, h, greyscale=c < 3, alpha=c in (2, 4), bitdepth=16, compression=6).write(
      buf, full.reshape(h, w * c)
  )
  if not icc:
    return buf.getvalue()
  # pypng has no ICC option: splice an iCCP chunk (name, NUL, method 0, zlib data) after IHDR.
  chunks = list(png.Reader(bytes=buf.getvalue()).chunks())
  chunks.insert(1, (b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc)))
  out = io.BytesIO()
  png.write_chunks(out, chunks)
  return out.getvalue()


def _bmp_encode_rgba(rgba: np.ndarray) -> bytes:
  """32-bit BI_BITFIELDS BMP (V4 header) with an alpha mask, which Pillow reads back as RGBA.

  Pillow's own BMP writer stores RGBA as plain 32-bit BI_RGB, whose 4th byte readers (Pillow
  included) ignore, so alpha would be lost; no installed library writes an alpha mask.
  """
  h, w, _ = rgba.shape
  pixels = rgba[::-1][..., [2, 1, 0, 3]].astype(np.uint8).tobytes()  # bottom-up BGRA
  offset = 14 + 108
  header = b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset)
  info = struct.pack("<IiiHHIIiiII", 108, w, h, 1, 32, 3, len(pixels), 2835, 2835, 0, 0)
  info += struct.pack("<IIII", 0x00FF0000, 0x0000FF00, 0x000000FF, 0xFF000000)  # R G B A
  info += struct.pack("<I", 0x73524742) + b"\x00" * 48  # LCS_sRGB; endpoints, gammas unused
  return header + info + pixels


def _encode(
    pixels: np.ndarray, alpha: Optional[np.ndarray], fmt: str, path: str, icc: Optional[bytes]
) -> bytes:
  """Integer colour [h, w, 1|3] (+ alpha) -> file bytes in ``fmt``."""
  if fmt in ("JPEG", "BMP") and pixels.dtype == np.uint16:
    warnings.warn(
        f"{path}: {fmt} holds 8 bits per channel; writing 8-bit (use .png or "
        f".tif to keep 16 bits)"
    )
    pixels = ((pixels.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if alpha is not None:
      alpha = ((alpha.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
  if fmt == "JPEG" and alpha is not None:
    warnings.warn(f"{path}: JPEG has no alpha channel; dropping it (use .png)")
    alpha = None
  full = pixels if alpha is None else np.concatenate([pixels, alpha[..., None]], axis=-1)
  if full.dtype == np.uint16 and fmt == "PNG":
    return _png16(full, icc)
  buf = io.BytesIO()
  if full.dtype == np.uint16 and fmt == "TIFF":
    kw = {
        "photometric": "rgb" if pixels.shape[-1] == 3 else "minisblack",
        "planarconfig": "contig",
        "compression": "zlib",
        "extratags": [(34675, 7, len(icc), icc, True)] if icc else [],
    }
    if alpha is not None:
      kw["extrasamples"] = ["unassalpha"]
    tifffile.imwrite(buf, full if full.shape[-1] > 1 else full[..., 0], **kw)
    return buf.getvalue()
  if fmt == "BMP" and alpha is not None:
    if pixels.shape[-1] == 1:
      warnings.warn(f"{path}: BMP has no gray+alpha layout; writing RGBA")
      full = full[..., [0, 0, 0, 1]]
    return _bmp_encode_rgba(full)
  mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[full.shape[-1]]
  kw = {"icc_profile": icc} if icc and fmt in ("PNG", "JPEG", "TIFF") else {}
  if fmt == "JPEG":
    kw.update(quality=95, subsampling=0)
  elif fmt == "TIFF" and features.check("libtiff"):
    kw["compression"] = "tiff_adobe_deflate"
  elif fmt == "PNG":
    kw["compress_level"] = 6
  Image.fromarray(full[..., 0] if mode == "L" else full, mode).save(buf, format=fmt, **kw)
  return buf.getvalue()


def exists_error(path: str) -> FileExistsError:
  return FileExistsError(
      f"refusing to overwrite existing file {path!r} " f"(pass --overwrite to replace it)"
  )


def same_file(a: str, b: str) -> bool:
  if os.path.realpath(a) == os.path.realpath(b):
    return True
  try:
    return os.path.samefile(a, b)  # hard links, case-insensitive file systems
  except OSError:
    return False


def _quantise(image: np.ndarray, depth: int) -> np.ndarray:
  maxv = (1 << depth) - 1
  out = np.rint(np.clip(np.nan_to_num(image, nan=0.0), 0.0, 1.0) * maxv)
  return out.astype(np.uint16 if depth == 16 else np.uint8)


def write_image(path: str, image: np.ndarray, info: ImageInfo, *, overwrite: bool = False) -> str:
  """Write a restored float HWC image in [0, 1] like the source described by ``info``.

  (One function on purpose: the checks that protect the user's files run in this order.)

  The image is clipped to [0, 1], converted to ``info.channels`` (via ``image_ops.to_channels`` if
  the model produced another count) and rounded to ``info.bit_depth`` (uint8 / uint16); the
  alpha channel from ``info`` is re-attached unchanged. The format follows the extension of
  ``path`` (.png / none: PNG; .jpg/.jpeg: JPEG, quality 95 — lossy, warns; .bmp; .tif/.tiff).
  Formats that cannot hold the data degrade with a warning (JPEG: no alpha, 8-bit; BMP: 8-bit).

  Raises:
    ValueError: ``path`` resolves to the file the image was read from (even with
      ``overwrite``), the extension is unknown, or the size does not match the alpha channel.
    FileExistsError: ``path`` exists and ``overwrite`` is False (message names the path and
      suggests ``--overwrite``). The file is created exclusively, so a file appearing
      meanwhile is not clobbered either; with ``overwrite`` it is replaced atomically.

  Returns the path written.
  """
  path = os.fspath(path)
  if info.path and same_file(path, info.path):
    raise ValueError(f"refusing to write the output over its input {info.path!r}")
  ext = os.path.splitext(path)[1].lower()
  if ext not in _FORMAT_BY_EXT:
    raise ValueError(
        f"unsupported output extension {ext!r} for {path!r}; use one of "
        f"{', '.join(sorted(set(IMAGE_EXTENSIONS)))}"
    )
  if os.path.lexists(path) and not overwrite:
    raise exists_error(path)

  image = np.asarray(image, dtype=np.float32)
  if image.ndim == 2:
    image = image[..., None]
  if image.ndim != 3:
    raise ValueError(f"expected an HWC image, got shape {image.shape}")
  image = image_ops.to_channels(image, info.channels)
  if info.alpha is not None and info.alpha.shape != image.shape[:2]:
    raise ValueError(
        f"image size {image.shape[:2]} does not match the alpha channel "
        f"{info.alpha.shape} of {info.path!r}"
    )
  data = _encode(
      _quantise(image, info.bit_depth), info.alpha, _FORMAT_BY_EXT[ext], path, info.icc_profile
  )

  parent = os.path.dirname(os.path.abspath(path))
  os.makedirs(parent, exist_ok=True)
  if not overwrite:
    try:
      with open(path, "xb") as f:
        f.write(data)
    except FileExistsError:
      raise exists_error(path) from None
    return path
  fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=ext, dir=parent)
  try:
    try:  # a replaced file keeps its permissions (a private 0600 stays private)
      mode = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:  # a new one gets what open() would give it; mkstemp's is 0600
      umask = os.umask(0)
      os.umask(umask)
      mode = 0o666 & ~umask
    os.chmod(tmp, mode)
    with os.fdopen(fd, "wb") as f:
      f.write(data)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise
  return path
