"""Reproduces the published PSNR of the authors' released DnCNN weights.

  python benchmarks/dncnn_published.py                       # the whole table (~35 min, 2 CPUs)
  python benchmarks/dncnn_published.py --files=dncnn_s25.mat --sets=Set12
  python benchmarks/dncnn_published.py --sigmas=25

For each (released file, test set, sigma) of `dncnn.PUBLISHED_PSNR`: the product's own
path, i.e. `--mode=import` of the file into a temporary workdir (configs/dncnn.py with
`dncnn.eval_overrides`), then `--mode=eval` of the test set at that sigma: unclipped
Gaussian noise with per-image keys from (eval.seed, image index), full-size images, RGB
PSNR/SSIM on outputs rounded to uint8 (convention `rgb_uint8out`). Prints a markdown table: set,
file, sigma, images, published PSNR, ours, difference, SSIM, seconds.
"""

import argparse
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import jax  # noqa: E402

from configs import dncnn as dncnn_config  # noqa: E402
from restoration.modes import evaluate  # noqa: E402
from restoration.modes import import_weights
from restoration.weights import dncnn
from restoration.runtime import run_log


def evaluate_published(name: str, test_set: str, sigma: int, workdir: str) -> dict:
  """Imports released file `name` into `workdir` (once) and evaluates `test_set` at `sigma`:
  the eval-mode row ({'psnr', 'ssim', 'input_psnr', 'n_images', ...})."""
  if not os.path.isdir(os.path.join(workdir, "best")):
    import_weights.run(dncnn_config.get_config(), workdir,
                    os.path.join(ROOT, dncnn.WEIGHTS_DIR, name))
  config = run_log.read_config(workdir)
  config.data.eval = "folder:" + os.path.join(ROOT, dncnn.TEST_SETS_DIR, test_set)
  config.eval.sweep = {f"sigma{sigma}": dncnn.noise_spec(sigma)}
  config.eval.num_grid_images = 0
  (row,) = evaluate.run(config, workdir)
  return row


def main() -> None:
  cells = sorted(dncnn.PUBLISHED_PSNR, key=lambda k: (k[1], k[0], k[2]))
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--files", default="", help="comma-separated file names (default: all)")
  parser.add_argument("--sets", default="", help="comma-separated test sets (default: all)")
  parser.add_argument("--sigmas", default="", help="comma-separated sigmas (default: all)")
  args = parser.parse_args()
  pick = lambda arg, cast: {cast(v) for v in arg.split(",") if v} or None
  files, sets, sigmas = pick(args.files, str), pick(args.sets, str), pick(args.sigmas, int)
  cells = [(n, s, sig) for n, s, sig in cells
           if (files is None or n in files) and (sets is None or s in sets)
           and (sigmas is None or sig in sigmas)]
  if not cells:
    raise ValueError("--files/--sets/--sigmas select no cell; cells: "
                     f"{sorted(dncnn.PUBLISHED_PSNR)}")
  print(f"Command: python {' '.join(sys.argv)}")
  print(f"Device: {jax.devices()[0].device_kind}, {os.cpu_count()} CPUs, jax {jax.__version__}")
  print()
  print("| set | file | sigma | images | published PSNR | ours | diff | SSIM | s |")
  print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
  root = tempfile.mkdtemp(prefix="dncnn_published_")
  for name, test_set, sigma in cells:
    start = time.perf_counter()
    row = evaluate_published(name, test_set, sigma, os.path.join(root, name))
    seconds = time.perf_counter() - start
    published = dncnn.PUBLISHED_PSNR[(name, test_set, sigma)]
    print(f"| {test_set} | {name} | {sigma} | {row['n_images']} | {published:.2f} | "
          f"{row['psnr']:.3f} | {row['psnr'] - published:+.3f} | {row['ssim']:.4f} | "
          f"{seconds:.0f} |", flush=True)


if __name__ == "__main__":
  main()
