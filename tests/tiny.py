"""The tiny, CPU-sized training config the trainer/eval/restore tests start from."""

from typing import Any

import ml_collections

from configs import default


def tiny_config(**overrides: Any) -> ml_collections.ConfigDict:
  """A 2-layer, 8-channel CNN denoising 16 px gray crops; `overrides` use dotted keys."""
  c = default.get_config()
  c.model.name = "cnn"
  c.model.kwargs = {"depth": 2, "features": 8}
  c.patch_size = 16
  c.batch_size = 4
  c.total_steps = 4
  c.log_every_steps = 1
  c.eval_every_steps = 2
  c.checkpoint_every_steps = 2
  c.data.channels = 1
  c.data.eval_crop = 16
  c.data.eval_max_images = 2
  c.data.eval_batch_size = 2
  c.eval.num_grid_images = 2
  c.corruption = [{"name": "gaussian_noise", "sigma": 25.0}]
  c.optimizer.learning_rate = 3e-3
  return override(c, **overrides)


def override(c: ml_collections.ConfigDict, **dotted: Any) -> ml_collections.ConfigDict:
  """A copy of `c` with fields set by dotted name ('data.eval_crop' or, as a keyword,
  'data__eval_crop'), bypassing ConfigDict's type checks so tests can set bad values."""
  d = c.to_dict()
  for key, value in dotted.items():
    *parents, leaf = key.replace("__", ".").split(".")
    target = d
    for p in parents:
      target = target[p]
    target[leaf] = value
  return ml_collections.ConfigDict(d)


def straight_and_resumed(make_config, tmp_path, *, total: int, stop: int, **cfg: Any):
  """Trains `make_config(total_steps=total, **cfg)` straight in tmp_path/straight, and in
  tmp_path/resumed first to `stop`, then (a new call, as after a kill) on to `total`, on one
  device. Returns (straight state, resumed state, straight workdir, resumed workdir)."""
  import jax  # pylint: disable=g-import-not-at-top
  from restoration.modes import train  # pylint: disable=g-import-not-at-top
  devices = jax.local_devices()[:1]
  one, two = str(tmp_path / "straight"), str(tmp_path / "resumed")
  straight = train.train_and_evaluate(make_config(total_steps=total, **cfg), one,
                                      devices=devices)
  train.train_and_evaluate(make_config(total_steps=stop, **cfg), two, devices=devices)
  resumed = train.train_and_evaluate(make_config(total_steps=total, **cfg), two,
                                     devices=devices)
  return straight, resumed, one, two


def load_trained(config: ml_collections.ConfigDict, workdir: str, *, step: int | None = None,
                 num_devices: int | None = None):
  """(inference, variables, step, which) of a workdir, as eval mode loads them."""
  from restoration import tasks  # pylint: disable=g-import-not-at-top
  from restoration.runtime import trained_run
  trained = trained_run.load_run(workdir, step=step)
  config = trained_run.with_trained_model(config, trained.meta, workdir)
  inference = tasks.inference_for(trained.meta, config, num_devices=num_devices)
  return inference, trained.variables, trained.step, trained.which
