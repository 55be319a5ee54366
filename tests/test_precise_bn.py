"""restoration.runtime.precise_bn: BN statistics re-estimated from the training stream, alone
and as the training loop's last step (config.precise_bn_batches)."""

import json
import os
import shutil

import jax
import numpy as np
import pytest

from restoration import data
from restoration import tasks
from restoration.modes import train
from restoration.runtime import parallel
from restoration.runtime import precise_bn
from restoration.tasks import restorer
from tests.tiny import load_trained
from tests.tiny import tiny_config

_DNCNN = {"model.name": "dncnn", "batch_size": 8,
          "model.kwargs": {"depth": 3, "features": 8, "bn_momentum": 0.1}}


def _config(**overrides):
  # A 3-layer DnCNN (conv0, conv1 + bn1, conv2) on 16 px gray crops of the builtin photos.
  return tiny_config(**{**_DNCNN, **overrides})


def _stream(config, devices):
  """The run's training stream as the loop's iterator yields it: (device batch, state)."""
  stream = data.make_train_data(config, local_device_count=len(devices))
  return stream, ((parallel.to_devices(b, devices), None) for b in stream)


def _recalibrate(config, variables, n, devices):
  task = tasks.build(config, local_device_count=len(devices), process_count=1)
  stream, batches = _stream(config, devices)
  with stream:
    return precise_bn.recalibrate(task, variables, batches, None, first_step=0,
                                  num_batches=n, devices=devices)


# The inpainting form (task 'inpaint', hole mask found in the input: configs/cifar_study.py
# beat=...,mask ends with PreciseBN): the model input carries the mask channel.
_INPAINT = {"task": "inpaint", "inpaint.mask": "zeros", "loss": {"mse": 1.0},
            "corruption": [{"name": "random_blocks", "num_blocks": 3, "block_size": 3,
                            "fill": 0.0}],
            "model.kwargs": {"depth": 3, "features": 8, "bn_momentum": 0.1,
                             "residual": False, "out_channels": 1}}


@pytest.mark.parametrize("overrides", [{}, _INPAINT], ids=["supervised", "inpaint"])
def test_statistics_are_the_average_of_the_batches_own_statistics(overrides):
  """Independent computation: the pre-BN activations (conv1's output, captured with flax
  intermediates on the same model inputs) give per-batch mean and biased variance per
  channel; their averages over the batches are the re-estimated statistics. Params and the
  rest of the variables are untouched, and 2 devices give what 1 device gives."""
  config = _config(**overrides)
  devices = jax.local_devices()[:1]
  task = tasks.build(config, local_device_count=1, process_count=1)
  state = task.init_state()
  garbage = jax.tree.map(lambda x: np.full_like(np.asarray(x), 3.0), state.batch_stats)
  variables = {"params": state.params, "batch_stats": garbage}
  out = _recalibrate(config, variables, 3, devices)
  assert out["params"] is variables["params"]

  inputs = parallel.parallelize(lambda b, s: task.training_input(b, None, s)[0],
                                devices=devices)
  model = task.model.clone(bn_axis_name=None)
  means, variances = [], []
  stream, batches = _stream(config, devices)
  with stream:
    for i in range(3):
      x = inputs(next(batches)[0], np.full((1,), i, np.int32))[0]
      _, inter = model.apply(variables, x, train=False, capture_intermediates=True,
                             mutable=["intermediates"])
      act = np.asarray(inter["intermediates"]["conv1"]["__call__"][0], np.float64)
      means.append(act.mean(axis=(0, 1, 2)))
      variances.append(act.var(axis=(0, 1, 2)))
  got = out["batch_stats"]["bn1"]
  np.testing.assert_allclose(got["mean"], np.mean(means, axis=0), rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(got["var"], np.mean(variances, axis=0), rtol=1e-4, atol=1e-6)

  two = _recalibrate(config, variables, 3, jax.local_devices()[:2])
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
               two["batch_stats"], out["batch_stats"])


def test_recalibrated_statistics_make_eval_mode_match_train_mode():
  """With garbage running statistics, eval mode is far from train mode on training crops;
  after re-estimation over 8 batches eval mode reproduces train mode (up to batch-to-batch
  sampling of the statistics)."""
  config = _config()
  task = tasks.build(config, local_device_count=1, process_count=1)
  state = task.init_state()
  garbage = jax.tree.map(lambda x: np.full_like(np.asarray(x), 3.0), state.batch_stats)
  variables = {"params": state.params, "batch_stats": garbage}
  stats = _recalibrate(config, variables, 8, jax.local_devices()[:1])["batch_stats"]
  with data.make_train_data(config, local_device_count=1) as stream:
    clean = np.asarray(next(stream))[0].astype(np.float32) / 255.0
  noisy = np.clip(clean + 0.1 * np.random.default_rng(0).normal(size=clean.shape), 0, 1)
  model = task.model.clone(bn_axis_name=None)  # outside pmap: no device axis to sync over
  train_out, _ = restorer.apply_train(model, state.params, garbage, noisy, jax.random.key(0))

  def eval_error(batch_stats):
    out = model.apply({"params": state.params, "batch_stats": batch_stats}, noisy, train=False)
    return float(np.sqrt(np.mean((np.asarray(out) - np.asarray(train_out)) ** 2)))

  spread = float(np.std(np.asarray(train_out)))
  scaled = jax.tree.map(lambda x: 1.3 * x, stats)
  assert eval_error(garbage) > 0.5 * spread
  assert eval_error(stats) < 0.15 * spread
  assert eval_error(scaled) > 0.15 * spread  # the bound tells good statistics from near ones


