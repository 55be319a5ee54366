"""Resuming after a config change that alters the optimizer state (runtime.resume): refused
before anything is touched, naming the field; or resumed keeping what still fits."""

import os

import jax
import numpy as np
import pytest

from restoration import tasks
from restoration.modes import train
from restoration.runtime import checkpoints
from restoration.runtime import trained_run
from restoration.runtime import resume
from tests.test_modes_train import train_events
from tests.tiny import tiny_config

ONE = jax.local_devices()[:1]
CLIP = {"optimizer.grad_clip_norm": 1.0}


def snapshot(workdir):
  """Every file of a workdir with its bytes (what 'nothing was touched' compares)."""
  out = {}
  for root, _, files in os.walk(workdir):
    for name in files:
      path = os.path.join(root, name)
      out[os.path.relpath(path, workdir)] = open(path, "rb").read()
  return out


def test_grad_clip_added_mid_run_is_refused_then_resumed_keeping_adam_moments(tmp_path):
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(tiny_config(total_steps=2), workdir, devices=ONE)
  before = snapshot(workdir)
  # What the divergence message advises: the refusal names the field and the ways forward.
  with pytest.raises(ValueError) as refused:
    train.train_and_evaluate(tiny_config(total_steps=3, **CLIP), workdir, devices=ONE)
  message = str(refused.value)
  assert "\n" not in message
  assert "config.optimizer.grad_clip_norm changed (0.0 -> 1.0)" in message
  assert "--config.resume_optimizer=reinit_changed" in message
  assert f"--config.init_from={workdir}" in message
  assert "--config.optimizer.grad_clip_norm=0.0 resumes exactly" in message
  assert "optimizer.learning_rate" not in message  # unchanged fields are not blamed
  assert snapshot(workdir) == before  # no broken/, nothing moved, config and log untouched

  # reinit_changed: step, params and Adam's moments from step 2; only the clip stage is new.
  changed = tiny_config(total_steps=3, resume_optimizer="reinit_changed", **CLIP)
  task = tasks.build(changed, local_device_count=1, process_count=1)
  ckpt = checkpoints.Checkpointer(workdir)
  state, _ = resume.restore(ckpt, task, changed, workdir)
  stored = ckpt.latest.restore(2, args=checkpoints.ocp.args.Composite(
      state=checkpoints.ocp.args.StandardRestore())).state
  ckpt.close()
  assert int(state.step) == 2
  assert jax.tree.structure(state) == jax.tree.structure(task.abstract_state())
  for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(stored["params"])):
    np.testing.assert_array_equal(a, b)
  adam = state.opt_state[1].inner_state[0]  # chain(clip, inject_hyperparams(adam))
  np.testing.assert_array_equal(
      adam.mu["conv0"]["kernel"], stored["opt_state"][0]["inner_state"][0]["mu"]["conv0"]["kernel"])
  assert int(adam.count) == 2 and int(state.opt_state[1].count) == 2

  final = train.train_and_evaluate(changed, workdir, devices=ONE)
  assert int(final.step) == 3
  assert [e["step"] for e in train_events(workdir)] == [1, 2, 3]
  assert not os.path.exists(os.path.join(workdir, "broken"))


def test_a_model_change_is_refused_in_every_mode():
  fresh = {"params": {"w": np.zeros(3, np.float32)}, "opt_state": ({"mu": np.ones(3)},)}
  stored = {"params": {"w": np.zeros(4, np.float32)}, "opt_state": [{"mu": np.ones(4)}]}
  with pytest.raises(ValueError, match=r"model arrays differ .*params/w.*init_from"):
    resume.graft(fresh, stored)


def test_graft_keeps_matching_stages_in_order_and_reinits_the_rest():
  w = np.arange(3, dtype=np.float32)
  stored = {"params": {"w": w + 1}, "opt_state": [{"mu": w + 10}, {"scale": np.float32(5)}]}
  fresh = {"params": {"w": w}, "opt_state": ({"count": np.int32(0)}, {"mu": w},
                                             {"scale": np.float32(1)})}
  out = resume.graft(fresh, stored)
  np.testing.assert_array_equal(out["params"]["w"], w + 1)
  assert int(out["opt_state"][0]["count"]) == 0  # new stage: fresh
  np.testing.assert_array_equal(out["opt_state"][1]["mu"], w + 10)
  assert float(out["opt_state"][2]["scale"]) == 5


def test_bad_resume_optimizer_value_fails_at_start(tmp_path):
  with pytest.raises(ValueError, match=r"config.resume_optimizer='keep'; allowed"):
    train.train_and_evaluate(tiny_config(resume_optimizer="keep"), str(tmp_path / "r"))


# An unreadable config.json -------------------------------------------------------------------

def test_unreadable_config_json_is_named_and_the_given_config_stands_in(tmp_path, caplog):
  workdir = str(tmp_path / "run")
  c = tiny_config()
  task = tasks.build(c, local_device_count=1, process_count=1)
  trained_run.export(workdir, c, task.inference_variables(jax.jit(task.init_state)()),
                     task.model_meta())
  path = os.path.join(workdir, "config.json")
  open(path, "w").close()  # truncated by a full disk
  with pytest.raises(ValueError, match=rf"{path} is not a readable JSON config .*pass --config"):
    trained_run.load_run(workdir)
  run = trained_run.load_run(workdir, config=c)  # eval / restore with --config
  assert run.step == 0 and run.config is c
  assert f"{path} is not a readable JSON config" in caplog.text


def test_resume_with_an_unreadable_config_json_uses_the_given_config(tmp_path, caplog):
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(tiny_config(total_steps=2), workdir, devices=ONE)
  path = os.path.join(workdir, "config.json")
  with open(path, "w") as f:
    f.write('{"model": ')
  state = train.train_and_evaluate(tiny_config(total_steps=3), workdir, devices=ONE)
  assert int(state.step) == 3
  assert f"{path} is unreadable" in caplog.text
  assert open(os.path.join(workdir, "config.step2.json")).read() == '{"model": '  # kept
  assert '"total_steps": 3' in open(path).read()
