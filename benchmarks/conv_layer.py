r"""One 3x3 'SAME' convolution layer on XLA:CPU: XLA's own conv vs the narrow-image mosaic.

  /work/venv/bin/python benchmarks/conv_layer.py [--shapes=128x40x40x64,8x128x128x64] \
      [--rounds=7]

For each NHWC input shape (C -> C channels) it times, interleaved (round r times every variant
once), the forward, forward + input gradient, and forward + both gradients (input and weight;
the loss sum(sin(y))) of
  xla     XLA's own conv and gradients (RESTORATION_FAST_CPU_CONV=0)
  im2col  `restoration.models.conv` without the mosaic (MOSAIC_WIDTH=0): XLA's forward and
          input gradient, the im2col weight gradient (RESTORATION_CONV_WEIGHT_GRAD=im2col)
  mosaic  the mosaic wherever it is exact ('1'): `per` images side by side in one wide image,
          im2col weight gradient
  fast    as the trainer runs it ('auto': the mosaic only where its rule says so, the
          Winograd weight gradient where it applies)
and prints medians (ms) as a markdown table, plus which mosaic 'auto' picked. This is the
evidence behind `conv.mosaic_tiles`' 'auto' rule (WORKSPACE, issue 17).
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

from restoration.models import conv  # noqa: E402  pylint: disable=wrong-import-position
import timing  # noqa: E402  pylint: disable=wrong-import-position  (this folder's)

flags.DEFINE_list("shapes", ["128x40x40x64", "64x40x40x64", "32x80x80x64", "32x40x40x128",
                             "8x128x128x64", "8x64x64x128", "8x32x32x256", "8x16x16x512",
                             "8x8x8x1024"], "NxHxWxC inputs (C -> C, 3x3 SAME)")
flags.DEFINE_integer("rounds", 7, "timed rounds (medians)")
FLAGS = flags.FLAGS
_DN = ("NHWC", "HWIO", "NHWC")


# variant -> (RESTORATION_FAST_CPU_CONV, widest mosaic row, RESTORATION_CONV_WEIGHT_GRAD): the
# switches and the module constant `conv_general_dilated` reads at trace time.
_VARIANTS = {"xla": ("0", conv.MOSAIC_WIDTH, "auto"), "im2col": ("1", 0, "im2col"),
             "mosaic": ("1", conv.MOSAIC_WIDTH, "im2col"),
             "fast": ("auto", conv.MOSAIC_WIDTH, "auto")}
_PADS = ((1, 1), (1, 1))


def _variants(shape):
  """name -> (forward fn, fwd + input-grad fn, fwd + both grads fn), traced under its setting;
  name + ' per' -> the images per mosaic row it uses."""
  c = shape[-1]
  f = lambda x, k: conv.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=_DN)
  loss = lambda x, k: jnp.sum(jnp.sin(f(x, k)))
  out = {}
  default_width = conv.MOSAIC_WIDTH
  for name, (mode, width, dw) in _VARIANTS.items():
    os.environ["RESTORATION_FAST_CPU_CONV"] = mode
    os.environ["RESTORATION_CONV_WEIGHT_GRAD"] = dw
    conv.MOSAIC_WIDTH = width
    out[name + " per"] = conv.mosaic_tiles(shape, (3, 3, c, c), (1, 1), _PADS, (1, 1))
    fns = (jax.jit(f), jax.jit(jax.grad(loss)), jax.jit(jax.grad(loss, argnums=(0, 1))))
    for fn in fns:                         # trace (and compile) now, under this setting
      jax.block_until_ready(fn(jnp.zeros(shape), jnp.zeros((3, 3, c, c))))
    out[name] = fns
  conv.MOSAIC_WIDTH = default_width
  os.environ.pop("RESTORATION_FAST_CPU_CONV", None)
  os.environ.pop("RESTORATION_CONV_WEIGHT_GRAD", None)
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
    runs = {(n, i): functools.partial(timing.seconds, v[n][i], x, k)
            for n in names for i in range(3)}
    times = timing.interleaved(runs, FLAGS.rounds, warmup=0)   # compiled in _variants
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
