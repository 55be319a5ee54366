r"""The weight gradient of one 3x3 'SAME' conv on XLA:CPU, per formulation and shape.

  python benchmarks/weight_grad.py [--shapes=128x40x40x64,8x128x128x64] [--rounds=7]

For each NHWC input shape (C -> C channels, or NxHxWxCxO) it times, interleaved (round r times
every variant once), dL/dW alone given the input and the output gradient:
  xla       XLA's own gradient of `lax.conv_general_dilated` (what RESTORATION_FAST_CPU_CONV=0
            runs)
  im2col    `conv.weight_grad`: chunked im2col GEMMs (patch layout by `conv.channels_last`)
  winograd  `winograd.weight_grad`: F(4x4, 3x3) in chunks
and prints medians (ms), the speed-up of Winograd over im2col, and each formulation's largest
error relative to the largest entry of XLA's gradient. The evidence behind
`conv.weight_grad_method` (WORKSPACE, issue 17). Host memory as launch.py sets it.
"""

import functools
import os
import sys

from absl import app
from absl import flags

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from restoration.runtime import host_memory  # noqa: E402  pylint: disable=wrong-import-position
import jax  # noqa: E402  pylint: disable=wrong-import-position
import jax.numpy as jnp  # noqa: E402  pylint: disable=wrong-import-position
from jax import lax  # noqa: E402  pylint: disable=wrong-import-position
import numpy as np  # noqa: E402  pylint: disable=wrong-import-position

from restoration.models import conv  # noqa: E402  pylint: disable=wrong-import-position
from restoration.models import winograd  # noqa: E402  pylint: disable=wrong-import-position
import timing  # noqa: E402  pylint: disable=wrong-import-position  (this folder's)

flags.DEFINE_list("shapes", ["128x40x40x64", "8x128x128x64", "8x128x128x128x64",
                             "8x64x64x128", "8x64x64x256x128", "8x32x32x256",
                             "8x32x32x512x256", "8x16x16x512", "8x16x16x1024x512",
                             "8x8x8x1024"], "NxHxWxC (C -> C) or NxHxWxCxO inputs, 3x3 SAME")
flags.DEFINE_integer("rounds", 7, "timed rounds (medians)")
FLAGS = flags.FLAGS
_PADS = ((1, 1), (1, 1))


def _formulations(c, o):
  def xla(x, dy):
    _, vjp = jax.vjp(lambda w: lax.conv_general_dilated(
        x, w, (1, 1), _PADS, dimension_numbers=("NHWC", "HWIO", "NHWC")),
                     jnp.zeros((3, 3, c, o), x.dtype))
    return vjp(dy)[0]
  chunk = conv._chunk_bytes()  # pylint: disable=protected-access
  im2col = functools.partial(conv.weight_grad, w_shape=(3, 3, c, o), strides=(1, 1),
                             pads=_PADS, dilation=(1, 1), chunk_bytes=chunk)
  wino = functools.partial(winograd.weight_grad, w_shape=(3, 3, c, o), pads=_PADS,
                           chunk_bytes=chunk)
  return {"xla": jax.jit(xla), "im2col": jax.jit(im2col), "winograd": jax.jit(wino)}


def main(argv):
  del argv
  host_memory.configure()
  rows = []
  for spec in FLAGS.shapes:
    dims = [int(v) for v in spec.split("x")]
    n, h, w, c = dims[:4]
    o = dims[4] if len(dims) > 4 else c
    key = jax.random.key(0)
    x = jax.random.normal(key, (n, h, w, c))
    dy = jax.random.normal(jax.random.fold_in(key, 1), (n, h, w, o))
    fns = _formulations(c, o)
    ref = fns["xla"](x, dy)
    err = {k: float(jnp.max(jnp.abs(f(x, dy) - ref)) / jnp.max(jnp.abs(ref)))
           for k, f in fns.items()}
    runs = {k: functools.partial(timing.seconds, f, x, dy) for k, f in fns.items()}
    times = timing.interleaved(runs, FLAGS.rounds, warmup=0)   # compiled by the error pass
    med = {k: 1e3 * float(np.median(t)) for k, t in times.items()}
    rows.append((spec, med, err))
    print(spec, "done", flush=True)
  print("\n| N x H x W x C (x O) | xla ms | im2col ms | winograd ms | im2col / winograd | "
        "rel. error im2col / winograd |")
  print("|---|---:|---:|---:|---:|---:|")
  for spec, m, e in rows:
    print(f"| {spec} | {m['xla']:.1f} | {m['im2col']:.1f} | {m['winograd']:.1f} | "
          f"{m['im2col'] / m['winograd']:.2f} | {e['im2col']:.1e} / {e['winograd']:.1e} |")
  print(f"\njax {jax.__version__}, {jax.devices()[0].device_kind}, "
        f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
  app.run(main)
