"""One process of the 2-process tests (tests/test_multiprocess.py); not collected by pytest.

Usage: python tests/multiprocess_worker.py CONFIG_JSON WORKDIR OUT_NPZ [STEP_DELAY_S]
with JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID set. With STEP_DELAY_S each
train step also sleeps that long and prints `step` on stdout, so a test can signal the process
mid-run while the stop agreement still has steps to land on.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags  # noqa: E402

flags.FLAGS.mark_as_parsed()

import jax  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402

from restoration.runtime import host_memory  # noqa: E402
from restoration.runtime import parallel  # noqa: E402
from restoration.modes import train  # noqa: E402


def slowed(delay: float):
  """`parallel.parallelize` whose train step sleeps `delay` s and reports each call."""
  parallelize = parallel.parallelize

  def wrap(step_fn, **kw):
    p_step = parallelize(step_fn, **kw)
    if getattr(step_fn, "__name__", "") != "train_step":  # the evaluator's steps
      return p_step

    def step(*args):
      time.sleep(delay)
      out = p_step(*args)
      print("step", flush=True)
      return out
    return step
  return wrap


def main(config_json: str, workdir: str, out: str, delay: str = "0") -> None:
  host_memory.configure()  # as launch.py does
  parallel.maybe_initialize_distributed()
  assert jax.process_count() == 2, jax.process_count()
  if float(delay) > 0:
    parallel.parallelize = slowed(float(delay))
  config = ml_collections.ConfigDict(json.loads(config_json))
  state = train.train_and_evaluate(config, workdir)
  if jax.process_index() == 0:
    leaves = jax.tree.leaves(state.params)
    np.savez(out, *[np.asarray(x) for x in leaves])


if __name__ == "__main__":
  main(*sys.argv[1:5])
