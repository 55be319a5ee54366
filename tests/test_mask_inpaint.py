"""The mask-prediction and inpainting tasks: losses, scores, prediction, errors, resume."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from restoration import corruptions
from restoration import evaluate
from restoration import tasks
from restoration import train
from restoration.data import pipeline
from restoration.tasks import mask as mask_task
from tests.test_train import assert_trees_equal, train_events
from tests.tiny import tiny_config

BLOCKS = [{"name": "random_blocks", "num_blocks": 3, "block_size": (2, 5), "fill": "noise"}]


def mask_config(**kw):
  return tiny_config(task="mask", corruption=BLOCKS, loss={"bce": 1.0, "dice": 1.0},
                     **{"model.kwargs": {"depth": 2, "features": 8, "out_channels": 1,
                                         "residual": False}}, **kw)


def inpaint_config(**kw):
  return tiny_config(task="inpaint", corruption=BLOCKS, loss={"l1": 1.0},
                     **{"model.kwargs": {"depth": 2, "features": 8, "out_channels": 1,
                                         "residual": False}}, **kw)


def build(c):
  return tasks.build(c, local_device_count=1, process_count=1)


def random_masks(seed=0, shape=(3, 12, 12, 1)):
  m = (np.random.default_rng(seed).random(shape) < 0.3).astype(np.float32)
  m[2] = 0.0  # an undamaged image
  return m


def test_perfect_logits_give_iou_one_and_near_zero_loss():
  m = jnp.asarray(random_masks())
  logits = (2.0 * m - 1.0) * 30.0
  scores = mask_task.mask_scores(logits, m)
  for name in ("iou", "f1", "precision", "recall"):
    np.testing.assert_array_equal(scores[name], 1.0)
  loss = mask_task.make_mask_loss({"bce": 1.0, "dice": 1.0})
  assert float(loss(logits, m)) < 1e-6
  assert float(loss(-logits, m)) > 1.0  # the inverted map is maximally wrong


def test_scores_match_an_independent_count():
  m = random_masks(1)
  logits = np.random.default_rng(2).normal(size=m.shape).astype(np.float32)
  scores = mask_task.mask_scores(jnp.asarray(logits), jnp.asarray(m))
  for i in range(2):
    pred, truth = logits[i] > 0, m[i] > 0.5
    tp, fp, fn = (pred & truth).sum(), (pred & ~truth).sum(), (~pred & truth).sum()
    np.testing.assert_allclose(scores["iou"][i], tp / (tp + fp + fn), rtol=1e-6)
    np.testing.assert_allclose(scores["f1"][i], 2 * tp / (2 * tp + fp + fn), rtol=1e-6)
    np.testing.assert_allclose(scores["precision"][i], tp / (tp + fp), rtol=1e-6)
    np.testing.assert_allclose(scores["recall"][i], tp / (tp + fn), rtol=1e-6)
  # Image 2 has no damage: recall (0/0) counts as 1; any false positive makes IoU 0.
  assert scores["recall"][2] == 1.0 and scores["iou"][2] == 0.0


@pytest.mark.parametrize("overrides,match", [
    ({"corruption": [{"name": "gaussian_noise", "sigma": 5.0}]}, "no masking step"),
    ({"loss": {"mse": 1.0}}, "task 'mask' takes losses"),
    ({"model.kwargs": {"depth": 2, "features": 8}}, "residual must be False"),
    ({"model.kwargs": {"depth": 2, "features": 8, "out_channels": 3, "residual": False}},
     "out_channels=1 and residual=False"),
])
def test_mask_task_errors(overrides, match):
  with pytest.raises(ValueError, match=match):
    build(tiny_override(mask_config(), overrides))


def tiny_override(c, overrides):
  from tests.tiny import override  # pylint: disable=g-import-not-at-top
  return override(c, **overrides)


def test_mask_eval_of_the_true_mask_is_perfect():
  """The eval path measures the chain's mask: feeding it back as logits scores IoU 1."""
  c = mask_config()
  task = build(c)
  assert task.output_shape(2) == (2, 16, 16, 1)
  images = np.stack([im for _, im in pipeline.load_eval_images(c, task.sources.eval)])
  index = jnp.arange(len(images))
  corrupt = corruptions.chain(list(c.corruption))
  corrupted, mask = task.inference.prepare(corrupt, 7, jnp.asarray(images), index)
  ref = evaluate.corrupt_eval_images(corrupt, 7, jnp.asarray(images) / 255.0, index)
  np.testing.assert_array_equal(corrupted, ref)
  assert 0 < float(mask.mean()) < 1
  values = task.inference.measure((2 * mask - 1) * 30.0, corrupted, mask)
  np.testing.assert_array_equal(values["iou"], 1.0)
  assert np.all(np.asarray(values["psnr"]) > 50) and np.all(np.isfinite(values["input_psnr"]))


