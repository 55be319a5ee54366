"""Test-set quality against wall-clock minutes of training: what a budget buys on this machine.

Trains a config for a wall-clock budget with a checkpoint every `--every` minutes (and one at
the end: SIGTERM makes the trainer save the step it reached), then evaluates every kept
checkpoint on the test set with the paper's protocol and prints a PSNR-vs-minutes table and
writes a plot. Evaluation happens after training, so its time is not counted.

  python benchmarks/time_to_quality.py --config=configs/dncnn.py --workdir=runs/ttq_default \\
    --minutes=60 --every=10                                   # DnCNN-S as shipped, sigma 25
  python benchmarks/time_to_quality.py --config=configs/dncnn.py:cpu60 --workdir=runs/ttq_cpu60
  python benchmarks/time_to_quality.py --plot=ttq.png runs/ttq_default runs/ttq_cpu60  # compare

Defaults: Train400 for training, BSD68 for testing (../shared/data), Gaussian noise sigma=25
not clipped, output rounded to uint8, RGB (=gray) PSNR over whole images: the DnCNN paper's
protocol. `--set FIELD=VALUE` passes more `--config.FIELD=VALUE` overrides to training.

Minutes are measured from the trainer's launch, so they include start-up and compilation (what
a user waits for); the CPU minutes of the training process are recorded beside them (all
threads, user + system), which tell how much of the machine the run had: on a machine shared
with other work, wall minutes stretch and CPU minutes do not. A run stops at the budget or at
the config's total_steps, whichever comes first; rerunning a finished workdir only
re-evaluates and prints (records: <workdir>/time_to_quality.json).
"""

import json
import os
import signal
import subprocess
import sys
import time

from absl import app
from absl import flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(os.path.dirname(ROOT), "shared", "data", "denoise")

flags.DEFINE_string("config", "configs/dncnn.py", "Training config PATH[:ARG].")
flags.DEFINE_string("workdir", None, "Run directory (records in time_to_quality.json).")
flags.DEFINE_float("minutes", 60.0, "Wall-clock training budget.")
flags.DEFINE_float("every", 10.0, "Minutes between kept checkpoints.")
flags.DEFINE_string("train", f"folder:{DATA}/train/Train400", "Training data spec.")
flags.DEFINE_string("test", f"folder:{DATA}/test/BSD68", "Test data spec.")
flags.DEFINE_float("sigma", 25.0, "Test noise level (0-255 scale), not clipped.")
flags.DEFINE_multi_string("set", [], "More training overrides FIELD=VALUE.")
flags.DEFINE_string("plot", None, "Write PSNR vs minutes of the given workdirs to this PNG.")
FLAGS = flags.FLAGS
RECORDS = "time_to_quality.json"


def _cpu_seconds(pid: int) -> float:
  """User + system CPU seconds of process `pid`, all its threads (Linux /proc)."""
  with open(f"/proc/{pid}/stat") as f:
    fields = f.read().rsplit(")", 1)[1].split()
  return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _steps(workdir: str) -> set[int]:
  d = os.path.join(workdir, "checkpoints")
  return {int(n) for n in os.listdir(d) if n.isdigit()} if os.path.isdir(d) else set()


def train(workdir: str) -> list[dict]:
  """Runs the trainer for the budget; returns [{step, minutes, cpu_minutes}] per checkpoint."""
  if _steps(workdir):
    raise SystemExit(f"error: {workdir} already has checkpoints but no {RECORDS}: use a new "
                     "workdir (their times are unknown)")
  cmd = [sys.executable, os.path.join(ROOT, "launch.py"), f"--config={FLAGS.config}",
         f"--workdir={workdir}", f"--config.data.train={FLAGS.train}",
         f"--config.checkpoint_every_minutes={FLAGS.every}",
         "--config.keep_checkpoints=1000", "--config.checkpoint_every_steps=100000000",
         "--config.eval_every_steps=100000000"] + [f"--config.{s}" for s in FLAGS.set]
  print(" ".join(cmd), flush=True)
  start = time.monotonic()
  proc = subprocess.Popen(cmd, cwd=ROOT)
  records, seen, stopped = [], set(), False
  while True:
    done = proc.poll() is not None
    elapsed = time.monotonic() - start
    cpu = None if done else _cpu_seconds(proc.pid)
    for step in sorted(_steps(workdir) - seen):  # committed (Orbax renames tmp dirs on commit)
      seen.add(step)
      records.append({"step": step, "minutes": elapsed / 60,
                      "cpu_minutes": None if cpu is None else cpu / 60})
    if done:
      break
    if not stopped and elapsed >= 60 * FLAGS.minutes:
      proc.send_signal(signal.SIGTERM)  # the trainer checkpoints the step it reached
      stopped = True
    time.sleep(0.5)
  if proc.returncode not in (0, 143):
    raise SystemExit(f"error: training exited with status {proc.returncode}")
  return records


