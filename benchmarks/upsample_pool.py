"""XLA:CPU cost of the U-Net's up-sampling and pooling gradients: flax's layers vs the dense forms.

  python benchmarks/upsample_pool.py

Times jax.grad of sum(f(x)**2) (median of 5, after one compiling call) at the U-Net 1024's four
decoder / encoder shapes (batch 8 of 128x128): nn.max_pool vs reshape + max, and flax's
ConvTranspose (2x2, stride 2) vs the einsum restoration.models.conv.ConvTranspose uses on CPU
(its maxdiff column checks the two agree). Prints one line per shape."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from timing import median_ms as t   # benchmarks/timing.py (the script's folder is on sys.path)


def pool_xla(x): return nn.max_pool(x, (2, 2), strides=(2, 2))
def pool_rs(x):
  n, h, w, c = x.shape
  return x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))
for shape in [(8, 128, 128, 64), (8, 64, 64, 128), (8, 32, 32, 256), (8, 16, 16, 512)]:
  x = jnp.asarray(np.random.rand(*shape), jnp.float32)
  r = []
  for f in (pool_xla, pool_rs):
    g = jax.jit(jax.grad(lambda x: jnp.sum(f(x) ** 2)))
    r.append(t(g, x))
  print("pool", shape, "xla %.1f ms  reshape %.1f ms" % tuple(r), flush=True)
# transposed 2x2 stride 2 conv vs dense + depth-to-space
for (n, h, cin, cout) in [(8, 8, 1024, 512), (8, 16, 512, 256), (8, 32, 256, 128), (8, 64, 128, 64)]:
  x = jnp.asarray(np.random.rand(n, h, h, cin), jnp.float32)
  m = nn.ConvTranspose(cout, (2, 2), strides=(2, 2), padding="SAME")
  v = m.init(jax.random.key(0), x)
  def ct(v, x): return m.apply(v, x)
  def dense(v, x):
    k = v["params"]["kernel"]  # (2,2,cin,cout)
    y = jnp.einsum("nhwc,abcd->nhawbd", x, k[::-1, ::-1]).reshape(n, 2 * h, 2 * h, cout)
    return y + v["params"]["bias"]
  a = ct(v, x); b = dense(v, x)
  err = float(jnp.abs(a - b).max())
  r = []
  for f in (ct, dense):
    g = jax.jit(jax.grad(lambda v, x: jnp.sum(f(v, x) ** 2), argnums=(0, 1)))
    r.append(t(g, v, x))
  print("convT", (n, h, cin, cout), "xla %.1f ms  einsum %.1f ms  maxdiff %.2g" % (*r, err), flush=True)
