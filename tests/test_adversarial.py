"""Tests for the adversarial (pix2pix) task, and the perceptual loss / frozen VGG encoder of
the restorer in training (tasks.restorer, losses.TrainingLoss). Tiny models, 16 px crops."""

import jax
import numpy as np
import pytest

from restoration import losses
from restoration.runtime import parallel
from restoration.losses import perceptual
from restoration import tasks
from restoration.modes import train
from restoration.tasks import supervised
from tests.test_modes_train import assert_trees_equal, train_events
from tests.tiny import load_trained, straight_and_resumed, tiny_config
from tests.vgg_helpers import WIDTHS, random_arrays

# G: DnCNN with BatchNorm (so G's statistics are checked too); D: a 2-layer PatchGAN.
GAN = {"task": "adversarial", "model.name": "dncnn", "model.kwargs": {"depth": 3, "features": 8},
       "adversarial.discriminator.kwargs": {"n_layers": 2, "features": 4},
       "adversarial.d_optimizer.learning_rate": 2e-3}
VGG_LAYERS = {"perceptual.layers": ("relu1_2", "relu2_2"), "perceptual.layer_weights": (1.0, 1.0),
              "perceptual.widths": WIDTHS}


def gan_config(**overrides):
  return tiny_config(**{**GAN, **overrides})


def build(c):
  return tasks.build(c, local_device_count=1, process_count=1)


@pytest.fixture(scope="module")
def vgg_npz(tmp_path_factory):
  path = tmp_path_factory.mktemp("vgg") / "vgg19.npz"
  np.savez(path, **random_arrays(seed=3))
  return str(path)


def changed(a, b) -> bool:
  return any(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b),
                                                      strict=True))


def test_d_step_changes_only_d_and_g_step_only_g():
  task = build(gan_config(ema_decay=0.5))
  state = task.initial_state()
  clean = jax.random.uniform(jax.random.key(0), (1, *task.input_shape(4)))

  def one(which, state, clean):
    step_key, device_key = supervised.step_keys(task.config.seed, state.step)
    if which == "d":
      return task.d_step(state, clean, step_key, device_key, 0)[0]
    return task.g_step(state, clean, step_key, device_key, None)[0]

  devices = jax.local_devices()[:1]
  rstate = parallel.replicate(state, devices)
  after_d = parallel.parallelize(lambda s, c: one("d", s, c), devices=devices)(rstate, clean)
  after_g = parallel.parallelize(lambda s, c: one("g", s, c), devices=devices)(after_d, clean)
  before, after_d, after_g = (parallel.unreplicate(s) for s in (rstate, after_d, after_g))
  g_fields = ("params", "batch_stats", "opt_state", "ema_params")
  d_fields = ("d_params", "d_batch_stats", "d_opt_state")
  for f in g_fields:
    assert_trees_equal(getattr(before, f), getattr(after_d, f))
  for f in d_fields:
    assert changed(getattr(before, f), getattr(after_d, f)), f
    assert_trees_equal(getattr(after_d, f), getattr(after_g, f))
  for f in g_fields:
    assert changed(getattr(after_d, f), getattr(after_g, f)), f
  assert int(after_g.step) == int(before.step) == 0   # train_step counts, not the halves


@pytest.mark.slow
def test_resume_is_exact(tmp_path):
  """6 steps straight == 3 + 3 (two D updates per step, R1 and EMA on), bit for bit."""
  cfg = dict(checkpoint_every_steps=3, eval_every_steps=100, ema_decay=0.9,
             **{"adversarial.d_steps": 2, "adversarial.r1_gamma": 1.0})
  straight, resumed, one, two = straight_and_resumed(gan_config, tmp_path, total=6, stop=3,
                                                     **cfg)
  assert int(resumed.step) == 6
  assert_trees_equal(straight, resumed)   # every field: both models, optimizers, EMA
  events = train_events(one)
  assert events == train_events(two)
  for key in ("g_loss", "g_adv", "g_l1", "d_loss", "d_real", "d_fake", "d_r1"):
    assert all(np.isfinite(e[key]) for e in events), key


