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
  for key, value in overrides.items():
    *parents, leaf = key.split(".")
    target = c
    for p in parents:
      target = target[p]
    target[leaf] = value
  return c
