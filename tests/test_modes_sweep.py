"""Sweeps: config resolution, the SLURM array script, statistics, and a tiny sweep end to end."""

import csv
import glob
import json
import os
import re
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from scipy import stats

from configs import common
from configs import pix2pix
from configs import pixelcnn
from restoration.runtime import run_log
from restoration.modes import sweep
from restoration.sweeps import report
from restoration.sweeps import spec
from restoration import tasks
from tests.tiny import tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = sorted(p for p in glob.glob(os.path.join(ROOT, "configs", "sweeps", "*.py"))
                 if not os.path.basename(p).startswith("_"))
SHARED = os.path.join(os.path.dirname(ROOT), "shared", "data")  # the full sweeps' data specs
# Tiny variants of the non-supervised tasks (on tiny_config's 16 px gray denoising).
GAN = {"task": "adversarial", "loss": {"l1": 1.0},
       "adversarial.discriminator.kwargs": {"n_layers": 2, "features": 4}}
AR = {"task": "autoregressive", "model.name": "pixelcnn",
      "model.kwargs": {"features": 4, "layers": 2, "cond_features": 4}, "patch_size": 8}

# A 2-variant x 2-seed sweep of the tests' tiny CNN (4 steps, 2 eval images of 16 px).
TINY_SWEEP = '''
from restoration.sweeps import spec
from tests.tiny import tiny_config


def get_config(arg=None):
  return spec.build(
      arg, name="tiny", description="tiny test sweep", base=tiny_config(),
      variants={"narrow": {}, "wide": {"model.kwargs": {"depth": 2, "features": 12}}},
      seeds=[0, 1], reference="narrow",
      eval_overrides={"eval.sweep": {"s15": [{"name": "gaussian_noise", "sigma": 15.0}],
                                     "s25": [{"name": "gaussian_noise", "sigma": 25.0}]}})
'''


# The same tiny network three ways: supervised, as a pix2pix generator, and a PixelCNN.
TASKS_SWEEP = f'''
from restoration.sweeps import spec
from tests.tiny import tiny_config


def get_config(arg=None):
  return spec.build(
      arg, name="tasks", description="one variant per task", base=tiny_config(),
      variants={{"cnn": {{}}, "gan": {GAN!r}, "pixelcnn": {AR!r}}}, seeds=[0],
      reference="cnn")
'''


def _module(path: str):
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  return config_flags.config_flags._LoadConfigModule("sweep_test", path)


def _load(path: str, arg: str | None = None) -> ml_collections.ConfigDict:
  return _module(path).get_config(arg)


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
  for variant, seed in spec.runs(s):
    c = _load(path, f"{arg},variant={variant},seed={seed}".lstrip(","))
    assert set(c.to_dict()) == default_keys and c.seed == seed
    names.add(json.dumps({"task": c.task, "model": c.model.to_dict(),
                          "corruption": list(c.corruption)}, sort_keys=True, default=dict))
    if quick:
      assert c.total_steps <= 300
  assert len(names) == len(s.variants)  # every variant changes the task, model or corruption


@pytest.mark.parametrize("path", SHIPPED, ids=os.path.basename)
@pytest.mark.parametrize("quick", [True, False])
def test_shipped_sweep_runs_build_their_tasks(path, quick, monkeypatch):
  """Every variant's train config (and eval config, when the sweep has eval overrides)
  builds its task, which checks every field it reads; no training (shapes traced only)."""
  if not quick and not os.path.isdir(SHARED):
    pytest.skip("full sweeps read ../shared/data, which is not beside the checkout")
  monkeypatch.chdir(ROOT)  # data specs are relative to the checkout
  s = _load(path, "quick" if quick else None)
  for variant in s.variants:
    for for_eval in (False, True) if s.eval else (False,):
      c = spec.resolve(s, variant, s.seeds[-1], for_eval=for_eval)
      task = tasks.build(c, local_device_count=1, process_count=1)
      assert task.name == c.task
      abstract = task.abstract_state()
      out = jax.eval_shape(task.inference.predict, task.inference_variables(abstract),
                           jax.ShapeDtypeStruct(task.input_shape(2), jnp.float32))
      assert out.shape == task.output_shape(2), (variant, for_eval)


@pytest.mark.parametrize("quick", [True, False])
@pytest.mark.parametrize("name,variant,like,source,fields", [
    ("unet_bottleneck.py", "gan", "unet1024", pix2pix, "GAN_FIELDS"),
    ("denoisers.py", "pixelcnn", "dncnn", pixelcnn, "PIXELCNN_FIELDS")])
