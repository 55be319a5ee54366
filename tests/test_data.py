"""Tests for restoration.data: sources, grain train pipeline, eval batches, device mode, errors.

All data is written to tmp_path (tiny), except `builtin` (scikit-image's bundled photos).
"""
import json
import os
import time

import jax
import numpy as np
import pytest
from PIL import Image

from configs import default
from restoration import data
from restoration.data import device as device_lib
from restoration.data import pipeline
from restoration.data import sources

# ------------------------------------------------------------------------------ helpers


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
    q = pipeline.dihedral(patch, t)  # the group: applying some t undoes any transform
    y0, x0 = int(q[0, 0, 0]), int(q[0, 0, 1])
    if y0 + p <= image.shape[0] and x0 + p <= image.shape[1]:
      if np.array_equal(q, image[y0:y0 + p, x0:x0 + p]):
        return True
  return False


def take(it, n):
  return [next(it) for _ in range(n)]


# ------------------------------------------------------------------------------ sources


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
  src = sources.open_source(f"folder:{root}", 3)
  names = [src.name(i) for i in range(len(src))]
  assert names == sorted(expected)  # recursive, sorted by relative path, .txt ignored
  gray_src = sources.open_source(f"folder:{root}", 1)
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


def test_conversion_helpers():
  np.testing.assert_array_equal(
      sources.uint16_to_uint8(np.array([0, 128, 129, 257, 65535, 70000])), [0, 0, 1, 1, 255, 255])
  rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]]], np.uint8)
  np.testing.assert_array_equal(sources.to_channels(rgb, 1)[0, :, 0], [76, 150, 29, 18])
  rgba = np.concatenate([rgb, np.zeros((1, 4, 1), np.uint8)], -1)
  np.testing.assert_array_equal(sources.to_channels(rgba, 3), rgb)
  gray = np.array([[3, 4]], np.uint8)
  np.testing.assert_array_equal(sources.to_channels(gray, 3), [[[3, 3, 3], [4, 4, 4]]])


def test_npz_source(tmp_path):
  a = np.arange(3 * 4 * 5 * 3, dtype=np.uint8).reshape(3, 4, 5, 3)
  b = np.full((2, 6, 7, 1), 9, np.uint8)
  np.savez_compressed(tmp_path / "part_0.npz", image=a, label=np.zeros(3))
  np.savez(tmp_path / "part_1.npz", image=b)
  src = sources.open_source(f"npz:{tmp_path}/part_*.npz", 3)
  assert len(src) == 5
  assert src.name(3) == "part_1.npz[0]"
  assert src.sizes() == [(4, 5)] * 3 + [(6, 7)] * 2
  np.testing.assert_array_equal(src[1], a[1])
  np.testing.assert_array_equal(src[4], np.full((6, 7, 3), 9, np.uint8))
  assert sources.open_source(f"npz:{tmp_path}/part_1.npz", 1)[0].shape == (6, 7, 1)


def test_builtin_split_offline():
  train = sources.open_source("builtin", 3, split="train")
  ev = sources.open_source("builtin", 1, split="eval")
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
    sources.open_source(f"tfds:{name}:nope", 3, tfds_data_dir=tfds_dir)


@needs_tfds
def test_tfds_mock_cifar10(monkeypatch):
  # mock_data (no TensorFlow) serves random examples but does not mark the dataset prepared.
  monkeypatch.setattr(tfds.core.DatasetBuilder, "is_prepared", lambda self: True)
  with tfds.testing.mock_data(num_examples=5, policy=tfds.testing.MockPolicy.USE_CODE):
    src = sources.open_source("tfds:cifar10:train", 1)
    assert len(src) == 5 and src.sizes() == [(32, 32)] * 5
    assert src[0].shape == (32, 32, 1) and src[0].dtype == np.uint8


