"""`launch.py --mode=sweep`: every variant x seed of a sweep config, locally or as a SLURM array.

  python launch.py --mode=sweep --config=configs/sweeps/X.py:quick --workdir=runs/X
  python launch.py --mode=sweep --sweep_emit=slurm --config=configs/sweeps/X.py --workdir=runs/X

Each run is an ordinary training run in <workdir>/<variant>/seed<k>, started as
  python launch.py --config=configs/sweeps/X.py:ARG,variant=V,seed=K --workdir=<run dir>
  python launch.py --mode=eval --config=configs/sweeps/X.py:ARG,variant=V,seed=K,eval ...
(the sweep file resolves the run config; see restoration/sweeps/spec.py), so a run can be
repeated by hand, and a local sweep and a SLURM one produce the same files.

Locally the runs go one after another, each as a subprocess (output appended to the run's
train.log / eval.log). A run is skipped when finished: its final checkpoint
(checkpoints/<total_steps>) exists and eval/results.json has a row, with its per-image CSV, for
every eval level. A run without the final checkpoint is trained again: the trainer resumes
exactly from its latest checkpoint; then it is evaluated. Each finished stage appends
{"stage", "seconds"} to the run's wall_time.jsonl. Finally the sweep is aggregated
(restoration.sweeps.report: results.md, results.json, psnr.png).

`--sweep_emit=slurm` runs nothing: it writes <workdir>/sweep.sbatch, a job array with one task
per run (`--requeue`: a preempted task restarts and the trainer resumes from its checkpoint),
and prints the sbatch and aggregation commands. Both modes write <workdir>/sweep.json (the
sweep config, which the aggregation reads).
"""

import importlib.util
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence

import ml_collections

from restoration import cli
from restoration import run_config
from restoration.sweeps import report
from restoration.sweeps import spec

LAUNCH = os.path.join(cli.ROOT, "launch.py")
EMITS = ("none", "slurm")


def _check_sweep(config: ml_collections.ConfigDict, config_path: str) -> tuple[str, str]:
  """(file, arg) of the sweep config; ValueError unless the file gives exactly `config`."""
  if not all(k in config for k in ("base", "variants", "seeds", "reference")):
    raise ValueError(f"--mode=sweep needs a sweep config (configs/sweeps/*.py without "
                     f"variant=/seed=), got {config_path!r}")
  path, _, arg = config_path.partition(":")
  module_spec = importlib.util.spec_from_file_location("sweep_config_check", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  fresh = module.get_config(arg or None)
  if json.dumps(spec.to_json_dict(fresh), sort_keys=True) != json.dumps(
      spec.to_json_dict(config), sort_keys=True):
    raise ValueError("--mode=sweep: --config.* command-line overrides are not passed on to the "
                     f"runs; put them in the sweep file {path} (base or a variant)")
  return path, arg


def run_arg(arg: str, variant: str, seed: int, *, for_eval: bool = False) -> str:
  """The sweep file's argument that resolves one run's config."""
  parts = [p for p in arg.split(",") if p] + [f"variant={variant}", f"seed={int(seed)}"]
  return ",".join(parts + (["eval"] if for_eval else []))


def run(config: ml_collections.ConfigDict, workdir: str, *, config_path: str,
        emit: str = "none") -> None:
  """Runs (or, emit='slurm', writes a job array for) every run of the sweep; aggregates."""
  if emit not in EMITS:
    raise ValueError(f"--sweep_emit={emit!r}; allowed: {list(EMITS)}")
  path, arg = _check_sweep(config, config_path)
  os.makedirs(workdir, exist_ok=True)
  info = spec.to_json_dict(config)
  info["config"] = {"file": path, "arg": arg}
  with open(os.path.join(workdir, "sweep.json"), "w") as f:
    f.write(json.dumps(info, indent=2, sort_keys=True) + "\n")
  if emit == "slurm":
    script = write_slurm(config, workdir, path, arg)
    print(f"wrote {script} ({len(spec.runs(config))} array tasks). Submit with\n"
          f"  sbatch --gres=gpu:N [--time=... --partition=...] {script}\n"
          f"(each run uses all N GPUs of its node; see the README's 'Cluster runs')\n"
          f"and when every task has finished, aggregate with\n"
          f"  {aggregate_command(workdir)}", flush=True)
    return
  todo = spec.runs(config)
  try:
    _run_all(config, todo, workdir, path, arg)
  except KeyboardInterrupt:
    again = shlex.join(["python", "launch.py", "--mode=sweep",
                        f"--config={path}{':' + arg if arg else ''}", f"--workdir={workdir}"])
    print(f"\nsweep interrupted. Resume with the same command (finished runs are skipped, an "
          f"interrupted run resumes from its last checkpoint):\n  {again}", flush=True)
    raise
  out = report.aggregate(workdir)
  print(f"sweep results: {out}", flush=True)


def _run_all(config: ml_collections.ConfigDict, todo: Sequence[tuple[str, int]], workdir: str,
             path: str, arg: str) -> None:
  for i, (variant, seed) in enumerate(todo, 1):
    rundir = os.path.join(workdir, spec.run_dir(variant, seed))
    train_cfg = spec.resolve(config, variant, seed)
    eval_cfg = spec.resolve(config, variant, seed, for_eval=True)
    trained = os.path.isdir(os.path.join(rundir, "checkpoints", str(train_cfg.total_steps)))
    evaluated = trained and report.eval_files(rundir, eval_cfg) is not None
    label = f"[{i}/{len(todo)}] {spec.run_dir(variant, seed)}"
    if evaluated:
      print(f"{label}: finished, skipped", flush=True)
      continue
    if not trained:
      print(f"{label}: train", flush=True)
      _launch(rundir, "train", path, run_arg(arg, variant, seed))
    print(f"{label}: eval", flush=True)
    _launch(rundir, "eval", path, run_arg(arg, variant, seed, for_eval=True),
            protocol_flags(train_cfg, eval_cfg))


def protocol_flags(train_cfg: ml_collections.ConfigDict,
                   eval_cfg: ml_collections.ConfigDict) -> list[str]:
  """`--config.F=V` for the metric-protocol fields the sweep's eval overrides change: eval mode
  keeps a run's stored protocol unless the command line says otherwise (run_config)."""
  flags = []
  for field in run_config.PROTOCOL:
    group, name = field.split(".")
    value = eval_cfg[group].get(name)
    if value != train_cfg[group].get(name):
      flags.append(f"--config.{field}={value if isinstance(value, str) else json.dumps(value)}")
  return flags


def _launch(rundir: str, stage: str, path: str, arg: str, flags: Sequence[str] = ()) -> None:
  os.makedirs(rundir, exist_ok=True)
  cmd = [sys.executable, LAUNCH, f"--config={path}:{arg}", f"--workdir={rundir}", *flags]
  if stage == "eval":
    cmd.append("--mode=eval")
  log = os.path.join(rundir, f"{stage}.log")
  start = time.time()
  with open(log, "a") as f:
    f.write(f"$ {shlex.join(cmd)}\n")
    f.flush()
    rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, check=False).returncode
  if rc != 0:
    raise RuntimeError(f"sweep run {rundir}: {stage} failed (exit {rc}); see {log}")
  with open(os.path.join(rundir, "wall_time.jsonl"), "a") as f:
    f.write(json.dumps({"stage": stage, "seconds": round(time.time() - start, 1)}) + "\n")