def test_borrowed_variants_take_the_source_config_on_their_fields_only(
    name, variant, like, source, fields, quick):
  """gan = the unet1024 run with configs/pix2pix.py's task/adversarial/loss/optimizer;
  pixelcnn = the dncnn run with configs/pixelcnn.py's task/model/optimizer/decoding."""
  module = _module(os.path.join(ROOT, "configs", "sweeps", name))
  arg = "quick" if quick else None
  s = module.get_config(arg)
  src = source.get_config(arg)
  fields = getattr(module, fields)
  for seed in s.seeds:
    run, ref = spec.resolve(s, variant, seed), spec.resolve(s, like, seed)
    for key in run.keys():
      expected = src[key] if key in fields else ref[key]
      assert run_log.plain(run[key]) == run_log.plain(expected), key
  assert s.variants[variant].get("task") == src.task != "supervised"


def test_overrides_toward_lists_only_differences_and_reproduces_the_target():
  base = tiny_config()
  target = tiny_config(**{"task": "adversarial", "seed": 7, "optimizer.learning_rate": 0.5,
                          "optimizer.b1": 0.5, "loss": {"l1": 1.0, "ssim": 0.1},
                          "model.kwargs": {"depth": 3}, "adversarial.d_steps": 2})
  keys = ("task", "optimizer", "loss", "model", "adversarial")
  o = spec.overrides_toward(base, target, keys)
  # Sections with the same keys leaf by leaf; sections whose keys differ whole.
  assert o == {"task": "adversarial", "optimizer.learning_rate": 0.5, "optimizer.b1": 0.5,
               "loss": {"l1": 1.0, "ssim": 0.1}, "model.kwargs": {"depth": 3},
               "adversarial.d_steps": 2}
  c = ml_collections.ConfigDict(base.to_dict())
  spec.apply_overrides(c, o, where="test")
  for key in keys:
    assert run_log.plain(c[key]) == run_log.plain(target[key]), key
  assert c.seed == base.seed == 0  # fields not asked for are left alone
  assert spec.overrides_toward(base, base, keys) == {}
  with pytest.raises(ValueError, match="'optimizer.nope' is not a config field"):
    spec.overrides_toward(base, target, ("optimizer.nope",))


@pytest.mark.parametrize("overrides", [{}, GAN], ids=["restorer", "gan"])
def test_model_cost_of_a_restorer_is_one_forward_pass(overrides):
  """tiny_config's CNN (1 -> 8 -> 1 channels, 3x3 SAME convs, residual): XLA counts the
  multiply-adds of the taps inside the image, (3H - 2)^2 of them per channel pair, 2 FLOPs
  each, plus 18 elementwise ops per pixel (biases 8 + 1, ReLU 8, residual 1). A GAN's
  generator alone: the discriminator only trains."""
  for side in (8, 16):
    c = tiny_config(**overrides, **{"data.eval_crop": side})
    params, gflops = report.model_cost(c)
    assert params == 9 * 8 + 8 + 9 * 8 + 1
    assert gflops * 1e9 == pytest.approx(2 * 16 * (3 * side - 2) ** 2 + 18 * side ** 2,
                                         rel=1e-9)


def test_model_cost_of_a_pixelcnn_is_its_decode():
  """params = the task's state params; GFLOPs = H * W * C forward passes, each over the whole
  image: quadratic in the area (x16 from 16 to 32 px, up to border effects), not linear."""
  costs = {side: report.model_cost(tiny_config(**AR, **{"data.eval_crop": side}))
           for side in (16, 32)}
  task = tasks.build(tiny_config(**AR), local_device_count=1, process_count=1)
  n_params = sum(x.size for x in jax.tree.leaves(task.abstract_state().params))
  assert costs[16][0] == costs[32][0] == n_params
  assert costs[32][1] / costs[16][1] == pytest.approx(16, rel=0.02)


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
  args = dict(name="t", description="", base=tiny_config(), variants={"a": {}}, seeds=[0],
              reference="a")
  args.update(kwargs)
  with pytest.raises(ValueError, match=re.escape(match)):
    spec.build(None, **args)


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
  assert sorted(pairs) == sorted(spec.runs(s)) and len(set(pairs)) == 4
  # One process per node driving all of its GPUs; a graceful stop before the time limit.
  assert "#SBATCH --ntasks-per-node=1\n" in text and "#SBATCH --signal=TERM@120\n" in text
  # Each task runs exactly what the resolved config says: bash evaluates the same --config.
  # A stand-in srun prints its own options, then runs the command (PYTHON=echo prints it).
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  (bin_dir / "srun").write_text('#!/bin/bash\nopts=()\nwhile [[ $1 == --* ]]; do opts+=("$1"); '
                                'shift; done\necho "srun ${opts[*]}"\nexec "$@"\n')
  (bin_dir / "srun").chmod(0o755)
  env = dict(os.environ, SLURM_ARRAY_TASK_ID="3", PYTHON="echo",
             PATH=f"{bin_dir}:{os.environ['PATH']}")
  out = subprocess.run(["bash", os.path.join(workdir, "sweep.sbatch")], env=env,
                       capture_output=True, text=True, check=True).stdout.splitlines()
  v, k = pairs[3]
  assert out[0] == "srun "  # train: every task of the allocation (one per node)
  assert out[1].endswith(f"--config={path}:variant={v},seed={k} --workdir={workdir}/{v}/seed{k}")
  assert out[2] == "srun --nodes=1 --ntasks=1"  # eval: one process
  assert out[3].endswith(f"--mode=eval --config={path}:variant={v},seed={k},eval "
                         f"--workdir={workdir}/{v}/seed{k}")
  with pytest.raises(ValueError, match="sweep_emit"):
    sweep.run(s, workdir, config_path=path, emit="pbs")


