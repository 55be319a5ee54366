"""Test-wide setup.

Two simulated CPU devices let the multi-device tests run in the same process (pmap over
`jax.local_devices()[:n]`); single-device code paths simply use the first device. This must
happen before JAX initialises its backends, hence at conftest import time.
"""
import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import flags  # noqa: E402

# grain worker processes read absl flags; unparsed flags raise UnparsedFlagAccessError.
flags.FLAGS.mark_as_parsed()
