r"""One 3x3 'SAME' convolution layer on XLA:CPU: XLA's own conv vs the narrow-image mosaic.

  /work/venv/bin/python benchmarks/conv_layer.py [--shapes=128x40x40x64,8x128x128x64] \
      [--per=0] [--rounds=7]

For each NHWC input shape (C -> C channels) it times, interleaved (round r times every variant
once), the forward, forward + input gradient, and forward + both gradients (input and weight;
the loss sum(sin(y))) of
  xla     `lax.conv_general_dilated` (weight gradient XLA's own too)
  im2col  `restoration.models.conv` without the mosaic: XLA's forward and input gradient, the
          im2col weight gradient
  mosaic  `restoration.models.conv` with the mosaic forced on ('1' mode): `per` images side by
          side in one wide image (--per=0: the module's own choice), im2col weight gradient
  fast    `restoration.models.conv` as the trainer runs it ('auto': the mosaic only where its
          rule says so)
and prints medians (ms) as a markdown table, plus which mosaic 'auto' picked. This is the
evidence behind `conv._mosaic_tiles`' 'auto' rule (WORKSPACE, issue 17).
"""

import os
import sys
import time

from absl import app
from absl import flags

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import jax  # noqa: E402  pylint: disable=wrong-import-position
import jax.numpy as jnp  # noqa: E402  pylint: disable=wrong-import-position
import numpy as np  # noqa: E402  pylint: disable=wrong-import-position
from jax import lax  # noqa: E402  pylint: disable=wrong-import-position

from restoration.models import conv  # noqa: E402  pylint: disable=wrong-import-position

flags.DEFINE_list("shapes", ["128x40x40x64", "64x40x40x64", "32x80x80x64", "32x40x40x128",
                             "8x128x128x64", "8x64x64x128", "8x32x32x256", "8x16x16x512",
                             "8x8x8x1024"], "NxHxWxC inputs (C -> C, 3x3 SAME)")
flags.DEFINE_integer("per", 0, "images per mosaic row for 'mosaic' (0: the module's choice)")
flags.DEFINE_integer("rounds", 7, "timed rounds (medians)")
FLAGS = flags.FLAGS
_DN = ("NHWC", "HWIO", "NHWC")


def _variants(shape):
  """name -> (forward fn, input-grad fn, layer-grad fn), each jitted and traced under its mode."""
  n, h, w, c = shape
  pads = ((1, 1), (1, 1))
  out = {}
  for name, mode in (("xla", None), ("im2col", "1"), ("mosaic", "1"), ("fast", "auto")):
    if mode is None:
      f = lambda x, k: lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=_DN)
    else:
      os.environ["RESTORATION_FAST_CPU_CONV"] = mode
      per = 1 if name == "im2col" else FLAGS.per if name == "mosaic" and FLAGS.per else \
          conv._mosaic_tiles(shape, (3, 3, c, c), (1, 1), pads, (1, 1))  # pylint: disable=protected-access
      f = lambda x, k, per=per: conv._conv(x, k, (1, 1), pads, (1, 1), None,  # pylint: disable=protected-access
                                           conv._chunk_bytes(), per)  # pylint: disable=protected-access
      out[name + " per"] = per
    loss = lambda x, k, f=f: jnp.sum(jnp.sin(f(x, k)))
    fns = (jax.jit(f), jax.jit(jax.grad(loss)), jax.jit(jax.grad(loss, argnums=(0, 1))))
    # Trace now, under this variant's mode (the switch is read at trace time).
    x = jnp.zeros(shape)
    k = jnp.zeros((3, 3, c, c))
    for fn in fns:
      jax.block_until_ready(fn(x, k))
    out[name] = fns
  os.environ.pop("RESTORATION_FAST_CPU_CONV", None)
  return out


def main(argv):
  del argv
  rows = []
  for spec in FLAGS.shapes:
    shape = tuple(int(v) for v in spec.split("x"))
    v = _variants(shape)
    key = jax.random.key(0)
    x = jax.random.normal(key, shape)
    k = jax.random.normal(jax.random.fold_in(key, 1), (3, 3, shape[-1], shape[-1])) * 0.05
    names = ("xla", "im2col", "mosaic", "fast")
    ref = v["xla"][2](x, k)
    for name in names[1:]:
      got = v[name][2](x, k)
      err = max(float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b))) for a, b in zip(got, ref))
      assert err < 1e-4, (spec, name, err)
    times = {(n, i): [] for n in names for i in range(3)}
    for _ in range(FLAGS.rounds):
      for n in names:
        for i in range(3):
          t0 = time.perf_counter()
          jax.block_until_ready(v[n][i](x, k))
          times[(n, i)].append(time.perf_counter() - t0)
    med = {key_: 1e3 * float(np.median(t)) for key_, t in times.items()}
    rows.append((spec, v["mosaic per"], v["fast per"], med))
    print(spec, "done", flush=True)
  print("\n| N x H x W x C | mosaic per row | 'auto' per | forward xla / mosaic ms | forward + "
        "input grad xla / mosaic | forward + both grads xla / im2col / mosaic / auto |")
  print("|---|---:|---:|---:|---:|---:|")
  for spec, per, auto_per, m in rows:
    print(f"| {spec} | {per} | {auto_per} | {m[('xla', 0)]:.1f} / {m[('mosaic', 0)]:.1f} | "
          f"{m[('xla', 1)]:.1f} / {m[('mosaic', 1)]:.1f} | {m[('xla', 2)]:.1f} / "
          f"{m[('im2col', 2)]:.1f} / {m[('mosaic', 2)]:.1f} / {m[('fast', 2)]:.1f} |")
  print(f"\njax {jax.__version__}, {jax.devices()[0].device_kind}, "
        f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
  app.run(main)