# ---------------------------------------------------------------------------- statistics

def test_mean_ci_matches_numpy_scipy():
  x = [30.85, 30.90, 30.71, 30.99]
  s = report.mean_ci(x)
  lo, hi = stats.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=stats.sem(x))
  assert s["n"] == 4 and s["mean"] == pytest.approx(np.mean(x), abs=1e-12)
  assert s["std"] == pytest.approx(np.std(x, ddof=1), abs=1e-12)
  assert s["ci95"] == pytest.approx([lo, hi], abs=1e-12)
  # By hand: mean 30.8625, std sqrt(0.041075 / 3) = 0.117012, t_{0.975,3} = 3.182446,
  # half-width 3.182446 * 0.117012 / sqrt(4) = 0.186191.
  assert s["ci95"][1] - s["mean"] == pytest.approx(0.186191, abs=2e-6)
  assert report.mean_ci([5.0]) == {"n": 1, "mean": 5.0, "std": None, "ci95": None}


def test_fewer_than_three_seeds_give_no_interval_and_ssim_stays_in_0_1():
  two = report.mean_ci([0.2, 0.9])
  assert two["n"] == 2 and two["std"] == pytest.approx(np.std([0.2, 0.9], ddof=1))
  assert two["ci95"] is None and report._ci(two, 4) == "n<3"
  wide = report.mean_ci([0.99, 0.5, 0.999], bounds=(0.0, 1.0))
  unclipped = report.mean_ci([0.99, 0.5, 0.999])
  assert unclipped["ci95"][1] > 1.0 and 0.0 < unclipped["ci95"][0] < 1.0
  assert wide["ci95"] == [unclipped["ci95"][0], 1.0]
  assert report.mean_ci([0.01, 0.6, 0.02], bounds=(0.0, 1.0))["ci95"][0] == 0.0


@pytest.mark.parametrize("d,text", [
    ({"n": 2, "mean": 0.12, "std": 0.1, "ci95": None},
     "wide 0.120 dB above narrow (n<3 seeds: no interval, not a finding)"),
    ({"n": 3, "mean": 0.12, "std": 0.1, "ci95": [0.05, 0.2]},
     "wide 0.120 dB above narrow: wide better (95% CI excludes 0)"),
    ({"n": 3, "mean": -0.3, "std": 0.1, "ci95": [-0.5, -0.1]},
     "wide 0.300 dB below narrow: wide worse (95% CI excludes 0)"),
    ({"n": 3, "mean": 0.02, "std": 0.1, "ci95": [-0.1, 0.14]},
     "wide 0.020 dB above narrow: no detectable difference (95% CI includes 0)"),
])
def test_paired_reading_in_one_line(d, text):
  assert report.reading(d, "wide", "narrow") == text


