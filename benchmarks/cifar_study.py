"""The CIFAR-10 block-inpainting study (configs/cifar_study.py) reproduced: its table next to ours.

For every level (10 / 50 / 100 blocks) and seed, a run directory `<runs>/b<level>_s<seed>`:
  --train    trains the runs that have no final checkpoint (25,000 steps, one after another;
             an interrupted one resumes), recording wall and CPU seconds of each training
             process in <run>/study_timing.json (CPU: all threads, user + system, read from
             the finished child's rusage: on a shared machine wall time stretches, CPU does not)
  (always)   scores each finished run's LAST checkpoint, as the study did, on the 10,000 test
             images in both SSIM conventions (the study's: old skimage on floats, data_range 2,
             7x7 box, ddof=1; the standard one: Wang et al. / BasicSR), through
             `launch.py --mode=eval`, skipping what eval/results.json already holds
  then prints the table: the study's reported SSIM, ours as mean and 95% CI over seeds (Student
  t, none below 3 seeds) in both conventions, PSNR, the input's PSNR, and the training minutes.

  python benchmarks/cifar_study.py --runs=runs/study --train               # all 9 runs
  python benchmarks/cifar_study.py --runs=runs/study --levels=10 --seeds=0  # one, score only

`--variant=beat=10,width=32` adds configs/cifar_study.py arguments to every run (the
project's recipe at the study's CPU time; give it its own --runs folder).
`--set FIELD=VALUE` passes `--config.FIELD=VALUE` to training and eval (e.g. a shorter run).
Data: ../shared/data/cifar10 beside the checkout (a JPEG re-export of CIFAR-10: expect small
differences from the study's lossless images).
"""

import json
import os
import resource
import subprocess
import sys
import time

from absl import app
from absl import flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from configs import cifar_study  # noqa: E402
from restoration.data import specs  # noqa: E402
from restoration.eval import results  # noqa: E402
from restoration.sweeps import report  # noqa: E402

# The study's reported mean SSIM over the test set (its convention), by number of blocks.
REPORTED = {10: 0.99512, 50: 0.97665, 100: 0.95290}
CONVENTIONS = {"study": "rgb_ssimstudy", "standard": "rgb"}  # eval.ssim_convention -> row's

flags.DEFINE_string("runs", "runs/study", "Folder of the run directories b<level>_s<seed>.")
flags.DEFINE_list("levels", [str(n) for n in cifar_study.LEVELS], "Numbers of blocks.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Training seeds.")
flags.DEFINE_bool("train", False, "Train the runs that have no final checkpoint.")
flags.DEFINE_string("variant", "", "More configs/cifar_study.py arguments for every run, e.g. "
                    "'beat=10,width=32' (the project's recipe; give it its own --runs).")
flags.DEFINE_multi_string("set", [], "FIELD=VALUE: --config.FIELD=VALUE for training and eval.")
FLAGS = flags.FLAGS


def rundir(level: int, seed: int) -> str:
  return os.path.join(FLAGS.runs, f"b{level}_s{seed}")


def final_step() -> int:
  for item in FLAGS.set:
    if item.startswith("total_steps="):
      return int(item.split("=", 1)[1])
  return cifar_study.get_config(FLAGS.variant or None).total_steps


def config_arg(level: int, seed: int, test: bool = False) -> str:
  args = [f"blocks={level}", f"seed={seed}"] + (["test"] if test else []) + (
      [FLAGS.variant] if FLAGS.variant else [])
  return f"--config={ROOT}/configs/cifar_study.py:" + ",".join(args)


def _launch(args: list[str]) -> None:
  cmd = [sys.executable, os.path.join(ROOT, "launch.py")] + args + [
      f"--config.{item}" for item in FLAGS.set]
  print("+", " ".join(cmd), flush=True)
  subprocess.run(cmd, check=True, cwd=ROOT)


def finished(workdir: str, step: int) -> bool:
  return os.path.isdir(os.path.join(workdir, "checkpoints", str(step)))


def train(level: int, seed: int, step: int) -> None:
  workdir = rundir(level, seed)
  before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.time()
  _launch([config_arg(level, seed), f"--workdir={workdir}"])
  after = resource.getrusage(resource.RUSAGE_CHILDREN)
  cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
  path = os.path.join(workdir, "study_timing.json")
  segments = json.load(open(path)) if os.path.exists(path) else []
  segments.append({"wall_s": round(time.time() - start, 1), "cpu_s": round(cpu, 1),
                   "until_step": step, "load_avg_1min_at_end": os.getloadavg()[0]})
  with open(path, "w") as f:
    json.dump(segments, f, indent=1)