@pytest.mark.slow  # three short training runs (and an eval)
def test_mask_task_resume_is_exact_and_keeps_best_by_iou(tmp_path):
  cfg = dict(checkpoint_every_steps=2, eval_every_steps=2)
  devices = jax.local_devices()[:1]
  one, two = str(tmp_path / "straight"), str(tmp_path / "resumed")
  straight = train.train_and_evaluate(mask_config(total_steps=4, **cfg), one, devices=devices)
  train.train_and_evaluate(mask_config(total_steps=2, **cfg), two, devices=devices)
  resumed = train.train_and_evaluate(mask_config(total_steps=4, **cfg), two, devices=devices)
  assert_trees_equal(straight.params, resumed.params)
  assert train_events(one) == train_events(two)
  evals = train_events(one, "eval")
  assert {"iou", "f1", "precision", "recall", "psnr", "input_psnr"} <= set(evals[0])
  from restoration import checkpoints  # pylint: disable=g-import-not-at-top
  ckpt = checkpoints.Checkpointer(one, read_only=True)
  assert ckpt.best_psnr() == pytest.approx(max(e["iou"] for e in evals))
  ckpt.close()
  from restoration import eval_mode  # pylint: disable=g-import-not-at-top
  (row,) = eval_mode.run(mask_config(), one, devices=devices)
  assert row["iou"] == pytest.approx(max(e["iou"] for e in evals), rel=1e-5)
  assert {"f1", "precision", "recall"} <= set(row)


def test_inpaint_prediction_keeps_known_pixels_and_loss_is_on_holes():
  c = inpaint_config()
  task = build(c)
  assert task.input_shape(2) == (2, 16, 16, 2) and task.output_shape(2) == (2, 16, 16, 1)
  state = task.init_state()
  rng = np.random.default_rng(0)
  image = rng.random((3, 16, 16, 1), np.float32)
  m = random_masks(3, (3, 16, 16, 1))
  x = jnp.concatenate([image * (1 - m), m], -1)
  out = np.asarray(task.inference.predict(task.inference_variables(state), x))
  np.testing.assert_array_equal(out[m == 0], image[m == 0])
  net = task.model.apply(task.inference_variables(state), x, train=False)
  np.testing.assert_allclose(out[m == 1], np.asarray(net)[m == 1], rtol=1e-6)
  target = rng.random(image.shape, np.float32)
  loss = float(task.task_loss(net, target, x, None)[0])
  err = np.abs(np.asarray(net) - target)
  expected = (err * m).mean() + 0.1 * err.mean()  # inpaint.valid_weight = 0.1
  np.testing.assert_allclose(loss, expected, rtol=1e-5)


@pytest.mark.slow  # three short training runs (and an eval)
def test_inpaint_trains_and_resumes(tmp_path):
  cfg = dict(checkpoint_every_steps=2, eval_every_steps=2)
  devices = jax.local_devices()[:1]
  one, two = str(tmp_path / "straight"), str(tmp_path / "resumed")
  straight = train.train_and_evaluate(inpaint_config(total_steps=4, **cfg), one,
                                      devices=devices)
  train.train_and_evaluate(inpaint_config(total_steps=2, **cfg), two, devices=devices)
  resumed = train.train_and_evaluate(inpaint_config(total_steps=4, **cfg), two, devices=devices)
  assert_trees_equal(straight.params, resumed.params)
  assert all(np.isfinite(e["psnr"]) for e in train_events(one, "eval"))
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from restoration import restore  # pylint: disable=g-import-not-at-top
  Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "user.png")
  with pytest.raises(ValueError, match="needs the damage mask"):
    restore.run(inpaint_config(), one, str(tmp_path / "user.png"), str(tmp_path / "out"))