def score(workdir: str, records: list[dict]) -> None:
  """Adds psnr/ssim/input_psnr to each record (BSD68-style: whole images, uint8 output)."""
  sys.path.insert(0, ROOT)
  from restoration import cli  # pylint: disable=g-import-not-at-top
  from restoration.modes import evaluate  # pylint: disable=g-import-not-at-top
  level = f"sigma{FLAGS.sigma:g}"
  specs = [{"name": "gaussian_noise", "sigma": FLAGS.sigma, "clip": False}]
  overrides = [("data.eval", FLAGS.test), ("eval.quantize", "true"),
               ("eval.sweep", json.dumps({level: specs})), ("data.eval_crop", "0"),
               ("data.eval_max_images", "0"), ("eval.num_grid_images", "0")]
  config, _ = cli.load_config(FLAGS.config, overrides)
  for r in records:
    if "psnr" in r:
      continue
    (row,) = evaluate.run(config, workdir, step=r["step"])
    r.update(psnr=row["psnr"], ssim=row["ssim"], input_psnr=row["input_psnr"],
             n_images=row["n_images"], convention=row["convention"], test=FLAGS.test,
             sigma=FLAGS.sigma)
    _save(workdir, records)


def _save(workdir: str, records: list[dict]) -> None:
  path = os.path.join(workdir, RECORDS)
  with open(path + ".tmp", "w") as f:
    json.dump(records, f, indent=1)
  os.replace(path + ".tmp", path)


def table(workdir: str, records: list[dict]) -> str:
  lines = [f"{workdir}: {FLAGS.config} ({records[0].get('n_images', '?')} images of "
           f"{FLAGS.test}, sigma {FLAGS.sigma:g}, {records[0].get('convention', '?')})",
           "| minutes | step | CPU minutes | PSNR | SSIM | input PSNR |", "|---|---|---|---|---|---|"]
  for r in records:
    cpu = "-" if r["cpu_minutes"] is None else f"{r['cpu_minutes']:.1f}"
    lines.append(f"| {r['minutes']:.1f} | {r['step']} | {cpu} | {r.get('psnr', float('nan')):.2f}"
                 f" | {r.get('ssim', float('nan')):.4f} | {r.get('input_psnr', float('nan')):.2f} |")
  return "\n".join(lines)


def plot(path: str, workdirs: list[str]) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(6.4, 4.0))
  for w in workdirs:
    with open(os.path.join(w, RECORDS)) as f:
      rs = [r for r in json.load(f) if "psnr" in r]
    ax.plot([r["minutes"] for r in rs], [r["psnr"] for r in rs], "o-",
            label=os.path.basename(w.rstrip("/")))
  ax.set_xlabel("training wall-clock minutes (this machine)")
  ax.set_ylabel("test PSNR (dB)")
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  print(f"wrote {path}")


def main(argv):
  if FLAGS.plot:
    plot(FLAGS.plot, argv[1:])
    return
  if not FLAGS.workdir or len(argv) > 1:
    raise SystemExit("error: --workdir=DIR is required (or --plot=PNG WORKDIR...)")
  path = os.path.join(FLAGS.workdir, RECORDS)
  if os.path.exists(path):
    with open(path) as f:
      records = json.load(f)
  else:
    records = train(FLAGS.workdir)
    _save(FLAGS.workdir, records)
  score(FLAGS.workdir, records)
  print(table(FLAGS.workdir, records), flush=True)


if __name__ == "__main__":
  app.run(main)
