"""restoration.data sources: folder, npz, builtin, tfds; start-up errors.

All data is written to tmp_path (tiny), except `builtin` (scikit-image's bundled photos).
"""

import os
import time

import numpy as np
import pytest
from PIL import Image

from restoration import data
from restoration.data import pipeline
from restoration.data import sources
from restoration.data import specs
from tests.data_helpers import coord_image, make_config, write_const_folder


@pytest.fixture
def mixed_folder(tmp_path):
  """Several modes / bit depths / formats, nested; returns (root, expected RGB by name)."""
  root = tmp_path / "mixed"
  (root / "sub" / "deeper").mkdir(parents=True)
  rng = np.random.default_rng(0)
  rgb = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)
  gray = rng.integers(0, 256, (10, 12), dtype=np.uint8)
  alpha = rng.integers(0, 256, (10, 12), dtype=np.uint8)
  g16 = rng.integers(0, 65536, (10, 12), dtype=np.uint16)
  g16[0, :4] = [0, 128, 129, 65535]
  expected = {}
  Image.fromarray(gray, "L").save(root / "a_gray.png")
  expected["a_gray.png"] = np.repeat(gray[..., None], 3, -1)
  Image.fromarray(np.stack([gray, alpha], -1), "LA").save(root / "b_gray_alpha.png")
  expected["b_gray_alpha.png"] = np.repeat(gray[..., None], 3, -1)
  Image.fromarray(rgb, "RGB").save(root / "sub" / "c_rgb.png")
  expected["sub/c_rgb.png"] = rgb
  Image.fromarray(np.concatenate([rgb, alpha[..., None]], -1), "RGBA").save(
      root / "sub" / "d_rgba.png")
  expected["sub/d_rgba.png"] = rgb
  Image.fromarray(g16).save(root / "sub" / "deeper" / "e_gray16.png")
  g8 = np.floor(g16 / 257.0 + 0.5).astype(np.uint8)
  assert list(g8[0, :4]) == [0, 0, 1, 255]
  expected["sub/deeper/e_gray16.png"] = np.repeat(g8[..., None], 3, -1)
  Image.fromarray(rgb).save(root / "f_rgb.bmp")
  expected["f_rgb.bmp"] = rgb
  Image.fromarray(rgb).save(root / "g_rgb.tif")
  expected["g_rgb.tif"] = rgb
  smooth = (coord_image(10, 12).astype(np.int32) * [20, 15, 30]).astype(np.uint8)
  Image.fromarray(smooth).save(root / "h_smooth.jpg", quality=95, subsampling=0)
  expected["h_smooth.jpg"] = ("lossy", smooth)
  (root / "notes.txt").write_text("not an image")
  return str(root), expected


def test_folder_source_modes_and_channels(mixed_folder):
  root, expected = mixed_folder
  src = specs.open_source(f"folder:{root}", 3)
  names = [src.name(i) for i in range(len(src))]
  assert names == sorted(expected)  # recursive, sorted by relative path, .txt ignored
  gray_src = specs.open_source(f"folder:{root}", 1)
  for i, name in enumerate(names):
    rgb = src[i]
    assert rgb.dtype == np.uint8 and rgb.shape == (10, 12, 3), name
    assert src.sizes()[i] == (10, 12)
    gray = gray_src[i]
    assert gray.shape == (10, 12, 1), name
    if isinstance(expected[name], tuple):  # JPEG
      assert np.abs(rgb.astype(int) - expected[name][1]).mean() < 3
    else:
      np.testing.assert_array_equal(rgb, expected[name], err_msg=name)
    # RGB -> gray: BT.601 luma rounded half up, on the decoded RGB.
    c = rgb.astype(np.int64)
    want = np.floor(0.299 * c[..., 0] + 0.587 * c[..., 1] + 0.114 * c[..., 2] + 0.5 + 1e-9)
    np.testing.assert_array_equal(gray[..., 0], want.astype(np.uint8), err_msg=name)


def test_as_uint8_image():
  rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]]], np.uint8)
  np.testing.assert_array_equal(sources.as_uint8_image(rgb, 1)[0, :, 0], [76, 150, 29, 18])
  rgba = np.concatenate([rgb, np.zeros((1, 4, 1), np.uint8)], -1)
  np.testing.assert_array_equal(sources.as_uint8_image(rgba, 3), rgb)
  gray = np.array([[3, 4]], np.uint8)
  np.testing.assert_array_equal(sources.as_uint8_image(gray, 3), [[[3, 3, 3], [4, 4, 4]]])
  np.testing.assert_array_equal(sources.as_uint8_image(np.array([[65535, 257]], np.uint16), 1),
                                [[[255], [1]]])


