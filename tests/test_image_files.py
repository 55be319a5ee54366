"""Tests for restoration.image_files (reading, writing): lossless round trips, alpha, safety
checks, input expansion."""

import os
import numpy as np
import png
import pytest
import tifffile
from PIL import Image, ImageCms

from restoration import image_ops
from restoration.image_files import writing
from restoration.image_files.reading import ImageInfo, read_image
from restoration.image_files.writing import write_image
from restoration.modes.restore import expand_inputs, plan_outputs

RNG = np.random.default_rng(0)


def _u8(*shape):
  return RNG.integers(0, 256, size=shape, dtype=np.uint8)


def _u16(*shape):
  a = RNG.integers(0, 65536, size=shape, dtype=np.uint16)
  a.flat[:4] = [0, 65535, 1, 256]  # extremes and a value whose low byte matters
  return a


def _write_png(path, pixels, bitdepth=None, **kw):
  """Write uint8/uint16 HxWxC (C 1..4, alpha last) with pypng (Pillow cannot at 16 bits)."""
  h, w, c = pixels.shape
  bitdepth = bitdepth or (16 if pixels.dtype == np.uint16 else 8)
  writer = png.Writer(w, h, greyscale=c < 3, alpha=c in (2, 4), bitdepth=bitdepth, **kw)
  with open(path, "wb") as f:
    writer.write(f, pixels.reshape(h, w * c))


def _read_png(path):
  """Raw samples of a PNG as HxWxC, alpha included, via pypng (no tRNS / sBIT conversion)."""
  w, h, rows, meta = png.Reader(filename=str(path)).read()
  return np.vstack([np.asarray(r) for r in rows]).reshape(h, w, meta["planes"])


# ------------------------------------------------------------ round trips


def _roundtrip(tmp_path, src, out_name="out.png"):
  image, info = read_image(str(src))
  dst = write_image(str(tmp_path / out_name), image, info)
  image2, info2 = read_image(dst)
  return image, info, image2, info2, dst


@pytest.mark.parametrize(
    "mode,shape",
    [("L", (13, 17)), ("LA", (13, 17, 2)), ("RGB", (13, 17, 3)), ("RGBA", (13, 17, 4))],
)
def test_png8_roundtrip(tmp_path, mode, shape):
  src_px = _u8(*shape)
  src = tmp_path / f"in_{mode}.png"
  Image.fromarray(src_px, mode).save(src)
  image, info, image2, info2, dst = _roundtrip(tmp_path, src)
  colour = 1 if mode in ("L", "LA") else 3
  assert image.dtype == np.float32 and image.shape == (13, 17, colour)
  assert (info.format, info.mode, info.bit_depth, info.channels) == ("PNG", mode, 8, colour)
  assert info.has_alpha == (mode in ("LA", "RGBA"))
  px = src_px if src_px.ndim == 3 else src_px[..., None]
  np.testing.assert_array_equal(image, px[..., :colour].astype(np.float32) / 255)
  written = Image.open(dst)
  assert written.mode == mode
  np.testing.assert_array_equal(np.asarray(written), src_px)  # bit exact, alpha included
  assert (info2.mode, info2.bit_depth, info2.channels) == (mode, 8, colour)


def test_png16_gray_roundtrip(tmp_path):
  src_px = _u16(11, 14)
  src = tmp_path / "g16.png"
  Image.fromarray(src_px).save(src)  # Pillow writes I;16 as 16-bit gray PNG
  image, info, image2, info2, dst = _roundtrip(tmp_path, src)
  assert (info.mode, info.bit_depth, info.channels, info.has_alpha) == ("I;16", 16, 1, False)
  np.testing.assert_array_equal(np.rint(image[..., 0] * 65535).astype(np.uint16), src_px)
  written = Image.open(dst)  # Pillow (independent decoder) reads our encoder's output
  assert written.mode.startswith("I")
  np.testing.assert_array_equal(np.asarray(written).astype(np.uint16), src_px)
  assert info2.bit_depth == 16