@needs_tfds
def test_tfds_not_prepared_fails_fast(tmp_path):
  t0 = time.time()
  with pytest.raises(ValueError, match=r"not prepared.*folder:PATH or npz:GLOB"):
    sources.open_source("tfds:cifar10:train", 3, tfds_data_dir=str(tmp_path))
  with pytest.raises(ValueError, match="unknown tfds dataset"):
    sources.open_source("tfds:no_such_dataset_xyz", 3, tfds_data_dir=str(tmp_path))
  assert time.time() - t0 < 20


# ------------------------------------------------------------------------------ train pipeline


def test_train_shape_determinism_and_epochs(tmp_path):
  root = write_const_folder(tmp_path / "const", n=8)
  c = make_config(f"folder:{root}", **{"batch_size": 8})
  a = data.make_train_data(c, local_device_count=2)
  b = data.make_train_data(c, local_device_count=2)
  batches = take(a, 4)
  assert batches[0].shape == (2, 4, 8, 8, 3) and batches[0].dtype == np.uint8
  for x, y in zip(batches, take(b, 4)):
    np.testing.assert_array_equal(x, y)
  ids = [np.sort(x[:, :, 0, 0, 0].ravel()) for x in batches]
  for i in ids:  # batch == epoch here: every image exactly once per epoch
    np.testing.assert_array_equal(i, np.arange(1, 9))
  orders = {tuple(x[:, :, 0, 0, 0].ravel()) for x in batches}
  assert len(orders) > 1  # reshuffled between epochs
  c.seed = 1
  other = data.make_train_data(c, local_device_count=2)
  assert not np.array_equal(np.stack(batches), np.stack(take(other, 4)))
  for it in (a, b, other):
    it.close()


def test_crops_and_augment(tmp_path):
  root = tmp_path / "coords"
  root.mkdir()
  image = coord_image(20, 30)
  Image.fromarray(image).save(root / "c.png")
  for augment in (False, True):
    c = make_config(f"folder:{root}", **{"batch_size": 16, "data.augment": augment})
    td = data.make_train_data(c, local_device_count=1)
    patches = np.concatenate(take(td, 4)).reshape(-1, 8, 8, 3)
    td.close()
    assert all(is_dihedral_crop(p, image) for p in patches)
    exact = [np.array_equal(p, image[p[0, 0, 0]:p[0, 0, 0] + 8, p[0, 0, 1]:p[0, 0, 1] + 8])
             for p in patches]
    assert all(exact) if not augment else not all(exact)
    assert len({(p[0, 0, 0], p[0, 0, 1]) for p in patches}) > 10  # offsets vary


def test_state_restore_and_json(tmp_path):
  root = write_const_folder(tmp_path / "const", n=5, hw=(16, 16))
  c = make_config(f"folder:{root}")
  it = data.make_train_data(c, local_device_count=2)
  take(it, 3)
  state = json.loads(json.dumps(it.get_state()))
  want = take(it, 3)
  it.close()
  fresh = data.make_train_data(c, local_device_count=2)
  fresh.set_state(state)
  for x, y in zip(want, take(fresh, 3)):
    np.testing.assert_array_equal(x, y)
  fresh.set_state(state)  # rewinding a running iterator works too
  np.testing.assert_array_equal(next(fresh), want[0])
  fresh.close()
  with pytest.raises(ValueError, match="not a TrainData state"):
    fresh.set_state({"foo": 1})


def test_state_restore_with_workers(tmp_path):
  """2 grain worker processes give the same batches as 0 and restore from a 0-worker state."""
  root = write_const_folder(tmp_path / "const", n=6, hw=(12, 12))
  c = make_config(f"folder:{root}")
  ref = data.make_train_data(c, local_device_count=2)
  want = take(ref, 6)
  ref.close()
  c.data.num_workers = 2
  it = data.make_train_data(c, local_device_count=2)
  try:
    got = take(it, 3)
    state = it.get_state()
    got += take(it, 1)
    it.set_state(state)  # restarts the workers from batch 3
    got += take(it, 3)
  finally:
    it.close()
  for x, y in zip(want[:4] + want[3:], got):
    np.testing.assert_array_equal(x, y)