def test_npz_source(tmp_path):
  a = np.arange(3 * 4 * 5 * 3, dtype=np.uint8).reshape(3, 4, 5, 3)
  b = np.full((2, 6, 7, 1), 9, np.uint8)
  np.savez_compressed(tmp_path / "part_0.npz", image=a, label=np.zeros(3))
  np.savez(tmp_path / "part_1.npz", image=b)
  src = specs.open_source(f"npz:{tmp_path}/part_*.npz", 3)
  assert len(src) == 5
  assert src.name(3) == "part_1.npz[0]"
  assert src.sizes() == [(4, 5)] * 3 + [(6, 7)] * 2
  np.testing.assert_array_equal(src[1], a[1])
  np.testing.assert_array_equal(src[4], np.full((6, 7, 3), 9, np.uint8))
  assert specs.open_source(f"npz:{tmp_path}/part_1.npz", 1)[0].shape == (6, 7, 1)


def test_builtin_color_keeps_only_colour_photos():
  for split, n in (("train", 5), ("eval", 2)):
    src = specs.open_source("builtin:color", 3, split=split)
    assert len(src) == n
    for i in range(n):
      img = src[i].astype(int)
      assert np.abs(img[..., 0] - img[..., 1]).mean() > 1, src.name(i)  # not gray


def test_builtin_split_offline():
  train = specs.open_source("builtin", 3, split="train")
  ev = specs.open_source("builtin", 1, split="eval")
  assert not set(train.names) & set(ev.names)
  assert len(train) == len(data.BUILTIN_TRAIN) and len(ev) == len(data.BUILTIN_EVAL)
  assert train[0].dtype == np.uint8 and train[0].shape[-1] == 3 and ev[0].shape[-1] == 1
  images = data.load_eval_images(make_config(eval_spec="builtin", **{"data.eval_max_images": 2}))
  assert [n for n, _ in images] == list(data.BUILTIN_EVAL[:2])


# ------------------------------------------------------------------------------ tfds

try:
  import tensorflow_datasets as tfds
except ImportError:  # the rest of restoration.data works without it
  tfds = None
needs_tfds = pytest.mark.skipif(tfds is None, reason="tensorflow_datasets not installed")


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
  """A tiny dataset prepared without TensorFlow (Tensor feature, array_record format)."""

  class RestorationTinyImages(tfds.core.GeneratorBasedBuilder):
    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
      return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
          "image": tfds.features.Tensor(shape=(None, None, 3), dtype=np.uint8,
                                        encoding="zlib")}))

    def _split_generators(self, dl_manager):
      return {"train": self._generate_examples(6, 1), "test": self._generate_examples(3, 100)}

    def _generate_examples(self, n, start):
      for i in range(n):
        yield i, {"image": np.full((10 + i, 12, 3), start + i, np.uint8)}

  d = str(tmp_path_factory.mktemp("tfds"))
  RestorationTinyImages(data_dir=d, file_format="array_record").download_and_prepare()
  return d


@needs_tfds
def test_tfds_prepared_dataset(tfds_dir):
  name = "restoration_tiny_images"
  c = make_config(f"tfds:{name}", f"tfds:{name}", **{"data.tfds_data_dir": tfds_dir})
  src = pipeline.open_train_source(c)
  assert len(src) == 6 and src.split == "train" and src.sizes() is None
  values = []
  for i in range(len(src)):  # tfds shuffles examples when preparing
    v = int(src[i][0, 0, 0])
    np.testing.assert_array_equal(src[i], np.full((9 + v, 12, 3), v, np.uint8))
    values.append(v)
  assert sorted(values) == [1, 2, 3, 4, 5, 6]
  images = data.load_eval_images(c)  # default eval split: test
  assert sorted(a[0, 0, 0] for _, a in images) == [100, 101, 102]
  assert [n for n, _ in images] == [f"{name}:test[{i}]" for i in range(3)]
  td = data.make_train_data(c, local_device_count=1)
  assert next(td).shape == (1, 4, 8, 8, 3)
  td.close()
  assert pipeline.open_eval_source(make_config(
      f"tfds:{name}:train", f"tfds:{name}:train", **{"data.tfds_data_dir": tfds_dir}))
  with pytest.raises(ValueError, match="split 'nope' not found"):
    specs.open_source(f"tfds:{name}:nope", 3, tfds_data_dir=tfds_dir)


@needs_tfds
def test_tfds_mock_cifar10(monkeypatch):
  # mock_data (no TensorFlow) serves random examples but does not mark the dataset prepared.
  monkeypatch.setattr(tfds.core.DatasetBuilder, "is_prepared", lambda self: True)
  with tfds.testing.mock_data(num_examples=5, policy=tfds.testing.MockPolicy.USE_CODE):
    src = specs.open_source("tfds:cifar10:train", 1)
    assert len(src) == 5 and src.sizes() == [(32, 32)] * 5
    assert src[0].shape == (32, 32, 1) and src[0].dtype == np.uint8


