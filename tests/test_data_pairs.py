"""Paired data (`pairs:IN,TARGET`) and the paired task: matching, alignment, errors, resume."""

import os

import jax
import numpy as np
import pytest
from PIL import Image

from restoration.eval import evaluator
from restoration.eval import metrics
from restoration import tasks
from restoration.data import pairs
from restoration.data import eval_images
from restoration.data import pipeline
from restoration.data import specs
from tests.data_helpers import coord_image, is_dihedral_crop, make_config
from tests.test_modes_train import assert_trees_equal, train_events
from tests.tiny import straight_and_resumed, tiny_config


def _save(path, a):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(a).save(path)


def write_pairs(root, n=3, hw=(20, 23), ext_in=".png", ext_tg=".png"):
  """n pairs (in/sub/i, target/sub/i): input = coord_image + i, target = 255 - input."""
  for i in range(n):
    a = (coord_image(*hw) + i).astype(np.uint8)
    _save(os.path.join(root, "in", "sub", f"{i:02d}{ext_in}"), a)
    _save(os.path.join(root, "target", "sub", f"{i:02d}{ext_tg}"), 255 - a)
  return f"pairs:{root}/in,{root}/target"


def test_pairs_matched_by_stem(tmp_path):
  spec = write_pairs(str(tmp_path), ext_in=".bmp", ext_tg=".png")
  src = specs.open_source(spec, 3)
  assert len(src) == 3 and src.channels == 6
  assert [src.name(i) for i in range(3)] == ["sub/00", "sub/01", "sub/02"]
  for i in range(3):
    inp, tgt = pairs.split_pair(src[i], 3)
    np.testing.assert_array_equal(inp, coord_image(20, 23) + i)
    np.testing.assert_array_equal(tgt, 255 - inp)
  assert src.sizes() == [(20, 23)] * 3


def test_unmatched_names_are_listed(tmp_path):
  spec = write_pairs(str(tmp_path))
  os.remove(tmp_path / "target" / "sub" / "01.png")
  _save(str(tmp_path / "target" / "extra.png"), np.zeros((20, 23, 3), np.uint8))
  with pytest.raises(ValueError, match=r"1 input\(s\) have no target: \['sub/01'\]; "
                                       r"1 target\(s\) have no input: \['extra'\]"):
    specs.open_source(spec, 3)


@pytest.mark.parametrize("spec", ["pairs:onlyone", "pairs:a,"])
def test_bad_pairs_spec(spec):
  with pytest.raises(ValueError, match="INPUT_DIR,TARGET_DIR"):
    specs.open_source(spec, 3)


def test_valid_convolution_pairs_use_the_centre_crop(tmp_path):
  big = coord_image(24, 25)
  _save(str(tmp_path / "in" / "a.png"), big[3:21, 2:23])  # 18x21: 6 and 4 px smaller
  _save(str(tmp_path / "tg" / "a.png"), big)
  src = specs.open_source(f"pairs:{tmp_path}/in,{tmp_path}/tg", 3)
  inp, tgt = pairs.split_pair(src[0], 3)
  np.testing.assert_array_equal(inp, tgt)
  _save(str(tmp_path / "in" / "a.png"), big[3:20, 2:23])  # odd difference: no centre
  with pytest.raises(ValueError, match="'a' has input 17x21 and target 24x25"):
    specs.open_source(f"pairs:{tmp_path}/in,{tmp_path}/tg", 3)


def test_crops_and_flips_are_aligned(tmp_path):
  """Every training patch: input half a dihedral crop, target half exactly 255 - input half."""
  spec = write_pairs(str(tmp_path), n=4)
  c = make_config(train=spec, batch_size=4, patch_size=8)
  data = pipeline.make_train_data(c, process_index=0, process_count=1, local_device_count=1)
  seen = set()
  for _ in range(6):
    batch = next(data)
    assert batch.shape == (1, 4, 8, 8, 6)
    for patch in batch[0]:
      inp, tgt = pairs.split_pair(patch, 3)
      np.testing.assert_array_equal(tgt, 255 - inp)
      i = int(inp[..., 2].min()) - 7  # B channel = 7 + image index
      assert is_dihedral_crop(inp - i, coord_image(20, 23))
      seen.add((int(inp[0, 0, 0]), int(inp[0, 0, 1]), int(inp[0, 1, 0]), int(inp[1, 0, 0])))
  assert len(seen) > 10  # offsets and transforms vary


def test_tasks_check_the_data_kind(tmp_path):
  spec = write_pairs(str(tmp_path))
  c = tiny_config(**{"data.train": spec, "data.eval": spec, "data.channels": 3})
  with pytest.raises(ValueError, match="needs config.task='paired'"):
    tasks.build(c, local_device_count=1, process_count=1)
  c = tiny_config(task="paired")
  with pytest.raises(ValueError, match="trains on pairs: set data.train=pairs"):
    tasks.build(c, local_device_count=1, process_count=1)


def paired_config(root, **kw):
  spec = write_pairs(str(root), n=4, hw=(20, 20))
  return tiny_config(task="paired", corruption=[], **{"data.train": spec, "data.eval": spec,
                                                      "data.channels": 3}, **kw)


def test_paired_eval_measures_input_against_target(tmp_path):
  """Empty corruption: eval input PSNR == PSNR(input half, target half), computed directly."""
  c = paired_config(tmp_path)
  task = tasks.build(c, local_device_count=1, process_count=1)
  assert task.input_shape(2) == task.output_shape(2) == (2, 16, 16, 3)
  images = eval_images.load_eval_images(c, task.sources.eval)
  ev = evaluator.Evaluator(task.inference, images, devices=jax.local_devices()[:1])
  state = task.init_state()
  result = ev.evaluate(task.inference_variables(state), [], replicated=False)
  stacked = np.stack([im for _, im in images]).astype(np.float32) / 255.0
  inp, tgt = pairs.split_pair(stacked, 3)
  np.testing.assert_allclose(result.per_image["input_psnr"],
                             np.asarray(metrics.psnr(inp, tgt)), rtol=1e-5)
  np.testing.assert_array_equal(result.samples[0][0], images[0][1][..., 3:])  # target shown


@pytest.mark.slow  # three short training runs (and an eval)
def test_paired_task_resume_is_exact(tmp_path):
  cfg = dict(checkpoint_every_steps=2, eval_every_steps=100)
  make = lambda **kw: paired_config(tmp_path / "d", **kw)
  straight, resumed, one, two = straight_and_resumed(make, tmp_path, total=4, stop=2, **cfg)
  assert_trees_equal(straight.params, resumed.params)
  assert train_events(one) == train_events(two)