def test_processes_read_disjoint_examples(tmp_path):
  root = write_const_folder(tmp_path / "const", n=16, hw=(10, 10))
  c = make_config(f"folder:{root}", **{"batch_size": 8})
  single = data.make_train_data(c, local_device_count=2)
  procs = [data.make_train_data(c, process_index=p, process_count=2, local_device_count=2)
           for p in range(2)]
  seen = [[], []]
  for _ in range(2):  # 2 global batches of 8 = one epoch of 16 images
    whole = next(single).reshape(-1, 8, 8, 3)
    parts = [next(p) for p in procs]
    assert parts[0].shape == (2, 2, 8, 8, 3)
    # the processes' chunks concatenate to the single-process global batch
    np.testing.assert_array_equal(np.concatenate([x.reshape(-1, 8, 8, 3) for x in parts]), whole)
    for p, x in enumerate(parts):
      seen[p] += list(x[:, :, 0, 0, 0].ravel())
  assert not set(seen[0]) & set(seen[1])
  assert sorted(seen[0] + seen[1]) == list(range(1, 17))
  for it in procs + [single]:
    it.close()


def test_pad_small(tmp_path):
  root = tmp_path / "small"
  root.mkdir()
  Image.fromarray(np.full((20, 20), 5, np.uint8)).save(root / "big.png")
  Image.fromarray(np.arange(5 * 6, dtype=np.uint8).reshape(5, 6) + 1).save(root / "tiny.png")
  c = make_config(f"folder:{root}", **{"patch_size": 8, "data.channels": 1})
  with pytest.raises(ValueError, match=r"tiny\.png is 5x6.*patch_size=8.*data\.pad_small"):
    data.validate_data_config(c, local_device_count=1)
  with pytest.raises(ValueError, match=r"tiny\.png"):
    data.make_train_data(c, local_device_count=1)
  with pytest.raises(ValueError, match=r"tiny\.png"):
    data.load_device_data(c)
  c.data.pad_small = True
  data.validate_data_config(c, local_device_count=1)
  td = data.make_train_data(c, local_device_count=1)
  x = np.concatenate(take(td, 4))
  td.close()
  assert x.shape == (4, 4, 8, 8, 1) and x.min() >= 1
  dev = data.load_device_data(c)
  assert dev.images.shape == (2, 20, 20, 1)
  assert sorted(map(tuple, dev.sizes.tolist())) == [(8, 8), (20, 20)]


# ------------------------------------------------------------------------------ eval


def test_eval_batches_buckets_and_processes():
  rng = np.random.default_rng(0)
  shapes = [(4, 6, 1)] * 5 + [(6, 4, 1)] * 2 + [(3, 3, 1)] + [(4, 6, 1)]
  images = [(f"im{i}", rng.integers(0, 256, s, dtype=np.uint8)) for i, s in enumerate(shapes)]
  per_proc = []
  for p in range(2):
    batches = list(data.eval_batches(images, batch_size=4, process_index=p, process_count=2,
                                     local_device_count=2))
    per_proc.append(batches)
    for b in batches:
      assert b["image"].dtype == np.uint8 and b["image"].shape[:2] == (2, 1)
      assert b["valid"].dtype == np.bool_ and b["index"].dtype == np.int32
      np.testing.assert_array_equal(b["valid"], b["index"] >= 0)
      for img, idx in zip(b["image"].reshape((-1,) + b["image"].shape[2:]), b["index"].ravel()):
        if idx >= 0:
          np.testing.assert_array_equal(img, images[idx][1])
          assert img.shape == shapes[idx]
        else:
          assert not img.any()
  assert len(per_proc[0]) == len(per_proc[1]) == 4  # 6 + 2 + 1 images, 4 per global batch
  for b0, b1 in zip(*per_proc):
    assert b0["image"].shape == b1["image"].shape  # collectives line up
  valid = [i for bs in per_proc for b in bs for i in b["index"].ravel() if i >= 0]
  assert sorted(valid) == list(range(len(images)))
  assert (~per_proc[1][-1]["valid"]).all()  # a whole padding batch for process 1
  single = list(data.eval_batches([a for _, a in images], batch_size=8, local_device_count=2))
  assert [b["image"].shape[2:4] for b in single] == [(4, 6), (6, 4), (3, 3)]
  with pytest.raises(ValueError, match="eval_batch_size=1"):
    next(data.eval_batches(images, batch_size=1, local_device_count=2))