def test_loop_reestimates_only_the_final_inference_variables(tmp_path):
  """precise_bn_batches=3: the last step's saved inference variables (and its eval) carry
  re-estimated statistics; the training state is the one a run without it reaches, and
  raising total_steps later resumes exactly like a straight run without it."""
  devices = jax.local_devices()[:1]
  with_bn, plain = str(tmp_path / "precise"), str(tmp_path / "plain")
  state = train.train_and_evaluate(_config(precise_bn_batches=3), with_bn, devices=devices)
  reference = train.train_and_evaluate(_config(), plain, devices=devices)
  jax.tree.map(np.testing.assert_array_equal, state, reference)

  _, final, step, _ = load_trained(_config(), with_bn, step=4)
  _, final_plain, _, _ = load_trained(_config(), plain, step=4)
  assert step == 4
  jax.tree.map(np.testing.assert_array_equal, final["params"], final_plain["params"])
  jax.tree.map(np.testing.assert_array_equal, final_plain["batch_stats"],
               jax.device_get(reference.batch_stats))
  moved = [not np.allclose(a, b) for a, b in zip(jax.tree.leaves(final["batch_stats"]),
                                                  jax.tree.leaves(final_plain["batch_stats"]))]
  assert all(moved)
  # The step-2 checkpoint (not the last step) keeps the running statistics.
  _, mid, _, _ = load_trained(_config(), with_bn, step=2)
  _, mid_plain, _, _ = load_trained(_config(), plain, step=2)
  jax.tree.map(np.testing.assert_array_equal, mid, mid_plain)

  longer = train.train_and_evaluate(_config(precise_bn_batches=3, total_steps=6), with_bn,
                                    devices=devices)
  straight = train.train_and_evaluate(_config(total_steps=6), str(tmp_path / "straight"),
                                      devices=devices)
  jax.tree.map(np.testing.assert_array_equal, longer, straight)


@pytest.mark.parametrize("overrides, message", [
    ({"precise_bn_batches": -1}, "config.precise_bn_batches must be an integer >= 0"),
    ({"precise_bn_batches": True}, "config.precise_bn_batches must be an integer >= 0"),
    ({"precise_bn_batches": 4, "model.name": "cnn", "model.kwargs": {"depth": 2}},
     "model 'cnn' as configured has no BatchNorm"),
    ({"precise_bn_batches": 4, "model.name": "unet",
      "model.kwargs": {"depth": 1, "features": 4}}, "model 'unet' as configured has no"),
])
def test_bad_settings_are_refused_at_construction(overrides, message):
  with pytest.raises(ValueError, match=message):
    tasks.build(_config(**overrides), local_device_count=1, process_count=1)


def test_unet_with_batch_norm_is_supported():
  config = _config(precise_bn_batches=2, **{
      "model.name": "unet", "model.kwargs": {"depth": 1, "features": 4, "batch_norm": True}})
  assert tasks.build(config, local_device_count=1, process_count=1).precise_bn_batches == 2


def test_tasks_without_it_are_refused():
  config = _config(precise_bn_batches=2, task="adversarial")
  with pytest.raises(ValueError, match="task 'adversarial' does not re-estimate"):
    tasks.build(config, local_device_count=1, process_count=1)


def test_final_eval_redone_after_a_kill_scores_the_saved_variables(tmp_path):
  """A run killed during its final eval (simulated: that eval's event and best/ removed) redoes
  the eval on rerun with the final checkpoint's re-estimated variables, which best/ then holds,
  not the training state's running statistics."""
  workdir = str(tmp_path / "run")
  devices = jax.local_devices()[:1]
  train.train_and_evaluate(_config(precise_bn_batches=3), workdir, devices=devices)
  _, final, _, _ = load_trained(_config(), workdir, step=4)
  metrics = os.path.join(workdir, "metrics.jsonl")
  with open(metrics) as f:
    lines = [l for l in f if not ('"eval"' in l and json.loads(l)["step"] == 4)]
  with open(metrics, "w") as f:
    f.writelines(lines)
  shutil.rmtree(os.path.join(workdir, "best"))

  train.train_and_evaluate(_config(precise_bn_batches=3), workdir, devices=devices)
  _, best, step, which = load_trained(_config(), workdir)
  assert (step, which) == (4, "best")
  jax.tree.map(np.testing.assert_array_equal, best, final)
