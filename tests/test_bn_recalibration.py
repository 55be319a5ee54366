"""benchmarks/bn_recalibration.py: BN statistics re-estimated from the training stream."""

import jax
import numpy as np
from absl import flags

from benchmarks import bn_recalibration
from restoration import data
from restoration import tasks
from restoration.tasks import restorer
from tests.tiny import tiny_config


def _config():
  # A 3-layer DnCNN with BatchNorm on 16 px gray crops of the builtin photos.
  return tiny_config(**{"model.name": "dncnn", "batch_size": 8,
                        "model.kwargs": {"depth": 3, "features": 8, "bn_momentum": 0.1}})


def test_recalibrated_statistics_are_the_activations_statistics():
  """With garbage running statistics, eval mode is far from train mode on training crops;
  after recalibration over 8 batches, eval mode reproduces train mode (the statistics are the
  activations' own, up to batch-to-batch sampling), and only batch_stats changed."""
  flags.FLAGS.mark_as_parsed()
  config = _config()
  task = tasks.build(config, local_device_count=1, process_count=1)
  state = task.init_state()
  garbage = jax.tree.map(lambda x: np.full_like(np.asarray(x), 3.0), state.batch_stats)
  variables = {"params": state.params, "batch_stats": garbage}
  stats = bn_recalibration.batch_statistics(config, variables, 8, seed=5)
  assert jax.tree.structure(stats) == jax.tree.structure(garbage)
  with data.make_train_data(config, local_device_count=1) as stream:
    clean = np.asarray(next(stream))[0].astype(np.float32) / 255.0
  noisy = np.clip(clean + 0.1 * np.random.default_rng(0).normal(size=clean.shape), 0, 1)
  model = task.model.clone(bn_axis_name=None)  # outside pmap: no device axis to sync over
  train_out, _ = restorer.apply_train(model, state.params, garbage, noisy,
                                      jax.random.key(0))

  def eval_error(batch_stats):
    out = model.apply({"params": state.params, "batch_stats": batch_stats}, noisy,
                           train=False)
    return float(np.sqrt(np.mean((np.asarray(out) - np.asarray(train_out)) ** 2)))

  spread = float(np.std(np.asarray(train_out)))
  assert eval_error(garbage) > 0.5 * spread
  assert eval_error(stats) < 0.1 * spread
