"""One 64->64 3x3 convolution at 128x40x40 on XLA:CPU under the XLA_FLAGS in the environment:
forward, input gradient, weight gradient (XLA's own, not the im2col path) and a GEMM of the
weight gradient's size; ms, median of 5.

  for f in "" --xla_cpu_use_xnnpack=true; do XLA_FLAGS="$f" python benchmarks/xla_cpu_flags.py; done
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from timing import median_ms as t   # benchmarks/timing.py (the script's folder is on sys.path)

dn = ("NHWC", "HWIO", "NHWC")
x = jnp.asarray(np.random.rand(128, 40, 40, 64), jnp.float32)
w = jnp.asarray(np.random.rand(3, 3, 64, 64) * 0.05, jnp.float32)
conv = lambda x, w: lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=dn)
dy = conv(x, w)
fwd = jax.jit(conv)
def dx_f(x, w, dy): return jax.vjp(lambda x: conv(x, w), x)[1](dy)[0]
def dw_f(x, w, dy): return jax.vjp(lambda w: conv(x, w), w)[1](dy)[0]
dx_j, dw_j = jax.jit(dx_f), jax.jit(dw_f)
a = jnp.asarray(np.random.rand(204800, 576), jnp.float32); b = jnp.asarray(np.random.rand(204800, 64), jnp.float32)
gemm = jax.jit(lambda a, b: a.T @ b)
print(os.environ.get("XLA_FLAGS", "(default)"), "| fwd %.0f | dx %.0f | dw %.0f | gemm %.0f ms" % (
    t(fwd, x, w), t(dx_j, x, w, dy), t(dw_j, x, w, dy), t(gemm, a, b)), flush=True)
