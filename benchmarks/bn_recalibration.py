"""BatchNorm statistics re-estimated over many training batches, then scored (PreciseBN).

The CPU recipe (`configs/dncnn.py:cpu=MINUTES`, KAIR's BN setting: torch momentum 0.9 = flax
0.1) keeps running statistics that are ~90% the LAST training batch's (64 crops), and its
BSD68 PSNR moves by up to ~0.1 dB between neighbouring checkpoints (WORKSPACE "Time to
quality"). The running statistics are read only at test time, so they can be re-estimated
after training without touching a weight: every BN layer's mean and variance become the
averages of its per-batch statistics over N training batches, the network in training mode
(Wu & Johnson 2021, "Rethinking 'Batch' in BatchNorm", PreciseBN). This writes each result as
a new workdir `<workdir>_bn<N>` (`trained_run.export`: eval and restore read it like a trained
run) and scores it with time_to_quality's protocol (BSD68, sigma 25 not clipped, uint8 output):

  python benchmarks/bn_recalibration.py --config=configs/dncnn.py:cpu=60 \\
    --workdir=runs/ttq_cpu60 --step=1545 --batches=0,50,200

N=0 exports the checkpoint unchanged (the control: it must score as the checkpoint does). The
batches are the run's own training stream (data.train, its crops, augmentation and corruption,
drawn from --seed); the test set is never read before scoring. For new runs,
`config.precise_bn_batches=N` does the same inside the training loop at its last step; this
script serves checkpoints trained without it.
"""

import os
import sys
import time

import jax
from absl import app
from absl import flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# pylint: disable=g-import-not-at-top,wrong-import-position
from benchmarks import time_to_quality as ttq  # noqa: E402  (its flags and scoring)
from restoration import data  # noqa: E402
from restoration import tasks  # noqa: E402
from restoration.runtime import parallel  # noqa: E402
from restoration.runtime import precise_bn  # noqa: E402
from restoration.runtime import trained_run  # noqa: E402

flags.DEFINE_integer("step", None, "Checkpoint step of --workdir (default: its best/latest).")
flags.DEFINE_list("batches", ["0", "50", "200"], "Training batches to average over (0: none).")
flags.DEFINE_integer("seed", 1, "Seed of the recalibration batches' crops and noise.")
FLAGS = flags.FLAGS


def batch_statistics(config, variables, n_batches: int, seed: int):
  """BN statistics of `variables` averaged over `n_batches` of the run's training stream
  (`precise_bn.recalibrate`, the loop's own step; batch i keyed as step i of seed `seed`)."""
  c = config.copy_and_resolve_references()
  c.seed = seed
  task = tasks.build(c, local_device_count=1, process_count=1)
  devices = jax.local_devices()[:1]  # one device sees the whole batch, as in training
  consts = task.consts()
  rconsts = (None if consts is None
             else parallel.to_devices(parallel.replicate(consts, devices), devices))
  with data.make_train_data(c, local_device_count=1) as stream:
    batches = ((parallel.to_devices(b, devices), None) for b in stream)
    out = precise_bn.recalibrate(task, variables, batches, rconsts, first_step=0,
                                 num_batches=n_batches, devices=devices)
  return out["batch_stats"]


def main(argv):
  del argv
  if not FLAGS.workdir:
    raise SystemExit("error: --workdir=DIR (a trained run with BatchNorm) is required")
  trained = trained_run.load_run(FLAGS.workdir, step=FLAGS.step)
  if "batch_stats" not in trained.variables:
    raise SystemExit(f"error: {FLAGS.workdir}: the model has no BatchNorm statistics")
  config = trained.config
  rows = []
  for n in (int(b) for b in FLAGS.batches):
    out = f"{FLAGS.workdir.rstrip('/')}_bn{n}"
    start = time.monotonic()
    variables = dict(trained.variables)
    if n > 0:
      variables["batch_stats"] = batch_statistics(config, variables, n, FLAGS.seed)
    seconds = time.monotonic() - start
    if not os.path.isdir(os.path.join(out, "best")):
      trained_run.export(out, config, variables, trained.meta, step=trained.step)
    records = [{"step": trained.step, "minutes": 0.0, "cpu_minutes": None}]
    ttq.score(out, records)
    rows.append((n, seconds, records[0]))
    print(f"{out}: {n} batches ({seconds:.0f} s): PSNR {records[0]['psnr']:.3f}", flush=True)
  print(f"\n{FLAGS.workdir} step {trained.step}: BN statistics over N training batches "
        f"(seed {FLAGS.seed}); {rows[0][2]['n_images']} images of {FLAGS.test}, sigma "
        f"{FLAGS.sigma:g}, {rows[0][2]['convention']}")
  print("| batches | seconds | PSNR | SSIM |\n|---:|---:|---:|---:|")
  for n, seconds, r in rows:
    print(f"| {n} | {seconds:.0f} | {r['psnr']:.3f} | {r['ssim']:.4f} |")


if __name__ == "__main__":
  app.run(main)
