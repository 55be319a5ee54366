r"""bfloat16 on XLA:CPU: one 3x3 conv layer's forward as XLA's convolution vs an im2col GEMM.

  python benchmarks/bf16_conv.py [--shapes=32x40x40x64,16x40x40x64] [--rounds=7]

Why (WORKSPACE "Time to quality", session 15): with jax 0.12 a bfloat16 GEMM on CPU2 (Zen 4,
AVX-512 BF16) runs ~5.6x float32's, yet DnCNN's bfloat16 training step is only ~8% faster than
its float32 one; on jax 0.10 bfloat16 is slower everywhere. This asks where the step's time
goes: for each NHWC shape (C -> C channels, 'SAME', stride 1) it times, interleaved (round r
times every variant once; medians), the jitted forward of
  conv    `lax.conv_general_dilated` in the dtype (what the trainer's forward runs)
  gemm    im2col: the 9 shifted views of the zero-padded input concatenated on channels,
          (N*H*W, 9C) @ (9C, C) in the dtype, float32 accumulation
for float32 and bfloat16, with TFLOP/s (2 FLOP per multiply-add) and the largest error of
each against the float32 conv relative to its largest magnitude; and a 2048^3 GEMM per dtype
(the machine's peak in that dtype). Prints a markdown table.
"""

import functools
import os
import sys

from absl import app
from absl import flags

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import jax  # noqa: E402  pylint: disable=wrong-import-position
import jax.numpy as jnp  # noqa: E402  pylint: disable=wrong-import-position
import numpy as np  # noqa: E402  pylint: disable=wrong-import-position
from jax import lax  # noqa: E402  pylint: disable=wrong-import-position

import timing  # noqa: E402  pylint: disable=wrong-import-position  (this folder's)

flags.DEFINE_list("shapes", ["32x40x40x64", "16x40x40x64", "32x32x32x64"],
                  "NxHxWxC inputs (C -> C, 3x3 SAME)")
flags.DEFINE_integer("rounds", 7, "timed rounds (medians)")
FLAGS = flags.FLAGS
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def conv(x, k):
  return lax.conv_general_dilated(x, k, (1, 1), "SAME",
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"))


def gemm_conv(x, k):
  """The same 'SAME' 3x3 convolution as one GEMM of im2col patches (columns in HWIO order)."""
  n, h, w, c = x.shape
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  patches = jnp.concatenate([xp[:, i:i + h, j:j + w] for i in range(3) for j in range(3)],
                            axis=-1).reshape(n * h * w, 9 * c)
  y = jnp.dot(patches, k.reshape(9 * c, -1), preferred_element_type=jnp.float32)
  return y.reshape(n, h, w, -1).astype(x.dtype)


def main(argv):
  del argv
  rows = []
  for name, dtype in DTYPES.items():
    a = jnp.ones((2048, 2048), dtype)
    mm = jax.jit(lambda p, q: jnp.dot(p, q, preferred_element_type=jnp.float32))
    t = np.median(timing.interleaved({0: functools.partial(timing.seconds, mm, a, a)},
                                     FLAGS.rounds)[0])
    rows.append(f"| 2048^3 GEMM | {name} | {1e3 * t:.1f} | {2 * 2048 ** 3 / t / 1e12:.3f} | - |")
  for spec in FLAGS.shapes:
    shape = tuple(int(v) for v in spec.split("x"))
    key = jax.random.key(0)
    x = jax.random.uniform(key, shape)
    k = jax.random.normal(jax.random.fold_in(key, 1), (3, 3, shape[-1], shape[-1])) * 0.05
    ref = np.asarray(jax.jit(conv)(x, k))
    flop = 2 * np.prod(shape) * 9 * shape[-1]
    runs, errs = {}, {}
    for name, dtype in DTYPES.items():
      xd, kd = x.astype(dtype), k.astype(dtype)
      for method, fn in (("conv", conv), ("gemm", gemm_conv)):
        f = jax.jit(fn)
        got = np.asarray(f(xd, kd).astype(jnp.float32))
        errs[method, name] = float(np.max(np.abs(got - ref)) / np.max(np.abs(ref)))
        runs[method, name] = functools.partial(timing.seconds, f, xd, kd)
    times = timing.interleaved(runs, FLAGS.rounds)
    for (method, name), t in times.items():
      t = float(np.median(t))
      rows.append(f"| {spec} {method} | {name} | {1e3 * t:.1f} | {flop / t / 1e12:.3f} | "
                  f"{errs[method, name]:.1e} |")
  print("| forward | dtype | ms | TFLOP/s | max error vs float32 conv (relative) |")
  print("|---|---|---:|---:|---:|")
  print("\n".join(rows))
  print(f"\njax {jax.__version__}, {jax.devices()[0].device_kind}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
  app.run(main)
