"""End-to-end trainer tests on tiny models (CPU, 2 simulated devices from conftest)."""

import json
import os
import struct

import jax
import numpy as np
import pytest

from restoration.runtime import checkpoints
from restoration.runtime import run_log
from restoration.modes import train
from restoration.eval import visualize
from restoration import tasks
from tests.tiny import load_trained, straight_and_resumed, tiny_config


def build(c):
  return tasks.build(c, local_device_count=1, process_count=1)


def train_events(workdir, kind="train"):
  events = [e for e in visualize.read_metrics(os.path.join(workdir, "metrics.jsonl"))
            if e["kind"] == kind]
  for e in events:
    e.pop("steps_per_sec", None)
  return events


def read_tensorboard_scalars(logdir):
  """{tag: [(step, value)]} from TensorBoard event files, parsed without TensorFlow."""
  from tensorboardX.proto import event_pb2  # pylint: disable=g-import-not-at-top
  out = {}
  for name in sorted(os.listdir(logdir)):
    with open(os.path.join(logdir, name), "rb") as f:
      data = f.read()
    pos = 0
    while pos < len(data):  # TFRecord: u64 length, u32 crc, payload, u32 crc
      (length,) = struct.unpack("<Q", data[pos:pos + 8])
      event = event_pb2.Event.FromString(data[pos + 12:pos + 12 + length])
      pos += 16 + length
      for v in event.summary.value:
        out.setdefault(v.tag, []).append((event.step, v.simple_value))
  return out


def read_tensorboard_images(logdir):
  """{tag: [(step, (height, width))]} of the image summaries in TensorBoard event files."""
  import io  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from tensorboardX.proto import event_pb2  # pylint: disable=g-import-not-at-top
  out = {}
  for name in sorted(os.listdir(logdir)):
    with open(os.path.join(logdir, name), "rb") as f:
      data = f.read()
    pos = 0
    while pos < len(data):
      (length,) = struct.unpack("<Q", data[pos:pos + 8])
      event = event_pb2.Event.FromString(data[pos + 12:pos + 12 + length])
      pos += 16 + length
      for v in event.summary.value:
        if v.HasField("image"):
          size = Image.open(io.BytesIO(v.image.encoded_image_string)).size
          out.setdefault(v.tag, []).append((event.step, (size[1], size[0])))
  return out


def assert_trees_equal(a, b, **tol):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    if tol:
      np.testing.assert_allclose(np.asarray(x), np.asarray(y), **tol)
    else:
      np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_end_to_end_writes_everything(tmp_path):
  workdir = str(tmp_path / "run")
  state = train.train_and_evaluate(tiny_config(), workdir, devices=jax.local_devices()[:1])
  assert int(state.step) == 4
  for name in ("config.json", "metrics.jsonl"):
    assert os.path.exists(os.path.join(workdir, name)), name
  config = json.load(open(os.path.join(workdir, "config.json")))
  assert config["model"]["name"] == "cnn"
  events = train_events(workdir)
  assert [e["step"] for e in events] == [1, 2, 3, 4]
  for e in events:
    for k in ("loss", "learning_rate", "grad_norm"):
      assert np.isfinite(e[k]), e
  evals = train_events(workdir, "eval")
  assert [e["step"] for e in evals] == [2, 4]
  for e in evals:
    for k in ("psnr", "ssim", "input_psnr", "input_ssim"):
      assert np.isfinite(e[k]), e
  assert read_tensorboard_scalars(os.path.join(workdir, "tensorboard"))["train/loss"] == [
      (e["step"], pytest.approx(e["loss"])) for e in events]
  assert sorted(os.listdir(os.path.join(workdir, "images"))) == ["step_0000002.png", "step_0000004.png"]
  width, height = visualize.grid_size(2, 16, 16)  # eval.num_grid_images=2 of 16 px crops
  assert read_tensorboard_images(os.path.join(workdir, "tensorboard")) == {
      "eval/grid": [(2, (height, width)), (4, (height, width))]}
  assert "loss.png" in os.listdir(os.path.join(workdir, "plots"))
  ckpt = checkpoints.Checkpointer(workdir, read_only=True)
  assert ckpt.latest_step() == 4
  ckpt.close()


def test_resume_is_exact(tmp_path):
  """6 steps straight == 3 steps, stop, rerun with total_steps=6 (same batches, corruption)."""
  cfg = dict(checkpoint_every_steps=3, eval_every_steps=100)
  straight, resumed, one, two = straight_and_resumed(tiny_config, tmp_path, total=6, stop=3,
                                                     **cfg)
  assert int(resumed.step) == 6
  assert_trees_equal(straight.params, resumed.params)
  assert_trees_equal(straight.opt_state, resumed.opt_state)
  assert train_events(one) == train_events(two)
  # The config of the first leg is kept beside the new one, not overwritten.
  assert json.load(open(os.path.join(two, "config.step3.json")))["total_steps"] == 3
  assert json.load(open(os.path.join(two, "config.json")))["total_steps"] == 6