@pytest.mark.slow
def test_two_devices_match_one_device(tmp_path):
  devices = jax.local_devices()
  assert len(devices) >= 2, "conftest sets 2 simulated CPU devices"
  c = gan_config(total_steps=3, eval_every_steps=100, checkpoint_every_steps=100,
                 **{"adversarial.loss": "hinge", "adversarial.r1_gamma": 1.0})
  a = train.train_and_evaluate(c, str(tmp_path / "one"), devices=devices[:1])
  b = train.train_and_evaluate(c, str(tmp_path / "two"), devices=devices[:2])
  assert_trees_equal(a, b, rtol=1e-5, atol=1e-5)
  ea, eb = train_events(str(tmp_path / "one")), train_events(str(tmp_path / "two"))
  for key in ("g_loss", "d_loss", "d_real", "d_fake"):
    np.testing.assert_allclose([e[key] for e in ea], [e[key] for e in eb], rtol=1e-5,
                               atol=1e-6)


@pytest.mark.slow
def test_eval_and_restore_read_an_adversarial_workdir(tmp_path):
  workdir = str(tmp_path / "run")
  c = gan_config(total_steps=2, eval_every_steps=2, checkpoint_every_steps=2)
  state = train.train_and_evaluate(c, workdir, devices=jax.local_devices()[:1])
  inference, variables, step, which = load_trained(c, workdir)
  assert (step, which) == (2, "best")
  assert inference.meta["task"] == "adversarial"
  assert inference.meta["discriminator"]["name"] == "patchgan"
  assert type(inference) is tasks.Inference   # the generator only
  task = build(c)
  assert_trees_equal(variables, task.inference_variables(state))
  x = jax.random.uniform(jax.random.key(1), (2, 20, 24, 1))
  np.testing.assert_array_equal(inference.predict(variables, x),
                                task.inference.predict(task.inference_variables(state), x))


@pytest.mark.parametrize("overrides,match", [
    ({"adversarial.loss": "wgan"}, r"config.adversarial.loss='wgan'; allowed: vanilla"),
    ({"adversarial.d_steps": 0}, r"config.adversarial.d_steps must be an integer >= 1"),
    ({"adversarial.l1_weight": -1.0}, r"config.adversarial.l1_weight must be a number >= 0"),
    ({"adversarial.d_optimizer.learning_rate": 0.0},
     r"config.adversarial.d_optimizer.learning_rate must be > 0"),
    ({"adversarial.d_optimizer.b1": 1.0}, r"config.adversarial.d_optimizer.b1 must be in"),
    ({"adversarial.discriminator.name": "cnn"},
     r"config.adversarial.discriminator.name='cnn'; allowed: \['patchgan'\]"),
    ({"adversarial.discriminator.kwargs": {"n_layers": 3}},
     r"config.adversarial.discriminator .* gives no logits on patch_size=16"),
    ({"adversarial.discriminator.kwargs": {"widths": 3}},
     r"config.adversarial.discriminator \(name='patchgan'.*no field"),
])
def test_bad_adversarial_fields_raise(overrides, match):
  with pytest.raises(ValueError, match=match):
    build(gan_config(**overrides))


# ----------------------------------------------------------- perceptual loss, VGG encoder


def test_training_loss_adds_weighted_perceptual_and_no_gradient_reaches_vgg(vgg_npz):
  c = tiny_config(**VGG_LAYERS, **{"perceptual.weights_path": vgg_npz,
                                   "loss": {"mse": 1.0, "perceptual": 0.5}})
  loss = losses.TrainingLoss(c)
  consts = loss.consts()
  fn, vgg = perceptual.make_perceptual(c.perceptual, widths=WIDTHS)
  assert_trees_equal(consts[losses.VGG_CONST], vgg)
  a, b = (jax.random.uniform(jax.random.key(i), (2, 16, 16, 1)) for i in (0, 1))
  total, terms = loss(a, b, consts)
  np.testing.assert_allclose(terms["perceptual"], fn(a, b, vgg), rtol=1e-6)
  np.testing.assert_allclose(total, losses.mse(a, b) + 0.5 * fn(a, b, vgg), rtol=1e-6)
  assert float(terms["perceptual"]) > 0
  g_vgg = jax.grad(lambda k: loss(a, b, k)[0])(consts)
  assert all(not np.any(g) for g in jax.tree.leaves(g_vgg))
  assert np.any(jax.grad(lambda x: loss(x, b, consts)[0])(a))
  # Eval tables leave the perceptual term out (eval loads no VGG).
  np.testing.assert_allclose(losses.make_loss(dict(c.loss))(a, b), losses.mse(a, b))


