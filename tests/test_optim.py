"""Optimizer and schedule construction from config.optimizer."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import default
from restoration import optim


def config(**optimizer):
  c = default.get_config()
  c.total_steps = 100
  c.log_every_steps = 5
  for k, v in optimizer.items():
    c.optimizer[k] = v
  return c


@pytest.mark.parametrize("schedule", ["constant", "cosine", "step", "plateau"])
def test_warmup_applies_to_every_schedule(schedule):
  sched = optim.make_schedule(config(schedule=schedule, warmup_steps=10, learning_rate=1.0))
  np.testing.assert_allclose([float(sched(0)), float(sched(5)), float(sched(10))],
                             [0.0, 0.5, 1.0], atol=1e-6)


def test_step_schedule_decays_at_fractions_of_total_steps():
  sched = optim.make_schedule(config(schedule="step", learning_rate=1.0,
                                     decay_steps=(0.5, 0.75), decay_factor=0.1))
  np.testing.assert_allclose([float(sched(49)), float(sched(50)), float(sched(80))],
                             [1.0, 0.1, 0.01], rtol=1e-6)


def test_plateau_patience_counts_log_windows_not_steps():
  c = config(schedule="plateau", plateau_patience=2, decay_factor=0.5, learning_rate=1.0)
  tx, sched = optim.make_optimizer(c)
  params = {"w": jnp.ones(3)}
  state = tx.init(params)
  scales = []
  for step in range(40):
    _, state = tx.update({"w": jnp.ones(3)}, state, params, value=jnp.float32(1.0))
    scales.append(float(optim.learning_rate(sched, state, state, jnp.int32(step))))
  # Constant loss, windows of 5 steps: the first window sets the best, the lr halves when
  # 2 more windows bring no improvement (update 15), then every 2 windows. Counted in steps
  # (the bug this guards against) it would decay from the 3rd update on.
  assert scales[:14] == [1.0] * 14, scales
  assert scales[14:24] == [0.5] * 10 and scales[24] == 0.25, scales


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_logged_learning_rate_is_the_schedule_of_the_update(name):
  c = config(name=name, schedule="cosine", warmup_steps=4, learning_rate=0.5)
  tx, sched = optim.make_optimizer(c)
  params = {"w": jnp.ones(3)}
  state = tx.init(params)
  for step in range(8):
    _, new = tx.update({"w": jnp.ones(3)}, state, params, value=jnp.float32(1.0))
    got = float(optim.learning_rate(sched, state, new, jnp.int32(step)))
    assert got == pytest.approx(float(sched(step)), rel=1e-6, abs=1e-9), step
    state = new


@pytest.mark.parametrize("field,value", [
    ("name", "lbfgs"), ("schedule", "linear"), ("learning_rate", 0.0), ("decay_factor", 0.0),
    ("end_factor", 2.0), ("plateau_patience", 0), ("grad_clip_norm", -1.0),
    ("warmup_steps", 100)])
def test_bad_fields_are_named(field, value):
  with pytest.raises(ValueError, match=f"config.optimizer.{field}"):
    optim.make_optimizer(config(**{field: value}))


def test_clipping_bounds_the_update():
  tx, _ = optim.make_optimizer(config(name="sgd", momentum=0.0, grad_clip_norm=1.0,
                                      learning_rate=1.0))
  params = {"w": jnp.zeros(4)}
  updates, _ = tx.update({"w": jnp.full(4, 10.0)}, tx.init(params), params, value=0.0)
  assert float(optax.global_norm(updates)) == pytest.approx(1.0, rel=1e-5)
