"""The CIFAR-10 study's training side: corruption fixed per image, the 40k/10k split, the
config, a few tiny training steps and eval in both SSIM conventions (tiny npz in tmp_path)."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import cifar_study
from restoration import data
from restoration.modes import evaluate
from restoration.runtime import parallel
from restoration import tasks
from restoration.modes import train
from restoration.data import specs
from tests.tiny import override, tiny_config

HAVE_CIFAR = os.path.isdir(cifar_study.CIFAR)


def write_npz(path, n, hw=32, seed=0):
  """n RGB images; image i's top-left pixel is i (identifiable after any pipeline)."""
  images = np.random.default_rng(seed).integers(0, 256, (n, hw, hw, 3), np.uint8)
  images[:, 0, 0, 0] = np.arange(n)
  np.savez(path, image=images)
  return images


def test_train_data_with_index_names_each_crops_source_image(tmp_path):
  images = write_npz(tmp_path / "a.npz", 10, hw=8)
  src = specs.open_source(f"npz:{tmp_path}/a.npz", 3)
  it = data.TrainData(src, seed=3, batch_size=4, patch_size=8, augment=False, pad_small=False,
                      process_index=0, process_count=1, local_device_count=2,
                      with_index=True)
  seen = []
  for _ in range(5):  # 20 crops: two epochs of 10
    batch = next(it)
    assert batch["image"].shape == (2, 2, 8, 8, 3) and batch["index"].shape == (2, 2)
    np.testing.assert_array_equal(batch["image"], images[batch["index"]])
    seen += list(batch["index"].ravel())
  assert sorted(seen[:10]) == sorted(seen[10:]) == list(range(10))  # epochs are permutations
  # A process's share of the global batch: the same indices as its part of a 1-process run.
  halves = [data.TrainData(src, seed=3, batch_size=4, patch_size=8, augment=False,
                           pad_small=False, process_index=p, process_count=2,
                           local_device_count=1, with_index=True) for p in range(2)]
  whole = data.TrainData(src, seed=3, batch_size=4, patch_size=8, augment=False,
                         pad_small=False, process_index=0, process_count=1,
                         local_device_count=1, with_index=True)
  for _ in range(3):
    parts = [next(h) for h in halves]
    np.testing.assert_array_equal(np.concatenate([p["index"] for p in parts], axis=1),
                                  next(whole)["index"])


def _task(fixed: bool):
  c = tiny_config(**{"corruption": [{"name": "study_blocks", "num_blocks": 20}],
                     "corruption_fixed_per_image": fixed})
  return tasks.build(c, local_device_count=1, process_count=1)


def _examples(task, step, index, clean):
  """The task's (model input) for one device's batch at `step`, traced as in the pmapped step."""
  step_key = jax.random.fold_in(jax.random.key(task.config.seed), step)
  batch = {"image": clean[None], "index": jnp.asarray(index, jnp.int32)[None]}
  if not task.fixed_per_image:
    batch = batch["image"]
  fn = jax.vmap(lambda b: task.example(step_key, step_key, b, None)[0],
                axis_name=parallel.AXIS)
  return np.asarray(fn(batch)[0])


def test_fixed_per_image_corruption_ignores_the_step_and_follows_the_image():
  task = _task(True)
  clean = np.full((3, 16, 16, 1), 200, np.uint8)
  a = _examples(task, 1, [7, 8, 7], clean)
  b = _examples(task, 500, [7, 8, 7], clean)
  np.testing.assert_array_equal(a, b)  # same images, other step: same corruption
  np.testing.assert_array_equal(a[0], a[2])  # image 7 at two batch positions
  assert np.abs(a[0] - a[1]).max() > 0.5  # images 7 and 8 differ
  c = _examples(task, 1, [8, 7, 9], clean)  # another batch order
  np.testing.assert_array_equal(c[0], a[1])
  np.testing.assert_array_equal(c[1], a[0])
  drawn = _task(False)  # the default: redrawn every step
  assert np.abs(_examples(drawn, 1, [7, 8, 7], clean)
                - _examples(drawn, 2, [7, 8, 7], clean)).max() > 0.5


@pytest.mark.parametrize("dotted,match", [
    ({"corruption_fixed_per_image": 1}, "corruption_fixed_per_image must be True or False"),
    ({"corruption_fixed_per_image": True, "task": "adversarial"},
     r"corruption_fixed_per_image=True works with config.task in \['supervised', 'inpaint'\]"),
    ({"corruption_fixed_per_image": True, "data.on_device": True}, "data.on_device=False"),
    ({"optimizer.eps": 0.0}, r"config.optimizer.eps must be > 0"),
])
def test_bad_fields_fail_at_task_construction(dotted, match):
  with pytest.raises(ValueError, match=match):
    tasks.build(tiny_config(**dotted), local_device_count=1, process_count=1)