@pytest.mark.slow
def test_supervised_run_with_perceptual_loss_trains(tmp_path, vgg_npz):
  c = tiny_config(total_steps=3, eval_every_steps=100, checkpoint_every_steps=100,
                  **VGG_LAYERS, **{"perceptual.weights_path": vgg_npz,
                                   "loss": {"mse": 1.0, "perceptual": 1.0}})
  task = build(c)
  assert set(task.consts()) == {losses.VGG_CONST}
  devices = jax.local_devices()[:1]
  state = train.train_and_evaluate(c, str(tmp_path / "p"), devices=devices)
  plain = train.train_and_evaluate(tiny_config(total_steps=3, eval_every_steps=100,
                                               checkpoint_every_steps=100),
                                   str(tmp_path / "mse"), devices=devices)
  # The state holds the restorer only: the VGG is no parameter of any optimizer.
  assert jax.tree.structure(state.params) == jax.tree.structure(plain.params)
  assert changed(state.params, plain.params)
  events = train_events(str(tmp_path / "p"))
  for e in events:   # loss = mse + 1.0 * perceptual, both terms > 0
    assert e["perceptual"] > 0 and 0 < e["loss"] - e["perceptual"] < e["loss"], e


def vgg_unet_config(vgg_npz, **overrides):
  return tiny_config(**{"model.name": "vgg_unet", "data.channels": 3,
                        "model.kwargs": {"depth": 2, "widths": WIDTHS},
                        "model.encoder_weights": vgg_npz, **overrides})


@pytest.mark.slow
@pytest.mark.parametrize("freeze", [True, False])
def test_vgg_unet_encoder_loads_and_freezes(tmp_path, vgg_npz, freeze):
  c = vgg_unet_config(vgg_npz, total_steps=2, eval_every_steps=100,
                      checkpoint_every_steps=100, **{"model.freeze_encoder": freeze})
  task = build(c)
  start = task.initial_state()
  loaded = random_arrays(seed=3)
  np.testing.assert_array_equal(start.params["encoder"]["conv1_1"]["kernel"],
                                loaded["conv1_1/kernel"])
  state = train.train_and_evaluate(c, str(tmp_path / "run"), devices=jax.local_devices()[:1])
  assert changed(start.params["dec1_1"], state.params["dec1_1"])
  assert changed(start.params["encoder"], state.params["encoder"]) != freeze


@pytest.mark.parametrize("overrides,match", [
    ({"model.freeze_encoder": True}, r"config.model.freeze_encoder / encoder_weights need"),
    ({"model.encoder_weights": "x.npz"}, r"need model.name='vgg_unet'"),
    ({"loss": {"mse": 1.0, "perceptual": 1.0}}, r"config.perceptual.weights_path is not set"),
    ({"loss": {"mse": 1.0, "perceptual": 1.0}, "perceptual.weights_path": "x.npz",
      "perceptual.widths": (4, 8)}, r"config.perceptual.widths=\(4, 8\)"),
])
def test_bad_restorer_switches_raise(overrides, match):
  with pytest.raises(ValueError, match=match):
    build(tiny_config(**overrides))


def test_missing_encoder_weights_file_names_the_field():
  with pytest.raises(ValueError, match=r"config.model.encoder_weights='/no/such.npz': no such"):
    build(vgg_unet_config("/no/such.npz"))
