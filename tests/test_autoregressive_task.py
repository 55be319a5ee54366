"""The autoregressive (PixelCNN) task through the generic loop, eval and restore (tiny, CPU).

A 2-layer, 4-feature PixelCNN on 8 px gray crops; evals on 12 px crops (the SSIM window needs
11), so a decode is 144 forward passes.
"""

import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from restoration.models import pixelcnn_decode as ar
from restoration import corruptions
from restoration import data
from restoration.eval import evaluator
from restoration.image_files import reading
from restoration.eval import metrics
from restoration.runtime import parallel
from restoration.modes import restore
from restoration import tasks
from restoration.modes import train
from tests.test_modes_train import assert_trees_equal, train_events
from tests.tiny import load_trained, straight_and_resumed, tiny_config

EVAL_KEYS = {"step", "kind", "psnr", "ssim", "input_psnr", "input_ssim", "loss", "nll_bpd",
             "psnr_sample", "ssim_sample"}


def ar_config(**overrides):
  return tiny_config(**{"task": "autoregressive", "model.name": "pixelcnn",
                        "model.kwargs": {"features": 4, "layers": 2, "cond_features": 4},
                        "patch_size": 8, "data.eval_crop": 12, **overrides})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """(config, workdir) of a 4-step run with evals at steps 2 and 4."""
  workdir = str(tmp_path_factory.mktemp("ar") / "run")
  c = ar_config()
  train.train_and_evaluate(c, workdir, devices=jax.local_devices()[:1])
  return c, workdir


@pytest.mark.slow  # three runs, each compiling a train step and the decodes
def test_resume_is_exact(tmp_path):
  """6 steps straight == 3 steps, stop, rerun to 6: params, Adam state and logs bit for bit."""
  cfg = dict(checkpoint_every_steps=3, eval_every_steps=100)
  straight, resumed, one, two = straight_and_resumed(ar_config, tmp_path, total=6, stop=3,
                                                     **cfg)
  assert int(resumed.step) == 6
  assert_trees_equal(straight.params, resumed.params)
  assert_trees_equal(straight.opt_state, resumed.opt_state)
  events = train_events(one)
  assert events == train_events(two)
  assert [e["step"] for e in events] == list(range(1, 7))


@pytest.mark.slow  # two runs, each compiling a train step and the decodes
def test_two_devices_match_one_device(tmp_path):
  devices = jax.local_devices()
  assert len(devices) >= 2, "conftest sets 2 simulated CPU devices"
  c = ar_config(total_steps=3, eval_every_steps=100, checkpoint_every_steps=100)
  a = train.train_and_evaluate(c, str(tmp_path / "one"), devices=devices[:1])
  b = train.train_and_evaluate(c, str(tmp_path / "two"), devices=devices[:2])
  assert_trees_equal(a.params, b.params, rtol=1e-5, atol=1e-6)
  for key in ("loss", "bits_per_dim"):
    np.testing.assert_allclose([e[key] for e in train_events(str(tmp_path / "one"))],
                               [e[key] for e in train_events(str(tmp_path / "two"))], rtol=1e-5)


def test_train_loss_is_the_nll_of_the_same_logits():
  """The step's loss == autoregressive.nll (nats/dim) of the logits of its clean batch and the
  documented corruption keys (fold_in(fold_in(key(seed), step), 1), global example index)."""
  devices = jax.local_devices()[:2]
  c = ar_config(batch_size=4)
  task = tasks.build(c, local_device_count=2, process_count=1)
  state = jax.jit(task.init_state)()
  rng = np.random.default_rng(0)
  batch = rng.integers(0, 256, (2, 2, 8, 8, 1), dtype=np.uint8)  # [devices, B/2, P, P, C]
  step = parallel.parallelize(task.train_step, devices=devices)
  rstate = parallel.to_devices(parallel.replicate(state, devices), devices)
  _, m = step(rstate, parallel.to_devices(batch, devices), None)
  loss, bpd = float(np.asarray(m["loss"])[0]), float(np.asarray(m["bits_per_dim"])[0])

  clean_u8 = jnp.asarray(batch.reshape(4, 8, 8, 1))
  clean = clean_u8.astype(jnp.float32) / 255.0
  key = jax.random.fold_in(jax.random.fold_in(jax.random.key(c.seed), 0), 1)
  corrupted = corruptions.per_example(corruptions.chain(list(c.corruption)), key, clean,
                                      jnp.arange(4))[0]
  logits = jax.jit(task.inference.apply_fn)({"params": state.params}, clean_u8, corrupted)
  nats, bits = jax.jit(ar.nll)(logits, clean_u8)
  np.testing.assert_allclose(loss, float(jnp.mean(nats)) / 64, rtol=1e-5)
  np.testing.assert_allclose(bpd, float(jnp.mean(bits)), rtol=1e-5)
  np.testing.assert_allclose(bpd, loss / math.log(2), rtol=1e-6)
  assert 7.0 < bpd < 9.0  # an untrained model is close to uniform (8 bits)