def test_resume_refuses_a_different_model_and_accepts_harmless_changes(tmp_path):
  workdir = str(tmp_path / "run")
  devices = jax.local_devices()[:1]
  train.train_and_evaluate(tiny_config(total_steps=2), workdir, devices=devices)
  stored = open(os.path.join(workdir, "config.json")).read()
  for field, value, match in [
      ("model.kwargs", {"depth": 2, "features": 16}, r"model\.kwargs\.features: 8 -> 16"),
      ("data.channels", 3, r"data\.channels: 1 -> 3.*--config\.data\.channels=1"),
      ("optimizer.name", "sgd", r"optimizer\.name: \"adam\" -> \"sgd\""),
      ("task", "gan", r"task: \"supervised\" -> \"gan\""),
  ]:
    with pytest.raises(ValueError, match=match):
      run_log.check_resumable(workdir, tiny_config(**{field: value}), 2)
  with pytest.raises(ValueError, match="cannot resume: model.kwargs.features"):
    train.train_and_evaluate(tiny_config(total_steps=4, **{"model.kwargs.features": 16}),
                             workdir, devices=devices)
  assert open(os.path.join(workdir, "config.json")).read() == stored  # untouched
  # More steps and another eval cadence still resume.
  state = train.train_and_evaluate(tiny_config(total_steps=3, eval_every_steps=3), workdir,
                                   devices=devices)
  assert int(state.step) == 3


def test_resume_after_crash_drops_stale_log_lines(tmp_path):
  """A crash after logging past the last checkpoint: rerunning logs each step exactly once."""
  workdir = str(tmp_path / "run")
  c = tiny_config(total_steps=4, checkpoint_every_steps=2, eval_every_steps=100)
  train.train_and_evaluate(c, workdir, devices=jax.local_devices()[:1])
  ckpt = checkpoints.Checkpointer(workdir)
  ckpt.latest.delete(4)  # as if the process died after logging step 4 but before saving it
  ckpt.close()
  with open(os.path.join(workdir, "metrics.jsonl"), "a") as f:
    f.write('{"step": 5, "kind": "tr')  # and left a partial line
  train.train_and_evaluate(c, workdir, devices=jax.local_devices()[:1])
  assert [e["step"] for e in train_events(workdir)] == [1, 2, 3, 4]


@pytest.mark.parametrize("model,kwargs", [
    ("cnn", {"depth": 2, "features": 8}),
    ("dncnn", {"depth": 3, "features": 8}),  # batch norm: statistics synced over devices
])
def test_two_devices_match_one_device(tmp_path, model, kwargs):
  """Same global batch over 2 devices gives the same update as on 1."""
  devices = jax.local_devices()
  assert len(devices) >= 2, "conftest sets 2 simulated CPU devices"
  c = tiny_config(total_steps=3, eval_every_steps=100, checkpoint_every_steps=100,
                  **{"model.name": model, "model.kwargs": kwargs})
  a = train.train_and_evaluate(c, str(tmp_path / "one"), devices=devices[:1])
  b = train.train_and_evaluate(c, str(tmp_path / "two"), devices=devices[:2])
  assert_trees_equal(a.params, b.params, rtol=1e-5, atol=1e-6)
  assert_trees_equal(a.batch_stats, b.batch_stats, rtol=1e-5, atol=1e-6)
  la = [e["loss"] for e in train_events(str(tmp_path / "one"))]
  lb = [e["loss"] for e in train_events(str(tmp_path / "two"))]
  np.testing.assert_allclose(la, lb, rtol=1e-5)


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
  workdir = str(tmp_path / "run")
  c = tiny_config(total_steps=20, checkpoint_every_steps=1, eval_every_steps=100)
  c.optimizer.learning_rate = 1e30  # diverges within a couple of steps
  with pytest.raises(train.NonFiniteLossError, match=r"at step (\d+)") as err:
    train.train_and_evaluate(c, workdir, devices=jax.local_devices()[:1])
  bad_step = int(err.value.args[0].split("at step ")[1].split(":")[0])
  ckpt = checkpoints.Checkpointer(workdir, read_only=True)
  assert ckpt.latest_step() == bad_step - 1
  ckpt.close()


def test_best_checkpoint_has_highest_eval_psnr(tmp_path):
  workdir = str(tmp_path / "run")
  c = tiny_config(total_steps=6, eval_every_steps=1, checkpoint_every_steps=6)
  c.optimizer.learning_rate = 2e-2  # noisy enough that PSNR is not monotone in step
  train.train_and_evaluate(c, workdir, devices=jax.local_devices()[:1])
  evals = train_events(workdir, "eval")
  assert len(evals) == 6
  best = max(evals, key=lambda e: e["psnr"])["step"]
  ckpt = checkpoints.Checkpointer(workdir, read_only=True)
  assert ckpt.best.best_step() == best
  assert ckpt.best.all_steps() == [best]
  assert ckpt.best_psnr() == pytest.approx(max(e["psnr"] for e in evals))
  ckpt.close()


