"""Test-wide setup.

Two simulated CPU devices let the multi-device tests run in the same process (pmap over
`jax.local_devices()[:n]`); single-device code paths simply use the first device. This must
happen before JAX initialises its backends, hence at conftest import time.

Compiled executables are released after every test module. Each XLA:CPU executable keeps
memory mappings of its own, and JAX caches every executable for the life of the process: the
full suite (855 tests, one process) reached Linux's vm.max_map_count (65,530 mappings) and
XLA's next compile segfaulted (CI exit 139, session 9: the core held 65,384 mappings). With
the caches cleared per module the process stays near 1,200 mappings (WORKSPACE, "Test suite:
memory mappings").
"""
import gc
import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax  # noqa: E402
import pytest  # noqa: E402
from absl import flags  # noqa: E402

# grain worker processes read absl flags; unparsed flags raise UnparsedFlagAccessError.
flags.FLAGS.mark_as_parsed()


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_executables():
  yield
  jax.clear_caches()
  gc.collect()