def test_sweep_table_has_input_psnr_and_honest_cells_and_plot_names_both_levels(tmp_path):
  level = {"psnr": {**report.mean_ci([30.0, 31.0]), "per_seed": [30.0, 31.0]},
           "ssim": {**report.mean_ci([0.8, 0.9], bounds=(0, 1)), "per_seed": [0.8, 0.9]},
           "input_psnr": 20.17, "n_images": 4, "set": "BSD68: 4 of 68 images, 64 px crops"}
  variant = {"seeds": [0, 1], "levels": {"blocks10": level, "blocks50": level}, "params": 10,
             "gflops_per_image": 0.1, "steps_per_sec": 2.0, "wall_seconds": 5.0}
  paired = {lv: {"n": 2, "mean": 0.5, "std": 0.1, "ci95": None, "images": 4, "better": 0.75}
            for lv in ("blocks10", "blocks50")}
  summary = {"name": "s", "description": "d", "reference": "blocks10", "seeds": [0, 1],
             "order": ["blocks10", "blocks50"], "missing": [], "confidence": 0.95,
             "variants": {"blocks10": variant,
                          "blocks50": {**variant, "paired_vs_reference": paired}}}
  md = report.markdown(summary)
  assert "| input PSNR | PSNR | PSNR 95% CI |" in md
  assert "| blocks50 | blocks10 | 2 | 20.17 | 30.50 +- 0.71 | n<3 | 0.8500 +- 0.0707 | n<3 |" in md
  assert "Eval images: BSD68: 4 of 68 images, 64 px crops." in md
  assert "blocks50 0.500 dB above blocks10 (n<3 seeds: no interval, not a finding) |" in md
  fig = report.plot(summary, str(tmp_path / "psnr.png"))
  ax = fig.axes[0]
  assert [t.get_text() for t in ax.get_xticklabels()] == ["trained: blocks10",
                                                          "trained: blocks50"]
  assert "trained" in ax.get_xlabel()
  legend = ax.get_legend()
  assert legend.get_title().get_text() == "eval level"
  assert [t.get_text() for t in legend.get_texts()] == ["evaluated at blocks10",
                                                        "evaluated at blocks50"]


def test_protocol_flags_pass_a_sweeps_eval_protocol_on(tmp_path):
  train_cfg = tiny_config()
  eval_cfg = tiny_config(**{"eval.quantize": True, "eval.ssim_convention": "study"})
  assert sweep.protocol_flags(train_cfg, eval_cfg) == [
      "--config.eval.quantize=true", "--config.eval.ssim_convention=study"]
  assert sweep.protocol_flags(train_cfg, train_cfg) == []


def test_interrupted_sweep_says_how_to_resume(tmp_path, monkeypatch, capsys):
  path = _tiny_file(tmp_path)
  config = _load(path)

  def interrupted(*args, **kwargs):
    raise KeyboardInterrupt
  monkeypatch.setattr(sweep, "_launch", interrupted)
  workdir = str(tmp_path / "sw")
  with pytest.raises(KeyboardInterrupt):
    sweep.run(config, workdir, config_path=path)
  out = capsys.readouterr().out
  assert "sweep interrupted. Resume with the same command" in out
  assert f"python launch.py --mode=sweep --config={path} --workdir={workdir}" in out


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
  d = report._paired(var, ref, "L")
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
  report.aggregate(workdir)
  first = {p: open(os.path.join(workdir, p), "rb").read()
           for p in ("results.json", "results.md", "psnr.png")}
  report.aggregate(workdir)
  for p, data in first.items():
    assert open(os.path.join(workdir, p), "rb").read() == data, p
  assert first["psnr.png"][:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_sweep_of_gan_and_pixelcnn_variants_aggregates_and_pairs(tmp_path):
  """The adversarial and autoregressive tasks go through a sweep like a restorer: eval rows
  found, paired with the reference on the same images, params / GFLOPs / steps/s filled."""
  path = tmp_path / "tasks_sweep.py"
  path.write_text(TASKS_SWEEP)
  workdir = str(tmp_path / "sw")
  out = _launch_sweep(str(path), workdir, tmp_path)
  assert out.count(": train") == 3 and out.count(": eval") == 3
  results = json.load(open(os.path.join(workdir, "results.json")))
  assert results["missing"] == [] and results["order"] == ["cnn", "gan", "pixelcnn"]
  for v in ("cnn", "gan", "pixelcnn"):
    e = results["variants"][v]
    row, = [r for r in json.load(open(os.path.join(workdir, v, "seed0", "eval",
                                                   "results.json")))]
    assert e["levels"]["train"]["psnr"]["mean"] == pytest.approx(row["psnr"], abs=1e-6)
    assert e["steps_per_sec"] > 0 and e["gflops_per_image"] > 0
    config = report.eval_config(os.path.join(workdir, v, "seed0"), {})
    assert e["params"] == report.model_cost(config)[0]
    if v != "cnn":
      d = e["paired_vs_reference"]["train"]
      ref = results["variants"]["cnn"]["levels"]["train"]["psnr"]["mean"]
      assert d["images"] == 2 and d["mean"] == pytest.approx(row["psnr"] - ref, abs=1e-4)
  assert results["variants"]["gan"]["params"] == results["variants"]["cnn"]["params"]
  assert "| pixelcnn | train | 1 |" in open(os.path.join(workdir, "results.md")).read()