def test_load_eval_images_crop_and_limit(tmp_path):
  root = tmp_path / "ev"
  root.mkdir()
  Image.fromarray(coord_image(10, 14)).save(root / "a.png")
  Image.fromarray(coord_image(12, 9)).save(root / "b.png")
  Image.fromarray(coord_image(6, 20)).save(root / "c.png")
  c = make_config(f"folder:{root}", **{"data.eval_crop": 8, "patch_size": 4})
  with pytest.raises(ValueError, match=r"c\.png is 6x20.*eval_crop=8"):
    data.validate_data_config(c, local_device_count=1)
  c.data.eval_max_images = 2
  images = data.load_eval_images(c)
  assert [n for n, _ in images] == ["a.png", "b.png"]
  np.testing.assert_array_equal(images[0][1], coord_image(10, 14)[1:9, 3:11])
  np.testing.assert_array_equal(images[1][1], coord_image(12, 9)[2:10, 0:8])
  c.data.eval_crop = 0
  c.data.eval_max_images = 0
  assert [a.shape for _, a in data.load_eval_images(c)] == [(10, 14, 3), (12, 9, 3), (6, 20, 3)]


# ------------------------------------------------------------------------------ device mode


def test_device_sample_patches(tmp_path):
  root = tmp_path / "dev"
  root.mkdir()
  sizes = [(12, 20), (25, 11), (16, 16)]
  for i, (h, w) in enumerate(sizes):
    Image.fromarray(coord_image(h, w) + 1).save(root / f"{i}.png")  # all pixels >= 1
  c = make_config(f"folder:{root}", **{"patch_size": 10})
  dev = data.load_device_data(c)
  assert dev.images.shape == (3, 25, 20, 3) and dev.images.dtype == np.uint8
  np.testing.assert_array_equal(dev.sizes, sizes)
  assert dev.sizes.dtype == np.int32 and dev.images[0, 12:].max() == 0  # zero padding

  def sample(key, augment):
    return data.sample_patches(key, jax.numpy.asarray(dev.images), dev.sizes, batch_size=64,
                               patch_size=10, augment=augment)

  jitted = jax.jit(sample, static_argnames="augment")
  key = jax.random.key(0)
  x = np.asarray(jitted(key, True))
  assert x.shape == (64, 10, 10, 3) and x.dtype == np.uint8
  assert x.min() >= 1  # never any zero padding
  np.testing.assert_array_equal(x, np.asarray(jitted(key, True)))
  np.testing.assert_array_equal(x, np.asarray(sample(key, True)))  # jit == eager
  assert not np.array_equal(x, np.asarray(jitted(jax.random.key(1), True)))
  images = [coord_image(h, w) for h, w in sizes]
  for augment in (False, True):
    patches = np.asarray(jitted(jax.random.key(2), augment)) - 1
    assert all(any(is_dihedral_crop(p, im) for im in images) for p in patches)
    flat = [any(np.array_equal(p, im[p[0, 0, 0]:p[0, 0, 0] + 10, p[0, 0, 1]:p[0, 0, 1] + 10])
                for im in images if p[0, 0, 0] + 10 <= im.shape[0]
                and p[0, 0, 1] + 10 <= im.shape[1]) for p in patches]
    assert all(flat) if not augment else not all(flat)