@pytest.mark.parametrize("field,value,match", [
    ("batch_size", 3, "batch_size"),
    ("total_steps", 0, "total_steps"),
    ("model.name", "nope", "model"),
    ("optimizer.name", "lbfgs", "optimizer.name"),
    ("optimizer.schedule", "linear", "optimizer.schedule"),
    ("ema_decay", 1.5, "ema_decay"),
])
def test_bad_config_fails_before_compiling(tmp_path, field, value, match):
  with pytest.raises(ValueError, match=match):
    train.train_and_evaluate(tiny_config(**{field: value}), str(tmp_path / "run"),
                             devices=jax.local_devices()[:2])
  assert not os.path.exists(tmp_path / "run" / "checkpoints")


def test_bad_loss_and_corruption_fail_fast(tmp_path):
  c = tiny_config()
  c.loss = {"vgg": 1.0}
  with pytest.raises(ValueError, match="unknown loss 'vgg'"):
    build(c)
  c.loss = {"perceptual": 1.0}   # a valid term, but config.perceptual has no weights file
  with pytest.raises(ValueError, match=r"config\.perceptual\.weights_path is not set"):
    build(c)
  c = tiny_config()
  c.corruption = [{"name": "gaussian_noise", "sigma": -1.0}]
  with pytest.raises(ValueError, match="sigma"):
    build(c)
  with pytest.raises(ValueError, match=r"config\.task='gan'; allowed: \[.*'supervised'.*\]"):
    build(tiny_config(task="gan"))


def test_ema_follows_the_update_formula_and_is_what_eval_uses(tmp_path):
  """ema_k = decay * ema_{k-1} + (1 - decay) * params_k, from ema_0 = initial params."""
  decay = 0.5
  c = tiny_config(total_steps=3, ema_decay=decay, eval_every_steps=100,
                  checkpoint_every_steps=1, keep_checkpoints=3)
  workdir = str(tmp_path / "run")
  final = train.train_and_evaluate(c, workdir, devices=jax.local_devices()[:1])
  task = build(c)
  ckpt = checkpoints.Checkpointer(workdir, read_only=True)
  params = [jax.jit(task.init_state)().params]
  params += [ckpt.restore_latest(task.abstract_state(), k)[0].params for k in (1, 2, 3)]
  ckpt.close()
  ema = params[0]
  for p in params[1:]:
    ema = jax.tree.map(lambda e, q: decay * np.asarray(e) + (1 - decay) * np.asarray(q), ema, p)
  assert_trees_equal(final.ema_params, ema, rtol=1e-6, atol=1e-7)
  assert max(np.abs(np.asarray(a) - np.asarray(b)).max() for a, b in
             zip(jax.tree.leaves(final.params), jax.tree.leaves(final.ema_params))) > 1e-4
  _, variables, _, _ = load_trained(c, workdir, step=3)
  assert_trees_equal(variables["params"], final.ema_params)


def test_device_resident_data_trains_and_resumes_exactly(tmp_path):
  """data.on_device: crops drawn inside the step from the step's RNG; resume stays exact."""
  cfg = dict(checkpoint_every_steps=2, eval_every_steps=100)
  c4 = tiny_config(total_steps=4, **cfg)
  c4.data.on_device = True
  straight = train.train_and_evaluate(c4, str(tmp_path / "a"), devices=jax.local_devices()[:2])
  c2 = tiny_config(total_steps=2, **cfg)
  c2.data.on_device = True
  train.train_and_evaluate(c2, str(tmp_path / "b"), devices=jax.local_devices()[:2])
  resumed = train.train_and_evaluate(c4, str(tmp_path / "b"), devices=jax.local_devices()[:2])
  assert_trees_equal(straight.params, resumed.params)
  losses = [e["loss"] for e in train_events(str(tmp_path / "a"))]
  assert len(losses) == 4 and all(np.isfinite(losses))


@pytest.mark.parametrize("overrides,match", [
    ({"model.kwargs": {"depth": 2, "features": 8, "out_channels": 3}}, "out_channels"),
    ({"corruption": [{"name": "grayscale", "keep_channels": False}], "data.channels": 3},
     "shape"),
])
def test_channel_mismatch_fails_at_start(tmp_path, overrides, match):
  with pytest.raises(ValueError, match=match):
    build(tiny_config(**overrides))


def test_plateau_schedule_no_grids_and_shallow_prefetch_run(tmp_path):
  c = tiny_config(total_steps=3, **{"eval.num_grid_images": 0, "data.prefetch": 1,
                                    "optimizer.schedule": "plateau"})
  state = train.train_and_evaluate(c, str(tmp_path / "run"), devices=jax.local_devices()[:1])
  assert int(state.step) == 3
  assert not os.path.exists(tmp_path / "run" / "images")