def test_eval_event_keys_and_values(trained):
  """psnr/ssim are the deterministic decode's; nll_bpd the likelihood; *_sample the sample's."""
  c, workdir = trained
  evals = train_events(workdir, "eval")
  assert [e["step"] for e in evals] == [2, 4]
  assert all(set(e) == EVAL_KEYS for e in evals)
  last = evals[-1]
  np.testing.assert_allclose(last["nll_bpd"], last["loss"] / math.log(2), rtol=1e-5)

  inference, variables, step, _ = load_trained(c, workdir, step=4)
  assert step == 4
  images = np.stack([im for _, im in data.load_eval_images(c)])
  clean = jnp.asarray(images, jnp.float32) / 255.0
  corrupted = evaluator.corrupt_eval_images(corruptions.chain(list(c.corruption)), c.eval.seed,
                                           clean, jnp.arange(len(images)))
  apply_fn = inference.apply_fn
  decoded = ar.decode_mean(apply_fn, variables, corrupted, channels=1)
  want_psnr = metrics.psnr(decoded.astype(jnp.float32) / 255, clean)
  np.testing.assert_allclose(last["psnr"], float(jnp.mean(want_psnr)), rtol=1e-5)
  np.testing.assert_allclose(last["input_psnr"], float(jnp.mean(metrics.psnr(corrupted, clean))),
                             rtol=1e-5)
  _, bits = ar.nll(apply_fn(variables, jnp.asarray(images), corrupted), jnp.asarray(images))
  np.testing.assert_allclose(last["nll_bpd"], float(jnp.mean(bits)), rtol=1e-5)
  # Each image's sample is drawn alone with the fixed key: the batch does not change it.
  key = jax.random.key(c.autoregressive.sample_seed)
  alone = [ar.sample(apply_fn, variables, corrupted[i:i + 1], key, channels=1)[0]
           for i in range(len(images))]
  sampled = jnp.stack(alone).astype(jnp.float32) / 255
  np.testing.assert_allclose(last["psnr_sample"], float(jnp.mean(metrics.psnr(sampled, clean))),
                             rtol=1e-4)
  assert last["psnr_sample"] != last["psnr"]


def test_restore_writes_outputs_of_the_input_sizes(trained, tmp_path):
  c, workdir = trained
  inputs = tmp_path / "in"
  os.makedirs(inputs)
  rng = np.random.default_rng(1)
  gray = rng.integers(0, 256, (5, 7), dtype=np.uint8)
  Image.fromarray(gray, "L").save(inputs / "gray.png")
  Image.fromarray(rng.integers(0, 256, (9, 4, 3), dtype=np.uint8), "RGB").save(inputs / "rgb.png")
  written = restore.run(c, workdir, str(inputs), str(tmp_path / "out"), bucket=8)
  assert sorted(os.path.basename(p) for p in written) == ["gray.png", "rgb.png"]
  out_gray, _ = reading.read_image(str(tmp_path / "out" / "gray.png"))
  out_rgb, _ = reading.read_image(str(tmp_path / "out" / "rgb.png"))
  assert out_gray.shape == (5, 7, 1) and out_rgb.shape == (9, 4, 3)
  # The gray one is the decode at its own size (no bucket padding for a model without a
  # spatial multiple): exactly.
  inference, variables, _, _ = load_trained(c, workdir)
  x = gray[None, ..., None].astype(np.float32) / 255
  want = np.asarray(inference.predict(variables, jnp.asarray(x)))[0]
  np.testing.assert_array_equal(np.round(out_gray * 255), np.round(want * 255))


@pytest.mark.parametrize("overrides,match", [
    ({"model.name": "cnn", "model.kwargs": {"depth": 2}}, r"config\.model\.name='cnn'"),
    ({"model.kwargs": {"features": 4, "kernel_size": 4}}, "kernel_size"),
    ({"autoregressive.decode": "median"}, r"config\.autoregressive\.decode='median'"),
    ({"autoregressive.temperature": 0.0}, r"config\.autoregressive\.temperature"),
    ({"corruption": [{"name": "grayscale", "keep_channels": False}], "data.channels": 3},
     "shape"),
])
def test_bad_fields_fail_at_build(overrides, match):
  with pytest.raises(ValueError, match=match):
    tasks.build(ar_config(**overrides), local_device_count=1, process_count=1)