@pytest.mark.parametrize("channels", [3, 4, 2])
def test_png16_colour_roundtrip(tmp_path, channels):
  src_px = _u16(9, 12, channels)
  src = tmp_path / "c16.png"
  _write_png(src, src_px)
  image, info, image2, info2, dst = _roundtrip(tmp_path, src)
  colour = 3 if channels >= 3 else 1
  mode = {2: "LA;16", 3: "RGB;16", 4: "RGBA;16"}[channels]
  assert (info.mode, info.bit_depth, info.channels) == (mode, 16, colour)
  assert image.shape == (9, 12, colour)
  np.testing.assert_array_equal(np.rint(image * 65535).astype(np.uint16), src_px[..., :colour])
  if channels in (2, 4):
    assert info.alpha.dtype == np.uint16
    np.testing.assert_array_equal(info.alpha, src_px[..., -1])
  np.testing.assert_array_equal(_read_png(dst), src_px)  # exact, alpha included
  np.testing.assert_array_equal(image2, image)
  if channels in (3, 4):  # cross-check with Pillow, which keeps the high byte of each sample
    np.testing.assert_array_equal(np.asarray(Image.open(dst)), (src_px >> 8).astype(np.uint8))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_png_interlaced_read(tmp_path, dtype):
  px = _u16(13, 10, 3) if dtype == np.uint16 else _u8(13, 10, 3)
  src = tmp_path / "i.png"
  _write_png(src, px, interlace=True)  # Adam7
  image, info = read_image(str(src))
  maxv = 65535 if dtype == np.uint16 else 255
  assert info.bit_depth == (16 if dtype == np.uint16 else 8)
  np.testing.assert_array_equal(np.rint(image * maxv).astype(dtype), px)


def test_png16_corrupt_file_raises_value_error(tmp_path):
  src = tmp_path / "c.png"
  _write_png(src, _u16(4, 4, 3))
  data = bytearray(src.read_bytes())
  data[data.index(b"IDAT") + 6] ^= 0xFF  # inside the pixel data: checksum mismatch
  src.write_bytes(bytes(data))
  with pytest.raises(ValueError, match="c.png"):
    read_image(str(src))


def test_png16_transparent_colour_becomes_alpha(tmp_path):
  px = _u16(5, 6, 1)
  px[0, 0, 0] = 1234
  src = tmp_path / "t.png"
  _write_png(src, px, transparent=1234)  # tRNS colour key
  image, info = read_image(str(src))
  assert (info.mode, info.channels, info.alpha.dtype) == ("LA;16", 1, np.uint16)
  np.testing.assert_array_equal(info.alpha, np.where(px[..., 0] == 1234, 0, 65535))
  dst = write_image(str(tmp_path / "o.png"), image, info)  # written with an explicit alpha
  np.testing.assert_array_equal(_read_png(dst), np.concatenate([px, info.alpha[..., None]], -1))


def test_png16_significant_bits_rescaled(tmp_path):
  px = RNG.integers(0, 4096, size=(4, 5, 3), dtype=np.uint16)
  src = tmp_path / "s.png"
  _write_png(src, px, bitdepth=12)  # stored as 16-bit with an sBIT chunk
  image, info = read_image(str(src))
  assert (info.bit_depth, info.mode) == (16, "RGB;16")
  # 12 significant bits scaled to the full 16-bit range, as a 12-bit source would be
  np.testing.assert_array_equal(np.rint(image * 65535), np.rint(px * (65535 / 4095)))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_png_icc_profile_passed_through(tmp_path, dtype):
  icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
  src = tmp_path / "in.png"
  Image.fromarray(_u8(4, 5, 3)).save(src, icc_profile=icc)
  image, info = read_image(str(src))
  if dtype == np.uint16:  # pretend the source was 16-bit
    info.bit_depth, info.mode = 16, "RGB;16"
  dst = write_image(str(tmp_path / "o.png"), image, info)
  image2, info2 = read_image(dst)
  assert info2.icc_profile == icc and info2.bit_depth == info.bit_depth
  assert Image.open(dst).info["icc_profile"] == icc  # Pillow (independent reader) agrees
  np.testing.assert_array_equal(image2, image)


def test_jpeg_to_png(tmp_path):
  src = tmp_path / "photo.jpg"
  Image.fromarray(_u8(16, 24, 3)).save(src, quality=80)
  image, info, image2, info2, dst = _roundtrip(tmp_path, src)
  assert (info.format, info.mode, info.bit_depth, info.channels) == ("JPEG", "RGB", 8, 3)
  assert dst.endswith(".png") and info2.format == "PNG"
  np.testing.assert_array_equal(image2, image)  # decoded JPEG pixels kept exactly
  # writing JPEG on request works (lossy)
  out = write_image(str(tmp_path / "again.jpg"), image, info)
  assert Image.open(out).format == "JPEG"


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
def test_bmp_roundtrip(tmp_path, mode):
  src_px = _u8(10, 7, 4)[..., : len(mode)] if mode != "L" else _u8(10, 7)
  src = tmp_path / "in.bmp"
  if mode == "RGBA":
    src.write_bytes(writing._bmp_encode_rgba(src_px))
  else:
    Image.fromarray(src_px, mode).save(src)
  image, info, image2, info2, dst = _roundtrip(tmp_path, src, "out.bmp")
  assert (info.format, info.mode, info.bit_depth) == ("BMP", mode, 8)
  written = Image.open(dst)
  assert written.format == "BMP" and written.mode == mode
  np.testing.assert_array_equal(np.asarray(written), src_px)