@needs_tfds
def test_tfds_not_prepared_fails_fast(tmp_path):
  t0 = time.time()
  with pytest.raises(ValueError, match=r"not prepared.*folder:PATH or npz:GLOB"):
    specs.open_source("tfds:cifar10:train", 3, tfds_data_dir=str(tmp_path))
  with pytest.raises(ValueError, match="unknown tfds dataset"):
    specs.open_source("tfds:no_such_dataset_xyz", 3, tfds_data_dir=str(tmp_path))
  assert time.time() - t0 < 20


# ------------------------------------------------------------------------------ train pipeline


def test_errors(tmp_path):
  missing = tmp_path / "nope"
  with pytest.raises(FileNotFoundError, match=r"nope does not exist.*\.png .*\.tiff"):
    data.open_sources(make_config(f"folder:{missing}"), local_device_count=1)
  empty = tmp_path / "empty"
  (empty / "sub").mkdir(parents=True)
  (empty / "sub" / "x.txt").write_text("hi")
  with pytest.raises(FileNotFoundError, match=r"no images under .*empty.*\.jpeg"):
    data.make_train_data(make_config(f"folder:{empty}"), local_device_count=1)
  with pytest.raises(FileNotFoundError, match="no files match"):
    data.load_eval_images(make_config(f"npz:{tmp_path}/*.npz"))
  np.savez(tmp_path / "bad.npz", pixels=np.zeros((1, 2, 2, 3), np.uint8))
  with pytest.raises(ValueError, match=r"bad\.npz has no key 'image'.*pixels"):
    data.open_sources(make_config(f"npz:{tmp_path}/bad.npz"), local_device_count=1)
  with pytest.raises(ValueError, match=r"unknown data spec 'hdf5:x'.*builtin, builtin:color, folder:PATH, "
                     r"npz:GLOB, tfds:NAME\[:SPLIT\]"):
    data.open_sources(make_config("hdf5:x"), local_device_count=1)
  with pytest.raises(ValueError, match="data.channels must be 1 .* or 3 .*got 2"):
    data.open_sources(make_config(**{"data.channels": 2}), local_device_count=1)
  with pytest.raises(ValueError, match=r"batch_size=6 must be a positive multiple of .* = 4"):
    data.make_train_data(make_config(**{"batch_size": 6}), process_count=2,
                         local_device_count=2)
  with pytest.raises(ValueError, match=r"image text is 172x448.*patch_size=200.*pad_small"):
    data.open_sources(make_config(**{"patch_size": 200}), local_device_count=1)


def test_corrupt_and_truncated_images(tmp_path):
  root = write_const_folder(tmp_path / "corrupt", n=2, hw=(16, 16))
  with open(os.path.join(root, "zz_garbage.png"), "wb") as f:
    f.write(b"this is not a png at all")
  with pytest.raises(ValueError, match=r"unreadable image file .*zz_garbage\.png"):
    data.open_sources(make_config(f"folder:{root}"), local_device_count=1)
  os.remove(os.path.join(root, "zz_garbage.png"))
  # A truncated file passes the header check, but every file is decoded at start-up: the
  # error names it (and no step ever sees it), for training and eval alike.
  good = os.path.join(root, "000.png")
  noisy = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
  Image.fromarray(noisy).save(good)
  blob = open(good, "rb").read()
  with open(os.path.join(root, "000.png"), "wb") as f:
    f.write(blob[:len(blob) // 2])
  c = make_config(f"folder:{root}", **{"batch_size": 2})
  with pytest.raises(ValueError, match=r"1 of 2 image files .* cannot be decoded: 000\.png"):
    data.open_sources(c, local_device_count=1)
  with pytest.raises(ValueError, match=r"000\.png"):
    data.load_eval_images(c)
  with open(os.path.join(root, "000.png"), "wb") as f:
    f.write(blob)
  src = specs.open_source(f"folder:{root}", 1)
  assert len(src._cache) == 2  # decoded once at start-up, kept: the first epoch decodes nothing
  np.testing.assert_array_equal(src[0][..., 0], noisy)


def test_tfds_imported_lazily():
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  code = ("import sys, restoration.data as d; d.open_source('builtin', 1); "
          "assert 'tensorflow_datasets' not in sys.modules, 'tfds imported eagerly'")
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  subprocess.run([sys.executable, "-c", code], check=True, cwd=root, timeout=60)
