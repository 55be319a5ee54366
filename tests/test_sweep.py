"""Sweeps: config resolution, the SLURM array script, statistics, and a tiny sweep end to end."""

import csv
import glob
import json
import os
import re
import shutil
import subprocess
import sys

import ml_collections
import numpy as np
import pytest
from scipy import stats

from configs import common
from restoration import sweep
from restoration import sweep_results
from restoration import sweep_spec

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = sorted(p for p in glob.glob(os.path.join(ROOT, "configs", "sweeps", "*.py"))
                 if not os.path.basename(p).startswith("_"))

# A 2-variant x 2-seed sweep of the tests' tiny CNN (4 steps, 2 eval images of 16 px).
TINY_SWEEP = '''
from restoration import sweep_spec
from tests.tiny import tiny_config


def get_config(arg=None):
  return sweep_spec.build(
      arg, name="tiny", description="tiny test sweep", base=tiny_config(),
      variants={"narrow": {}, "wide": {"model.kwargs": {"depth": 2, "features": 12}}},
      seeds=[0, 1], reference="narrow",
      eval_overrides={"eval.sweep": {"s15": [{"name": "gaussian_noise", "sigma": 15.0}],
                                     "s25": [{"name": "gaussian_noise", "sigma": 25.0}]}})
'''


def _load(path: str, arg: str | None = None) -> ml_collections.ConfigDict:
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  return config_flags.config_flags._LoadConfigModule("sweep_test", path).get_config(arg)


def _tiny_file(tmp_path) -> str:
  path = tmp_path / "tiny_sweep.py"
  path.write_text(TINY_SWEEP)
  return str(path)


# ------------------------------------------------------------------------------- configs

@pytest.mark.parametrize("path", SHIPPED, ids=os.path.basename)
@pytest.mark.parametrize("quick", [True, False])
def test_shipped_sweeps_resolve_every_run(path, quick):
  arg = "quick" if quick else ""
  s = _load(path, arg or None)
  default_keys = set(common.base().to_dict())
  assert s.reference in s.variants and len(s.seeds) >= (2 if quick else 3)
  names = set()
  for variant, seed in sweep_spec.runs(s):
    c = _load(path, f"{arg},variant={variant},seed={seed}".lstrip(","))
    assert set(c.to_dict()) == default_keys and c.seed == seed
    names.add(json.dumps({"model": c.model.to_dict(), "corruption": list(c.corruption)},
                         sort_keys=True, default=dict))
    if quick:
      assert c.total_steps <= 300
  assert len(names) == len(s.variants)  # every variant changes the model or the corruption


def test_resolve_applies_overrides_and_eval_only_for_eval(tmp_path):
  path = _tiny_file(tmp_path)
  train = _load(path, "variant=wide,seed=1")
  assert dict(train.model.kwargs) == {"depth": 2, "features": 12} and train.seed == 1
  assert not train.eval.sweep  # eval overrides stay out of training (best-checkpoint choice)
  ev = _load(path, "variant=wide,seed=1,eval")
  assert sorted(ev.eval.sweep) == ["s15", "s25"] and ev.eval.sweep.s15[0]["sigma"] == 15.0
  assert _load(path, "variant=narrow,seed=0").model.kwargs.features == 8


@pytest.mark.parametrize("kwargs,match", [
    ({"variants": {"a": {"model.kwarg": {}}}}, "model.kwarg"),
    ({"variants": {"a": {"optimizer.lr": 1.0}}}, "optimizer.lr"),
    ({"variants": {"a": {"total_steps": "ten"}}}, "total_steps"),
    ({"variants": {"a/b": {}}, "reference": "a/b"}, "variant name"),
    ({"reference": "zzz"}, "reference"),
    ({"seeds": [1, 1]}, "seeds"),
])
def test_bad_sweep_fields_raise(kwargs, match):
  from tests.tiny import tiny_config  # pylint: disable=g-import-not-at-top
  args = dict(name="t", description="", base=tiny_config(), variants={"a": {}}, seeds=[0],
              reference="a")
  args.update(kwargs)
  with pytest.raises(ValueError, match=re.escape(match)):
    sweep_spec.build(None, **args)


def test_unknown_variant_and_half_selection_raise(tmp_path):
  path = _tiny_file(tmp_path)
  with pytest.raises(ValueError, match="allowed: \\['narrow', 'wide'\\]"):
    _load(path, "variant=wid,seed=0")
  with pytest.raises(ValueError, match="both variant"):
    _load(path, "variant=wide")


