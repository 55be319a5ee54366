"""The mask-prediction and inpainting tasks: losses, scores, prediction, errors, resume."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from restoration.modes import chained
from restoration.runtime import checkpoints
from restoration.runtime import trained_run
from restoration import corruptions
from restoration.eval import evaluator
from restoration.losses import gan
from restoration import tasks
from restoration.data import eval_images
from restoration.tasks import inpaint
from restoration.tasks import mask as mask_task
from tests import test_modes_chained
from tests import test_configs
from tests.test_modes_train import assert_trees_equal, train_events
from tests.tiny import load_trained, straight_and_resumed, tiny_config

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
  images = np.stack([im for _, im in eval_images.load_eval_images(c, task.sources.eval)])
  index = jnp.arange(len(images))
  corrupt = corruptions.chain(list(c.corruption))
  corrupted, mask = task.inference.prepare(corrupt, 7, jnp.asarray(images), index)
  ref = evaluator.corrupt_eval_images(corrupt, 7, jnp.asarray(images) / 255.0, index)
  np.testing.assert_array_equal(corrupted, ref)
  assert 0 < float(mask.mean()) < 1
  values = task.inference.measure((2 * mask - 1) * 30.0, corrupted, mask)
  np.testing.assert_array_equal(values["iou"], 1.0)
  assert np.all(np.asarray(values["psnr"]) > 50) and np.all(np.isfinite(values["input_psnr"]))


@pytest.mark.slow  # three short training runs (and an eval)
def test_mask_task_resume_is_exact_and_keeps_best_by_iou(tmp_path):
  cfg = dict(checkpoint_every_steps=2, eval_every_steps=2)
  devices = jax.local_devices()[:1]
  straight, resumed, one, two = straight_and_resumed(mask_config, tmp_path, total=4, stop=2,
                                                     **cfg)
  assert_trees_equal(straight.params, resumed.params)
  assert train_events(one) == train_events(two)
  evals = train_events(one, "eval")
  assert {"iou", "f1", "precision", "recall", "psnr", "input_psnr"} <= set(evals[0])
  ckpt = checkpoints.Checkpointer(one, read_only=True)
  assert ckpt.best_psnr() == pytest.approx(max(e["iou"] for e in evals))
  ckpt.close()
  from restoration.modes import evaluate  # pylint: disable=g-import-not-at-top
  (row,) = evaluate.run(mask_config(), one, devices=devices)
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


def test_zeros_mask_is_found_in_the_input_alone():
  # inpaint.mask='zeros': the mask channel marks pixels 0 in EVERY channel of the corrupted
  # input (the chain's mask is not used); a pixel 0 in one channel only is not a hole.
  c = tiny_config(task="inpaint", corruption=ZERO_BLOCKS, loss={"l1": 1.0},
                  **{"model.kwargs": {"depth": 2, "features": 8, "out_channels": 3,
                                      "residual": False},
                     "inpaint.mask": "zeros", "data.channels": 3})
  task = build(c)
  assert task.mask_source == "zeros" and task.inference.mask_source == "zeros"
  rng = np.random.default_rng(1)
  clean = jnp.asarray(rng.uniform(0.1, 1.0, (4, 16, 16, 3)).astype(np.float32))
  clean = clean.at[0, 0, 0, 1].set(0.0)  # one channel black: a real pixel, not a hole
  clean = clean.at[1, 5, 5].set(0.0)     # a naturally black pixel: found as a hole too
  x = task.model_input(jax.random.key(0), clean, index=jnp.arange(4))
  corrupted = np.asarray(x[..., :3])
  expected = (corrupted == 0).all(-1, keepdims=True).astype(np.float32)
  np.testing.assert_array_equal(np.asarray(x[..., 3:]), expected)
  assert x[0, 0, 0, 3] == 0 and x[1, 5, 5, 3] == 1
  assert expected.sum() > 1  # the blocks were found
  # Eval prepares its input the same way.
  images = np.asarray(clean * 255).round().astype(np.uint8)
  inp, _ = task.inference.prepare(task.corrupt, 0, jnp.asarray(images), jnp.arange(4))
  np.testing.assert_array_equal(
      np.asarray(inp[..., 3:]),
      (np.asarray(inp[..., :3]) == 0).all(-1, keepdims=True).astype(np.float32))
  with pytest.raises(ValueError, match=r"config.inpaint.mask='holes'; allowed: "
                                       r"\['corruption', 'zeros'\]"):
    build(inpaint_config(**{"inpaint.mask": "holes"}))


@pytest.mark.slow  # three short training runs (and an eval)
def test_inpaint_trains_and_resumes(tmp_path):
  cfg = dict(checkpoint_every_steps=2, eval_every_steps=2)
  straight, resumed, one, _ = straight_and_resumed(inpaint_config, tmp_path, total=4, stop=2,
                                                   **cfg)
  assert_trees_equal(straight.params, resumed.params)
  assert all(np.isfinite(e["psnr"]) for e in train_events(one, "eval"))
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from restoration.modes import restore  # pylint: disable=g-import-not-at-top
  Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "user.png")
  with pytest.raises(ValueError, match="needs the damage mask"):
    restore.run(inpaint_config(), one, str(tmp_path / "user.png"), str(tmp_path / "out"))


# ------------------------------------------------- inpaint_adversarial (inpainting + PatchGAN)

GAN = {"adversarial.discriminator.kwargs": {"n_layers": 2, "features": 4},
       "adversarial.d_optimizer.learning_rate": 2e-3}
ZERO_BLOCKS = [{"name": "random_blocks", "num_blocks": 3, "block_size": (2, 5), "fill": 0.0}]


def inpaint_gan_config(**kw):
  return tiny_override(inpaint_config(), {"task": "inpaint_adversarial", **GAN, **kw})


def test_inpaint_gan_discriminator_can_only_judge_the_holes():
  task = build(inpaint_gan_config(corruption=ZERO_BLOCKS))
  assert type(task.inference) is inpaint.InpaintInference
  state = task.init_state()
  # D is conditioned on image + mask (2 channels) and judges a 1-channel candidate.
  assert state.d_params["conv0"]["kernel"].shape[2] == 3
  rng = np.random.default_rng(0)
  image = rng.random((3, 16, 16, 1), np.float32)
  m = random_masks(3, (3, 16, 16, 1))
  x = inpaint.with_mask(jnp.asarray(image * (1 - m)), jnp.asarray(m))
  variables = task.inference_variables(state)
  out = np.asarray(task.inference.predict(variables, x))
  np.testing.assert_array_equal(out[m == 0], image[m == 0])  # known pixels unchanged
  net = task.model.apply(variables, x, train=False)
  np.testing.assert_array_equal(task.d_candidate(net, x), out)  # fake: the filled image
  np.testing.assert_array_equal(task.d_candidate(jnp.asarray(image), x), image)  # real: clean
  # G's adversarial gradient reaches its output in the holes only.
  d_vars = {"params": state.d_params, "batch_stats": state.d_batch_stats}
  g_adv = lambda y: gan.generator_loss(
      "vanilla", task.discriminator.apply(d_vars, x, task.d_candidate(y, x), train=False))
  grad = np.asarray(jax.grad(g_adv)(net))
  assert not np.any(grad[m == 0]) and np.any(grad[m == 1])
  # G's reconstruction loss is inpaint's (holes + valid_weight x every pixel).
  target = rng.random(image.shape, np.float32)
  err = np.abs(np.asarray(net) - target)
  np.testing.assert_allclose(task.task_loss(net, target, x, None)[0],
                             (err * m).mean() + 0.1 * err.mean(), rtol=1e-5)


@pytest.mark.parametrize("overrides,match", [
    ({"corruption": [{"name": "gaussian_noise", "sigma": 5.0}]},
     r"no masking step; task 'inpaint_adversarial' needs one of"),
    ({"model.kwargs": {"depth": 2, "features": 8, "out_channels": 1}},
     r"residual must be False for task 'inpaint_adversarial'"),
    ({"model.kwargs": {"depth": 2, "features": 8, "out_channels": 2, "residual": False}},
     r"out_channels to data.channels and residual=False"),
    ({"inpaint.valid_weight": -1.0}, r"config.inpaint.valid_weight must be a number >= 0"),
    ({"adversarial.d_steps": 0}, r"config.adversarial.d_steps must be an integer >= 1"),
    ({"adversarial.discriminator.kwargs": {"n_layers": 3}},
     r"config.adversarial.discriminator .* gives no logits on patch_size=16"),
])
def test_inpaint_gan_errors(overrides, match):
  with pytest.raises(ValueError, match=match):
    build(tiny_override(inpaint_gan_config(), overrides))


@pytest.mark.parametrize("arg", ["gan", "quick,gan"])
def test_inpaint_gan_configs_load_and_initialise(arg):
  test_configs.test_config_loads_and_model_initialises("inpaint.py", arg)
  assert test_configs.load("inpaint.py", arg).task == "inpaint_adversarial"


@pytest.mark.slow  # three short GAN training runs (and evals)
def test_inpaint_gan_trains_and_resumes_exactly(tmp_path):
  """4 steps straight == 2 + 2 (two D updates per step, R1 and EMA on), bit for bit."""
  cfg = dict(checkpoint_every_steps=2, eval_every_steps=2, ema_decay=0.9,
             **{"adversarial.d_steps": 2, "adversarial.r1_gamma": 1.0})
  straight, resumed, one, two = straight_and_resumed(inpaint_gan_config, tmp_path, total=4,
                                                     stop=2, **cfg)
  assert int(resumed.step) == 4
  assert_trees_equal(straight, resumed)  # every field: both models, optimizers, EMA
  events = train_events(one)
  assert events == train_events(two) and len(events) == 4
  for key in ("g_loss", "g_adv", "g_l1", "d_loss", "d_real", "d_fake", "d_r1", "g_grad_norm",
              "d_grad_norm"):
    assert all(np.isfinite(e[key]) for e in events), key
  assert all(np.isfinite(e["psnr"]) for e in train_events(one, "eval"))
  # Eval / restore rebuild inpaint's inference from the checkpoint: known pixels kept.
  inference, variables, _, _ = load_trained(inpaint_gan_config(), one)
  assert type(inference) is inpaint.InpaintInference and inference.needs_mask
  assert inference.meta["task"] == "inpaint_adversarial"
  m = random_masks(4, (3, 16, 16, 1))
  image = np.random.default_rng(5).random(m.shape, np.float32)
  out = np.asarray(inference.predict(variables, inpaint.with_mask(image * (1 - m), m)))
  np.testing.assert_array_equal(out[m == 0], image[m == 0])


def test_chained_restore_takes_an_inpaint_gan_stage(tmp_path):
  dirs = {}
  for i, (name, kw) in enumerate(test_modes_chained.STAGES.items()):
    if name == "inpaint":
      kw = {**kw, **GAN, "task": "inpaint_adversarial"}
    c = tiny_config(seed=i, **kw)
    task = build(c)
    dirs[f"pipeline.{name}"] = str(tmp_path / name)
    trained_run.export(dirs[f"pipeline.{name}"], c, task.inference_variables(task.init_state()),
                       task.model_meta())
  stages = chained.load_stages(tiny_override(tiny_config(), dirs))
  assert type(stages["inpaint"].inference) is inpaint.InpaintInference
  image = np.random.default_rng(0).random((32, 32, 1), np.float32)
  restored, mask = chained.restore_chain(stages, image, 0.5)
  assert restored.shape == (32, 32, 3) and mask.shape == (32, 32, 1)
  assert np.all(np.isfinite(restored))