def test_config_protocol_fields():
  c = cifar_study.get_config("blocks=50,seed=2")
  assert (c.model.name, c.batch_size, c.patch_size, c.total_steps) == ("study_cnn", 32, 32,
                                                                       25_000)
  assert c.corruption == [{"name": "study_blocks", "num_blocks": 50}] and c.seed == 2
  assert c.corruption_fixed_per_image and not c.data.augment
  assert (c.optimizer.learning_rate, c.optimizer.eps, c.optimizer.schedule) == (1e-3, 1e-7,
                                                                                "constant")
  assert c.eval.ssim_convention == "study" and c.data.train.endswith("train_[0-3].npz")
  assert c.data.eval.endswith("train_4.npz")
  assert cifar_study.get_config("test").data.eval.endswith("test.npz")
  with pytest.raises(ValueError, match=r"cifar_study: blocks=20; allowed: \[10, 50, 100\]"):
    cifar_study.get_config("blocks=20")


def test_beat_variant_is_the_project_recipe_at_the_measured_cpu_budget():
  c = cifar_study.get_config("blocks=100,beat=10")
  base = cifar_study.get_config("blocks=100")
  assert c.model.name == "dncnn" and c.model.kwargs["depth"] == 10
  assert c.model.kwargs["features"] == 64 and c.model.kwargs["weight_init"] == "orthogonal"
  # The budget pays for the closing PreciseBN too.
  assert c.total_steps == cifar_study.BEAT_STEPS[10, 64] - cifar_study.PRECISE_BN_STEPS == 3_405
  assert c.precise_bn_batches == cifar_study.PRECISE_BN_BATCHES == 50
  # The protocol parts stay the study's: data, batch, whole images, eval convention.
  for field in ("data.train", "data.eval", "batch_size", "patch_size", "corruption",
                "eval.ssim_convention", "loss"):
    a, b = c, base
    for part in field.split("."):
      a, b = a[part], b[part]
    assert a == b, field
  assert not c.corruption_fixed_per_image and c.optimizer.schedule == "cosine"
  # Every measured budget costs about the study's CPU time: steps x CPU s/step within 1%.
  measured = {(17, 64): 1.617, (10, 64): 0.904, (6, 64): 0.546, (17, 32): 0.625,
              (10, 32): 0.327}
  for key, steps in cifar_study.BEAT_STEPS.items():
    assert abs(steps * measured[key] / (25_000 * 0.124) - 1) < 0.01, key
  assert cifar_study.get_config("beat=17,width=32,steps=500").total_steps == 500
  assert cifar_study.get_config("beat=17,width=32").model.kwargs["features"] == 32
  with pytest.raises(ValueError, match=r"beat=12,width=64 has no measured CPU budget; "
                                       r"measured \(depth, width\): \[\(6, 64\), "):
    cifar_study.get_config("beat=12")
  with pytest.raises(ValueError, match=r"steps= is for beat=DEPTH"):
    cifar_study.get_config("steps=100")
  with pytest.raises(ValueError, match=r"beat=1; allowed: a DnCNN depth >= 2"):
    cifar_study.get_config("beat=1,steps=10")


def test_beat_mask_and_train_blocks_arguments():
  c = cifar_study.get_config("blocks=50,beat=10,mask")
  base = cifar_study.get_config("blocks=50,beat=10")
  assert (c.task, c.inpaint.mask) == ("inpaint", "zeros")
  assert c.model.kwargs.to_dict() == dict(base.model.kwargs, residual=False, out_channels=3)
  assert c.total_steps == base.total_steps and c.corruption == base.corruption
  tasks.build(c, local_device_count=1, process_count=1)  # the task accepts it
  t = cifar_study.get_config("blocks=10,beat=10,train_blocks=50")
  assert t.corruption == cifar_study.blocks(50)  # training (and validation) draws 50
  assert t.eval.sweep.to_dict() == {"blocks10": cifar_study.blocks(10)}  # the scored level stays 10
  with pytest.raises(ValueError, match=r"train_blocks=20; allowed: \[10, 50, 100\]"):
    cifar_study.get_config("beat=10,train_blocks=20")
  for arg in ("mask", "train_blocks=50"):
    with pytest.raises(ValueError, match=r"is for beat=DEPTH"):
      cifar_study.get_config(arg)