# -------------------------------------------------------------------------------- SLURM

def test_slurm_script_names_every_run_once_and_parses(tmp_path):
  path = _tiny_file(tmp_path)
  s = _load(path, "")
  workdir = str(tmp_path / "sw")
  sweep.run(s, workdir, config_path=path, emit="slurm")
  text = open(os.path.join(workdir, "sweep.sbatch")).read()
  assert subprocess.run(["bash", "-n", os.path.join(workdir, "sweep.sbatch")]).returncode == 0
  assert "#SBATCH --array=0-3\n" in text and "#SBATCH --requeue\n" in text
  arrays = {k: v.split() for k, v in re.findall(r"^(VARIANTS|SEEDS)=\((.*)\)$", text, re.M)}
  pairs = list(zip(arrays["VARIANTS"], map(int, arrays["SEEDS"])))
  assert sorted(pairs) == sorted(sweep_spec.runs(s)) and len(set(pairs)) == 4
  # Each task runs exactly what the resolved config says: bash evaluates the same --config.
  env = dict(os.environ, SLURM_ARRAY_TASK_ID="3", PYTHON="echo")
  out = subprocess.run(["bash", os.path.join(workdir, "sweep.sbatch")], env=env,
                       capture_output=True, text=True, check=True).stdout.splitlines()
  v, k = pairs[3]
  assert out[0].endswith(f"--config={path}:variant={v},seed={k} --workdir={workdir}/{v}/seed{k}")
  assert out[1].endswith(f"--mode=eval --config={path}:variant={v},seed={k},eval "
                         f"--workdir={workdir}/{v}/seed{k}")
  with pytest.raises(ValueError, match="sweep_emit"):
    sweep.run(s, workdir, config_path=path, emit="pbs")


# ---------------------------------------------------------------------------- statistics

def test_mean_ci_matches_numpy_scipy():
  x = [30.85, 30.90, 30.71, 30.99]
  s = sweep_results.mean_ci(x)
  lo, hi = stats.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=stats.sem(x))
  assert s["n"] == 4 and s["mean"] == pytest.approx(np.mean(x), abs=1e-12)
  assert s["std"] == pytest.approx(np.std(x, ddof=1), abs=1e-12)
  assert s["ci95"] == pytest.approx([lo, hi], abs=1e-12)
  # By hand: mean 30.8625, std sqrt(0.041075 / 3) = 0.117012, t_{0.975,3} = 3.182446,
  # half-width 3.182446 * 0.117012 / sqrt(4) = 0.186191.
  assert s["ci95"][1] - s["mean"] == pytest.approx(0.186191, abs=2e-6)
  assert sweep_results.mean_ci([5.0]) == {"n": 1, "mean": 5.0, "std": None, "ci95": None}


def _write_csv(path, psnrs):
  with open(path, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["name", "psnr", "ssim", "input_psnr", "input_ssim"])
    for name, p in psnrs.items():
      w.writerow([name, repr(p), "0.5", "20.0", "0.3"])


def test_paired_difference_is_per_seed_mean_then_t_interval(tmp_path):
  rng = np.random.default_rng(0)
  ref, var = {}, {}
  expected = []
  for seed in (0, 1, 2):
    a = {f"im{i}": float(v) for i, v in enumerate(rng.normal(28, 2, 5))}
    b = {k: v + float(rng.normal(0.1, 0.3)) for k, v in reversed(a.items())}  # other order
    pa, pb = tmp_path / f"ref{seed}.csv", tmp_path / f"var{seed}.csv"
    _write_csv(pa, a)
    _write_csv(pb, b)
    ref[seed], var[seed] = {"L": (None, str(pa))}, {"L": (None, str(pb))}
    expected.append(np.mean([b[k] - a[k] for k in a]))
  d = sweep_results._paired(var, ref, "L")
  lo, hi = stats.t.interval(0.95, 2, loc=np.mean(expected), scale=stats.sem(expected))
  assert d["per_seed"] == pytest.approx(expected, abs=1e-12)
  assert d["ci95"] == pytest.approx([lo, hi], abs=1e-12) and d["images"] == 5


# ------------------------------------------------------------------------------ end to end

