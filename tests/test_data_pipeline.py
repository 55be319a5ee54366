"""restoration.data pipelines: grain train batches, state, processes, eval batches, device mode.

All data is written to tmp_path (tiny), except `builtin` (scikit-image's bundled photos).
"""

import json

import jax
import numpy as np
import pytest
from PIL import Image

from restoration import data
from tests.data_helpers import (coord_image, is_dihedral_crop, make_config, take,
                                write_const_folder)


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
    data.open_sources(c, local_device_count=1)
  with pytest.raises(ValueError, match=r"tiny\.png"):
    data.make_train_data(c, local_device_count=1)
  with pytest.raises(ValueError, match=r"tiny\.png"):
    data.load_device_data(c)
  c.data.pad_small = True
  data.open_sources(c, local_device_count=1)
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
    data.open_sources(c, local_device_count=1)
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


# ------------------------------------------------------------------------------ errors