@pytest.mark.parametrize("kind", ["rgb8", "gray16", "rgb16", "rgba16", "la16", "gray8"])
def test_tiff_roundtrip(tmp_path, kind):
  src = tmp_path / "in.tif"
  if kind == "rgb8":
    src_px = _u8(9, 11, 3)
    Image.fromarray(src_px).save(src, compression="tiff_lzw")
  elif kind == "gray8":
    src_px = _u8(9, 11)
    Image.fromarray(src_px).save(src)
  elif kind == "gray16":
    src_px = _u16(9, 11)
    Image.fromarray(src_px).save(src)
  else:
    src_px = _u16(9, 11, {"rgb16": 3, "rgba16": 4, "la16": 2}[kind])
    kw = {"photometric": "rgb" if src_px.shape[-1] >= 3 else "minisblack"}
    if src_px.shape[-1] in (2, 4):
      kw["extrasamples"] = ["unassalpha"]
    tifffile.imwrite(src, src_px, planarconfig="contig", **kw)
  image, info, image2, info2, dst = _roundtrip(tmp_path, src, "out.tiff")
  depth = 16 if "16" in kind else 8
  assert info.format == "TIFF" and info.bit_depth == depth and info2.bit_depth == depth
  assert info.has_alpha == (kind in ("rgba16", "la16"))
  back = tifffile.imread(dst)
  assert back.dtype == src_px.dtype
  np.testing.assert_array_equal(back, src_px)
  np.testing.assert_array_equal(image2, image)


def test_alpha_preserved_when_colour_changes(tmp_path):
  src_px = _u8(8, 9, 4)
  src_px[..., 3] = np.arange(72, dtype=np.uint8).reshape(8, 9) * 3
  src = tmp_path / "a.png"
  Image.fromarray(src_px, "RGBA").save(src)
  image, info = read_image(str(src))
  restored = 1.0 - image  # the "model" changes colours only
  dst = write_image(str(tmp_path / "out" / "a.png"), restored, info)  # creates out/
  written = np.asarray(Image.open(dst))
  np.testing.assert_array_equal(written[..., 3], src_px[..., 3])
  np.testing.assert_array_equal(written[..., :3], 255 - src_px[..., :3])


def test_palette_png_reads_as_rgb(tmp_path):
  src = tmp_path / "p.png"
  Image.fromarray(_u8(6, 5, 3)).convert("P", palette=Image.Palette.ADAPTIVE, colors=8).save(src)
  image, info = read_image(str(src))
  assert info.mode == "P" and info.channels == 3 and info.bit_depth == 8
  np.testing.assert_array_equal(image, np.asarray(Image.open(src).convert("RGB")) / np.float32(255))


def test_model_channel_mismatch_is_converted_back(tmp_path):
  src = tmp_path / "g.png"
  Image.fromarray(_u8(5, 6), "L").save(src)
  image, info = read_image(str(src))
  rgb = image_ops.to_channels(image, 3)  # a model trained on RGB
  dst = write_image(str(tmp_path / "o.png"), rgb, info)  # written back as gray
  np.testing.assert_array_equal(np.asarray(Image.open(dst)), np.asarray(Image.open(src)))


# ------------------------------------------------------------ safety


def test_refuses_existing_output_and_overwrite_works(tmp_path):
  src = tmp_path / "in.png"
  Image.fromarray(_u8(4, 4, 3)).save(src)
  image, info = read_image(str(src))
  dst = str(tmp_path / "out.png")
  write_image(dst, image, info)
  with pytest.raises(FileExistsError, match="--overwrite") as err:
    write_image(dst, 1.0 - image, info)
  assert dst in str(err.value)
  np.testing.assert_array_equal(read_image(dst)[0], image)  # untouched
  write_image(dst, 1.0 - image, info, overwrite=True)
  np.testing.assert_allclose(read_image(dst)[0], 1.0 - image, atol=1e-6)
  assert sorted(os.listdir(tmp_path)) == ["in.png", "out.png"]  # no temp files left