def rows(workdir: str, step: int) -> dict[str, dict]:
  """convention -> the eval row of the final checkpoint on the test set."""
  path = os.path.join(workdir, "eval", "results.json")
  out = {}
  if os.path.exists(path):
    for r in results.read_results(path):
      if (r["step"] == step and r.get("set") == specs.set_name(cifar_study.TEST)
          and r["convention"] in CONVENTIONS.values()):
        out[r["convention"]] = r
  return out


def score(level: int, seed: int, step: int) -> dict[str, dict]:
  workdir = rundir(level, seed)
  for conv, tag in CONVENTIONS.items():
    if tag not in rows(workdir, step):
      _launch(["--mode=eval", config_arg(level, seed, test=True), f"--workdir={workdir}",
               f"--step={step}",
               f"--config.eval.ssim_convention={conv}"])
  return rows(workdir, step)


def _cell(values: list[float], digits: int, bounds=None) -> str:
  s = report.mean_ci(values, bounds=bounds)
  if s["mean"] is None:
    return "-"
  ci = (f" [{s['ci95'][0]:.{digits}f}, {s['ci95'][1]:.{digits}f}]" if s["ci95"]
        else (f" (n={s['n']}, no CI)" if s["n"] < report.MIN_CI_SEEDS else ""))
  return f"{s['mean']:.{digits}f}{ci}"


def _span(values: list[float]) -> str:
  lo, hi = f"{min(values):.0f}", f"{max(values):.0f}"
  return lo if lo == hi else f"{lo}-{hi}"


def table(found: dict[int, list[dict]]) -> str:
  lines = [
      "| blocks | study SSIM (reported) | SSIM, study convention | SSIM, standard | PSNR dB | "
      "input PSNR dB | seeds | train min (wall / CPU) |",
      "|---|---|---|---|---|---|---|---|"]
  for level, runs in found.items():
    study = [r["rows"]["rgb_ssimstudy"]["ssim"] for r in runs]
    std = [r["rows"]["rgb"]["ssim"] for r in runs]
    psnr = [r["rows"]["rgb"]["psnr"] for r in runs]
    inp = [r["rows"]["rgb"]["input_psnr"] for r in runs]
    wall = [sum(s["wall_s"] for s in r["timing"]) / 60 for r in runs if r["timing"]]
    cpu = [sum(s["cpu_s"] for s in r["timing"]) / 60 for r in runs if r["timing"]]
    minutes = f"{_span(wall)} / {_span(cpu)}" if wall else "-"
    lines.append(
        f"| {level} | {REPORTED[level]:.5f} | {_cell(study, 5, (0, 1))} | {_cell(std, 5, (0, 1))}"
        f" | {_cell(psnr, 2)} | {_cell(inp, 2)} | {','.join(str(r['seed']) for r in runs)} | "
        f"{minutes} |")
  n = {r["rows"]["rgb"]["n_images"] for runs in found.values() for r in runs}
  lines.append(f"\nCIFAR-10 test set ({'/'.join(map(str, sorted(n)))} images, whole 32x32, RGB), "
               "last checkpoint of each run; mean [95% CI] over seeds.")
  return "\n".join(lines)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  levels = [int(x) for x in FLAGS.levels]
  bad = [n for n in levels if n not in REPORTED]
  if bad:
    raise app.UsageError(f"--levels: {bad} not in {sorted(REPORTED)}")
  step = final_step()
  found: dict[int, list[dict]] = {}
  for level in levels:
    for seed in (int(s) for s in FLAGS.seeds):
      workdir = rundir(level, seed)
      if FLAGS.train and not finished(workdir, step):
        train(level, seed, step)
      if not finished(workdir, step):
        print(f"{workdir}: no checkpoint at step {step} (train it with --train)", flush=True)
        continue
      timing_path = os.path.join(workdir, "study_timing.json")
      found.setdefault(level, []).append({
          "seed": seed, "rows": score(level, seed, step),
          "timing": json.load(open(timing_path)) if os.path.exists(timing_path) else []})
  print(table(found) if found else "no finished runs")


if __name__ == "__main__":
  app.run(main)