def _launch_sweep(path, workdir, cwd):
  return subprocess.run([sys.executable, os.path.join(ROOT, "launch.py"), "--mode=sweep",
                         f"--config={path}", f"--workdir={workdir}"], cwd=cwd,
                        capture_output=True, text=True, check=True).stdout


def _mtimes(d):
  return {p: os.stat(p).st_mtime_ns for p in glob.glob(os.path.join(d, "**"), recursive=True)
          if os.path.isfile(p)}


@pytest.mark.slow
def test_tiny_sweep_runs_resumes_and_aggregates(tmp_path):
  path = _tiny_file(tmp_path)
  workdir = str(tmp_path / "sw")
  out = _launch_sweep(path, workdir, tmp_path)
  assert out.count(": train") == 4 and out.count(": eval") == 4
  results = json.load(open(os.path.join(workdir, "results.json")))
  assert results["order"] == ["narrow", "wide"] and results["missing"] == []
  for v in ("narrow", "wide"):
    e = results["variants"][v]
    assert sorted(e["levels"]) == ["s15", "s25"] and e["seeds"] == [0, 1]
    for level, m in e["levels"].items():
      rows = [r for s in (0, 1) for r in json.load(open(
          os.path.join(workdir, v, f"seed{s}", "eval", "results.json"))) if r["corruption"] == level]
      psnrs = [r["psnr"] for r in rows]
      assert m["psnr"]["per_seed"] == pytest.approx(psnrs, abs=1e-6)
      assert m["psnr"]["mean"] == pytest.approx(np.mean(psnrs), abs=1e-6)
      assert m["psnr"]["std"] == pytest.approx(np.std(psnrs, ddof=1), abs=1e-6)
    assert e["steps_per_sec"] > 0 and e["wall_seconds"] > 0
  # 8 -> 8 -> 1 channel CNN 3x3 convs: (9*1*w + w) + (9*w*1 + 1) params.
  assert results["variants"]["narrow"]["params"] == 9 * 8 + 8 + 9 * 8 + 1
  assert results["variants"]["wide"]["params"] == 9 * 12 + 12 + 9 * 12 + 1
  assert results["variants"]["wide"]["gflops_per_image"] > results["variants"]["narrow"][
      "gflops_per_image"] > 0
  paired = results["variants"]["wide"]["paired_vs_reference"]["s25"]
  assert paired["n"] == 2 and paired["images"] == 2
  md = open(os.path.join(workdir, "results.md")).read()
  assert "| wide | s25 | 2 |" in md and "Paired PSNR difference vs `narrow`" in md

  # Interrupt one run (its final checkpoint and eval gone) and finish another's eval only.
  shutil.rmtree(os.path.join(workdir, "wide", "seed1", "checkpoints", "4"))
  shutil.rmtree(os.path.join(workdir, "wide", "seed1", "eval"))
  os.remove(os.path.join(workdir, "narrow", "seed1", "eval", "results.json"))
  untouched = {**_mtimes(os.path.join(workdir, "narrow", "seed0")),
               **_mtimes(os.path.join(workdir, "wide", "seed0"))}
  out = _launch_sweep(path, workdir, tmp_path)
  assert out.count("finished, skipped") == 2 and out.count(": train") == 1
  assert "wide/seed1: train" in out and "narrow/seed1: eval" in out
  assert {**_mtimes(os.path.join(workdir, "narrow", "seed0")),
          **_mtimes(os.path.join(workdir, "wide", "seed0"))} == untouched
  log = open(os.path.join(workdir, "wide", "seed1", "train.log")).read()
  assert "resuming" in log and "from step 2" in log  # the trainer resumed, not restarted
  # Training is exact on resume, so the aggregate is the same as before (wall time aside).
  again = json.load(open(os.path.join(workdir, "results.json")))
  for v in ("narrow", "wide"):
    assert again["variants"][v]["levels"] == results["variants"][v]["levels"]

  # Aggregating twice gives byte-identical files.
  sweep_results.aggregate(workdir)
  first = {p: open(os.path.join(workdir, p), "rb").read()
           for p in ("results.json", "results.md", "psnr.png")}
  sweep_results.aggregate(workdir)
  for p, data in first.items():
    assert open(os.path.join(workdir, p), "rb").read() == data, p
  assert first["psnr.png"][:8] == b"\x89PNG\r\n\x1a\n"
