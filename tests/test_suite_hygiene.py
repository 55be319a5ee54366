"""What conftest's per-module cleanup relies on: clearing JAX's caches gives back the memory
mappings of compiled executables (without it the one-process suite ran out of them)."""

import gc
import sys

import jax
import jax.numpy as jnp
import pytest
from jax import lax


def _mappings() -> int:
  with open("/proc/self/maps") as f:
    return sum(1 for _ in f)


def _loss(w, x):
  y = lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
  return jnp.mean(jnp.tanh(y) ** 2)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_clearing_the_caches_releases_compiled_executables_mappings():
  step = jax.jit(jax.grad(_loss))
  w = jnp.ones((3, 3, 3, 8))

  def compile_batches(sizes):
    for n in sizes:  # one executable per batch size
      step(w, jnp.ones((n, 16, 16, 3))).block_until_ready()

  compile_batches([64])  # first compile: the runtime's one-off mappings (threads, pools)
  jax.clear_caches()
  gc.collect()
  before = _mappings()
  compile_batches(range(1, 11))
  grown = _mappings()
  jax.clear_caches()
  gc.collect()
  after = _mappings()
  assert grown - before >= 10, (before, grown)  # at least one mapping per executable (~10 seen)
  assert after - before <= 0.1 * (grown - before), (before, grown, after)  # 0 seen