def aggregate_command(workdir: str) -> str:
  return f"python -m restoration.sweeps.report {shlex.quote(workdir)}"


def write_slurm(config: ml_collections.ConfigDict, workdir: str, path: str, arg: str) -> str:
  """Writes <workdir>/sweep.sbatch: one array task per (variant, seed); returns its path."""
  todo = spec.runs(config)
  totals = [spec.resolve(config, v, s).total_steps for v, s in todo]
  logs = os.path.abspath(os.path.join(workdir, "slurm"))
  os.makedirs(logs, exist_ok=True)
  q = shlex.quote
  base_arg = ",".join(p for p in arg.split(",") if p)
  lines = [
      "#!/bin/bash",
      f"# Sweep {config.name}: {len(todo)} runs ({len(config.variants)} variants x "
      f"{len(config.seeds)} seeds), one SLURM array task each.",
      f"#   submit:      sbatch --gres=gpu:N [--time=... --partition=...] {workdir}/sweep.sbatch",
      f"#   afterwards:  {aggregate_command(workdir)}",
      "#   or chained:  jid=$(sbatch --parsable ...sweep.sbatch) && sbatch "
      "--dependency=afterany:$jid --wrap='...aggregate command...'",
      "# Each run is one process on one node driving all N GPUs it is given (pmap over local",
      "# devices; batch_size must divide by N); more nodes per run: --nodes=K (one task each).",
      "# SIGTERM 2 minutes before the time limit: the run checkpoints and exits 143; a requeued",
      "# (preempted) task resumes training from its latest checkpoint.",
      f"#SBATCH --job-name=sweep-{config.name}",
      f"#SBATCH --array=0-{len(todo) - 1}",
      "#SBATCH --nodes=1",
      "#SBATCH --ntasks-per-node=1",
      "#SBATCH --signal=TERM@120",
      "#SBATCH --requeue",
      "#SBATCH --open-mode=append",
      f"#SBATCH --output={logs}/%A_%a.out",
      "set -euo pipefail",
      f"cd {q(os.getcwd())}",
      f"PYTHON=${{PYTHON:-{q(sys.executable)}}}",
      f"VARIANTS=({' '.join(q(v) for v, _ in todo)})",
      f"SEEDS=({' '.join(str(s) for _, s in todo)})",
      f"TOTAL_STEPS=({' '.join(str(t) for t in totals)})",
      'i="${SLURM_ARRAY_TASK_ID:?submit with sbatch: this is an array job}"',
      'V="${VARIANTS[$i]}"',
      'K="${SEEDS[$i]}"',
      f'WD={q(workdir)}/"$V/seed$K"',
      f'CFG={q(path + ":" + (base_arg + "," if base_arg else ""))}"variant=$V,seed=$K"',
      'mkdir -p "$WD"',
      'if [ ! -d "$WD/checkpoints/${TOTAL_STEPS[$i]}" ]; then',
      "  t0=$SECONDS",
      "  # srun: one process per task of the allocation (with --nodes=K, K processes that",
      "  # agree through jax.distributed); each sees every GPU of its node.",
      f'  srun "$PYTHON" {q(LAUNCH)} --config="$CFG" --workdir="$WD"',
      '  echo "{\\"stage\\": \\"train\\", \\"seconds\\": $((SECONDS - t0))}" >> '
      '"$WD/wall_time.jsonl"',
      "fi",
      "t0=$SECONDS",
      f'srun --nodes=1 --ntasks=1 "$PYTHON" {q(LAUNCH)} --mode=eval --config="$CFG,eval" '
      '--workdir="$WD"',
      'echo "{\\"stage\\": \\"eval\\", \\"seconds\\": $((SECONDS - t0))}" >> '
      '"$WD/wall_time.jsonl"',
  ]
  script = os.path.join(workdir, "sweep.sbatch")
  with open(script, "w") as f:
    f.write("\n".join(lines) + "\n")
  return script
