"""Parameters and forward-pass GFLOPs of every registered model (restoration.models.MODELS).

  python benchmarks/models.py

For each model with its default fields: parameter count for RGB (3 -> 3; PatchGAN: 3 + 3
input channels) and for gray (1 -> 1), and the GFLOPs of one eval-mode forward pass on a
batch of one 128x128 RGB image (PatchGAN: two 128x128x3 inputs), as counted by XLA's cost
analysis of the compiled float32 program (`jax.jit(f).lower(...).compile().cost_analysis()`,
'flops': a multiply-add counts as 2). Nothing is initialised or run: variables are abstract
shapes from `jax.eval_shape(model.init, ...)`, so this is fast and device independent.
Prints a markdown table.
"""

import functools
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from restoration.models import MODELS, get_model  # noqa: E402

SIZE = 128


def _inputs(name: str, channels: int):
  x = jax.ShapeDtypeStruct((1, SIZE, SIZE, channels), jnp.float32)
  return (x, x) if name in ("patchgan", "pixelcnn") else (x,)


def param_count(name: str, channels: int) -> int:
  model = get_model(name)
  variables = jax.eval_shape(functools.partial(model.init, train=False),
                             jax.random.key(0), *_inputs(name, channels))
  return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(variables["params"]))


def forward_flops(name: str) -> float:
  model = get_model(name)
  inputs = _inputs(name, 3)
  variables = jax.eval_shape(functools.partial(model.init, train=False),
                             jax.random.key(0), *inputs)
  fn = jax.jit(lambda v, *xs: model.apply(v, *xs, train=False))
  cost = fn.lower(variables, *inputs).compile().cost_analysis()
  if isinstance(cost, (list, tuple)):   # older/newer jax: one dict per computation
    cost = cost[0] if cost else {}
  return float(cost.get("flops", float("nan")))


def main():
  print(f"jax {jax.__version__}, backend {jax.default_backend()} "
        f"({jax.devices()[0].device_kind}); forward pass, eval mode, batch 1, "
        f"{SIZE}x{SIZE} RGB, float32\n")
  print("| model | params (RGB) | params (gray) | GFLOPs / 128x128 RGB image |")
  print("|---|---:|---:|---:|")
  for name in MODELS:
    rgb, gray = param_count(name, 3), param_count(name, 1)
    gflops = forward_flops(name) / 1e9
    print(f"| {name} | {rgb:,} | {gray:,} | {gflops:.2f} |", flush=True)


if __name__ == "__main__":
  main()