def test_benchmark_passes_the_variant_to_every_run():
  from absl import flags  # pylint: disable=g-import-not-at-top
  from absl.testing import flagsaver  # pylint: disable=g-import-not-at-top
  from benchmarks import cifar_study as bench  # pylint: disable=g-import-not-at-top
  flags.FLAGS.mark_as_parsed()
  with flagsaver.flagsaver(variant="beat=6"):
    assert bench.final_step() == cifar_study.BEAT_STEPS[6, 64] - cifar_study.PRECISE_BN_STEPS
    assert bench.config_arg(50, 2, test=True).endswith(
        "configs/cifar_study.py:blocks=50,seed=2,test,beat=6")
  with flagsaver.flagsaver(variant=""):
    assert bench.final_step() == 25_000
    assert bench.config_arg(10, 0).endswith("configs/cifar_study.py:blocks=10,seed=0")


def test_shards_packed_for_the_gpu_unpack_to_the_same_bytes():
  from benchmarks import cifar_shards  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(3)
  images = rng.integers(0, 256, (50, 32, 32, 3), np.uint8)
  images[0] = 255  # row differences that wrap around in uint8
  images[1, :, ::2] = 0
  out = cifar_shards.unpack(cifar_shards.pack(images), (32, 32, 3))
  assert out.dtype == np.uint8 and np.array_equal(out, images)
  smooth = np.broadcast_to(np.arange(32, dtype=np.uint8)[None, None, :, None], (50, 32, 32, 3))
  assert len(cifar_shards.pack(np.ascontiguousarray(smooth))) < smooth.size // 20
  with pytest.raises(ValueError, match="expected uint8 NHWC images"):
    cifar_shards.pack(images.astype(np.float32))


def test_error_split_inside_and_outside_the_blocks():
  from benchmarks import cifar_error_split as es  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  clean = rng.random((2, 4, 4, 3)).astype(np.float32)
  mask = np.zeros((2, 4, 4), np.float32)
  mask[:, :2, :2] = 1  # a quarter of the pixels
  output = clean + np.where(mask[..., None] > 0, 0.2, 0.05)
  s = es.split(clean, output, mask)
  assert s["fraction_in"] == 0.25
  np.testing.assert_allclose([s["mse_in"], s["mse_out"]], [0.04, 0.0025], rtol=1e-5)
  np.testing.assert_allclose(s["share_in"], 0.04 / (0.04 + 3 * 0.0025), rtol=1e-5)
  half = es.scaled(clean, output, mask, 0.5)
  expected = np.broadcast_to(np.where(mask[..., None] > 0, 0.1, 0.0), clean.shape)
  np.testing.assert_allclose(half - clean, expected, atol=1e-6)


@pytest.mark.skipif(not HAVE_CIFAR, reason="CIFAR-10 npz not beside the repo")
def test_the_split_is_keras_validation_split_0_2():
  """Shards sort as train_0..4: shards 0-3 are the first 40,000, train_4 the last 10,000."""
  train_part = specs.open_source(cifar_study.TRAIN, 3)
  everything = specs.open_source(f"npz:{cifar_study.CIFAR}/train_*.npz", 3)
  validation = specs.open_source(cifar_study.VALIDATION, 3)
  assert (len(train_part), len(validation), len(everything)) == (40_000, 10_000, 50_000)
  names = [everything.name(i) for i in range(50_000)]
  assert [train_part.name(i) for i in range(40_000)] == names[:40_000]
  assert [validation.name(i) for i in range(10_000)] == names[40_000:]
  assert len(specs.open_source(cifar_study.TEST, 3)) == 10_000


def test_quick_config_trains_three_steps_and_evals_in_both_conventions(tmp_path):
  write_npz(tmp_path / "train.npz", 12)
  write_npz(tmp_path / "test.npz", 4, seed=1)
  c = override(cifar_study.get_config("quick"), **{
      "data.train": f"npz:{tmp_path}/train.npz", "data.eval": f"npz:{tmp_path}/test.npz",
      "batch_size": 4, "total_steps": 3, "eval_every_steps": 3, "checkpoint_every_steps": 3,
      "log_every_steps": 1, "data.eval_batch_size": 4, "model.kwargs": {"features": 8},
      "eval.num_grid_images": 0})
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(c, workdir, devices=jax.local_devices()[:1])
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    events = [json.loads(line) for line in f]
  assert [e["step"] for e in events if e["kind"] == "train"] == [1, 2, 3]
  assert all(np.isfinite(e["loss"]) for e in events if e["kind"] == "train")
  rows = []
  for conv in ("study", "standard"):
    rows += evaluate.run(override(c, **{"eval.ssim_convention": conv}), workdir, step=3,
                          devices=jax.local_devices()[:1])
  assert sorted(r["convention"] for r in rows) == ["rgb", "rgb_ssimstudy"]
  by = {r["convention"]: r for r in rows}
  assert by["rgb"]["psnr"] == pytest.approx(by["rgb_ssimstudy"]["psnr"])
  assert by["rgb"]["ssim"] != by["rgb_ssimstudy"]["ssim"]
  assert all(r["checkpoint"] == "latest" and r["n_images"] == 4 for r in rows)