def test_device_dihedral_matches_host():
  patch = np.arange(4 * 4 * 2, dtype=np.uint8).reshape(4, 4, 2)
  for t in range(8):
    got = np.asarray(device_lib._dihedral(jax.numpy.asarray(patch), jax.numpy.int32(t)))  # pylint: disable=protected-access
    np.testing.assert_array_equal(got, pipeline.dihedral(patch, t))
  assert len({pipeline.dihedral(patch, t).tobytes() for t in range(8)}) == 8


# ------------------------------------------------------------------------------ errors


def test_errors(tmp_path):
  missing = tmp_path / "nope"
  with pytest.raises(FileNotFoundError, match=r"nope does not exist.*\.png .*\.tiff"):
    data.validate_data_config(make_config(f"folder:{missing}"), local_device_count=1)
  empty = tmp_path / "empty"
  (empty / "sub").mkdir(parents=True)
  (empty / "sub" / "x.txt").write_text("hi")
  with pytest.raises(FileNotFoundError, match=r"no images under .*empty.*\.jpeg"):
    data.make_train_data(make_config(f"folder:{empty}"), local_device_count=1)
  with pytest.raises(FileNotFoundError, match="no files match"):
    data.load_eval_images(make_config(f"npz:{tmp_path}/*.npz"))
  np.savez(tmp_path / "bad.npz", pixels=np.zeros((1, 2, 2, 3), np.uint8))
  with pytest.raises(ValueError, match=r"bad\.npz has no key 'image'.*pixels"):
    data.validate_data_config(make_config(f"npz:{tmp_path}/bad.npz"), local_device_count=1)
  with pytest.raises(ValueError, match=r"unknown data spec 'hdf5:x'.*builtin, folder:PATH, "
                     r"npz:GLOB, tfds:NAME\[:SPLIT\]"):
    data.validate_data_config(make_config("hdf5:x"), local_device_count=1)
  with pytest.raises(ValueError, match="data.channels must be 1 .* or 3 .*got 2"):
    data.validate_data_config(make_config(**{"data.channels": 2}), local_device_count=1)
  with pytest.raises(ValueError, match=r"batch_size=6 must be a positive multiple of .* = 4"):
    data.make_train_data(make_config(**{"batch_size": 6}), process_count=2,
                         local_device_count=2)
  with pytest.raises(ValueError, match=r"image text is 172x448.*patch_size=200.*pad_small"):
    data.validate_data_config(make_config(**{"patch_size": 200}), local_device_count=1)


def test_corrupt_and_truncated_images(tmp_path):
  root = write_const_folder(tmp_path / "corrupt", n=2, hw=(16, 16))
  with open(os.path.join(root, "zz_garbage.png"), "wb") as f:
    f.write(b"this is not a png at all")
  with pytest.raises(ValueError, match=r"unreadable image file .*zz_garbage\.png"):
    data.validate_data_config(make_config(f"folder:{root}"), local_device_count=1)
  os.remove(os.path.join(root, "zz_garbage.png"))
  # A truncated file passes the header check; its first decode names it.
  good = os.path.join(root, "000.png")
  noisy = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
  Image.fromarray(noisy).save(good)
  blob = open(good, "rb").read()
  with open(os.path.join(root, "000.png"), "wb") as f:
    f.write(blob[:len(blob) // 2])
  c = make_config(f"folder:{root}", **{"batch_size": 2})
  data.validate_data_config(c, local_device_count=1)
  with pytest.raises(ValueError, match=r"cannot read image file .*000\.png"):
    sources.open_source(f"folder:{root}", 3)[0]
  td = data.make_train_data(c, local_device_count=1)
  with pytest.raises(ValueError, match=r"000\.png"):
    next(td)
  td.close()
  with pytest.raises(ValueError, match=r"000\.png"):
    data.load_eval_images(c)


def test_tfds_imported_lazily():
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  code = ("import sys, restoration.data as d; d.open_source('builtin', 1); "
          "assert 'tensorflow_datasets' not in sys.modules, 'tfds imported eagerly'")
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  subprocess.run([sys.executable, "-c", code], check=True, cwd=root, timeout=60)