def test_never_writes_over_input(tmp_path):
  src = tmp_path / "in.png"
  Image.fromarray(_u8(4, 4, 3)).save(src)
  before = src.read_bytes()
  image, info = read_image(str(src))
  for target in (str(src), str(tmp_path / "." / "in.png")):
    with pytest.raises(ValueError, match="input"):
      write_image(target, image, info, overwrite=True)
  os.symlink(src, tmp_path / "link.png")
  with pytest.raises(ValueError):
    write_image(str(tmp_path / "link.png"), image, info, overwrite=True)
  assert src.read_bytes() == before
  with pytest.raises(ValueError, match="extension"):
    write_image(str(tmp_path / "x.gif"), image, info)


def test_plan_outputs(tmp_path):
  indir = tmp_path / "in"
  (indir / "sub").mkdir(parents=True)
  for name in ["a.jpg", "b.png", "c.tif", "d.bmp", "sub/e.JPEG"]:
    (indir / name).write_bytes(b"x")
  inputs = expand_inputs(str(indir))
  out = tmp_path / "out"
  plan = plan_outputs(inputs, str(out), overwrite=False)
  assert [os.path.relpath(d, out) for _, d in plan] == [
      "a.png",
      "b.png",
      "c.tif",
      "d.bmp",
      os.path.join("sub", "e.png"),
  ]
  assert [s for s, _ in plan] == inputs
  # an existing target is refused up front (names it), unless overwrite
  out.mkdir()
  (out / "c.tif").write_bytes(b"old")
  with pytest.raises(FileExistsError, match="c.tif"):
    plan_outputs(inputs, str(out), overwrite=False)
  assert len(plan_outputs(inputs, str(out), overwrite=True)) == 5
  # single file: base name
  assert plan_outputs([str(indir / "a.jpg")], str(out), overwrite=False) == [
      (str(indir / "a.jpg"), str(out / "a.png"))
  ]
  assert plan_outputs([], str(out), overwrite=False) == []


def test_plan_outputs_rejects_collisions_and_inputs(tmp_path):
  for name in ["x.jpg", "x.png", "y.png"]:
    (tmp_path / name).write_bytes(b"x")
  with pytest.raises(ValueError, match="both"):
    plan_outputs(
        [str(tmp_path / "x.jpg"), str(tmp_path / "x.png")], str(tmp_path / "o"), overwrite=True
    )
  # output directory == input directory: y.png would replace itself
  with pytest.raises(ValueError, match="input"):
    plan_outputs([str(tmp_path / "y.png")], str(tmp_path), overwrite=True)
  # x.jpg -> x.png, which is another input
  with pytest.raises(ValueError, match="input"):
    plan_outputs(
        [str(tmp_path / "x.jpg"), str(tmp_path / "y.png")], str(tmp_path / "."), overwrite=True
    )


def test_expand_inputs(tmp_path):
  (tmp_path / "d" / "deep").mkdir(parents=True)
  for name in ["d/b.png", "d/a.JPG", "d/notes.txt", "d/deep/c.tiff", "d/deep/e.bmp", "f.jpeg"]:
    (tmp_path / name).write_bytes(b"x")
  d = tmp_path / "d"
  assert expand_inputs(str(d)) == sorted(
      [str(d / "a.JPG"), str(d / "b.png"), str(d / "deep" / "c.tiff"), str(d / "deep" / "e.bmp")]
  )
  assert expand_inputs(str(d / "*.png")) == [str(d / "b.png")]
  assert expand_inputs(str(tmp_path / "**" / "*.bmp")) == [str(d / "deep" / "e.bmp")]
  assert expand_inputs(str(d / "*")) == expand_inputs(str(d))  # files + matched dirs, no txt
  assert expand_inputs(str(tmp_path / "f.jpeg")) == [str(tmp_path / "f.jpeg")]
  assert expand_inputs(str(d / "notes.txt")) == [str(d / "notes.txt")]  # explicit file
  for missing in [str(tmp_path / "nope.png"), str(tmp_path / "*.gif"), str(tmp_path / "empty")]:
    if missing.endswith("empty"):
      os.mkdir(missing)
    with pytest.raises(FileNotFoundError, match="no images match") as err:
      expand_inputs(missing)
    assert missing in str(err.value)


def test_image_info_repr_has_no_pixels(tmp_path):
  info = ImageInfo(
      path="",
      format="PNG",
      mode="RGBA",
      bit_depth=8,
      channels=3,
      alpha=np.zeros((2, 2), np.uint8),
      height=2,
      width=2,
  )
  assert "alpha=yes" in repr(info) and info.max_value == 255
