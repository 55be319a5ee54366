"""The README as a new user follows it: its commands, run exactly as written (slow).

In a scratch copy of the project's layout (the repository's files linked, `../shared/data`
linked to this machine's data): restore a noisy photo with the published CDnCNN-B weights,
evaluate them with the paper's protocol on CBSD68, train and evaluate a quick DnCNN, run a
quick sweep. `pip install -r requirements.txt` is not run (the test runs in an installed
environment). 36 min on 2 busy CPU cores (load ~10), most of it the full-size CBSD68 eval at
three sigmas.
"""

import json
import os
import shlex
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.normpath(os.path.join(ROOT, "..", "shared"))


def readme_command(marker: str) -> str:
  """The README shell command (continuation lines joined, comment dropped) containing
  `marker`; exactly one must."""
  with open(os.path.join(ROOT, "README.md")) as f:
    text = f.read().replace("\\\n", " ")
  lines = [ln for ln in text.splitlines() if marker in ln and ln.lstrip().startswith("python")]
  assert len(lines) == 1, (marker, lines)
  return " ".join(shlex.split(lines[0], comments=True))


def _run(command: str, cwd: str) -> str:
  argv = shlex.split(command)
  assert argv[0] == "python"
  proc = subprocess.run([sys.executable, *argv[1:]], cwd=cwd, capture_output=True, text=True,
                        timeout=3600)
  assert proc.returncode == 0, f"{command}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
  return proc.stdout


@pytest.fixture
def sandbox(tmp_path):
  """tmp/project (the repository's files linked) beside tmp/shared (this machine's data)."""
  if not os.path.isdir(os.path.join(SHARED, "data", "denoise", "test", "CBSD68")):
    pytest.skip("../shared/data absent")
  project = tmp_path / "project"
  project.mkdir()
  for name in ("launch.py", "configs", "restoration", "benchmarks", "requirements.txt"):
    os.symlink(os.path.join(ROOT, name), project / name)
  os.symlink(SHARED, tmp_path / "shared")
  return str(project)


@pytest.mark.slow
def test_readme_walkthrough(sandbox):
  # A noisy colour photo of the user's (a CBSD68 crop + sigma 25 noise, 8-bit).
  clean = np.asarray(Image.open(os.path.join(SHARED, "data", "denoise", "test", "CBSD68",
                                             "101085.png")))[:96, :128]
  noisy = np.clip(np.round(clean + np.random.default_rng(0).normal(0, 25, clean.shape)), 0, 255)
  Image.fromarray(noisy.astype(np.uint8)).save(os.path.join(sandbox, "noisy_photo.png"))

  # Restore it with the published weights.
  _run(readme_command("--from=../shared/data/pretrained/dncnn/cdncnn_color_blind.mat"), sandbox)
  out = _run(readme_command("--mode=restore --workdir=runs/cdncnn_b --input=noisy_photo.png"),
             sandbox)
  assert "restored 1 image(s)" in out
  restored = np.asarray(Image.open(os.path.join(sandbox, "out", "noisy_photo.png")), np.float64)
  psnr = lambda a: 10 * np.log10(255 ** 2 / np.mean((a - clean.astype(np.float64)) ** 2))
  assert psnr(restored) > psnr(noisy) + 5

  # Evaluate them with the paper's protocol: rgb_uint8out, whole CBSD68, published numbers.
  out = _run(readme_command("--mode=eval --workdir=runs/cdncnn_b"), sandbox)
  assert "CBSD68: 68 images" in out
  with open(os.path.join(sandbox, "runs", "cdncnn_b", "eval", "results.json")) as f:
    rows = {r["corruption"]: r for r in json.load(f)}
  assert all(r["convention"] == "rgb_uint8out" and r["n_images"] == 68 for r in rows.values())
  assert abs(rows["sigma25"]["psnr"] - 31.23) < 0.05  # published CDnCNN-B, CBSD68 sigma 25

  # Train and evaluate a quick model; its numbers say they are on crops.
  _run(readme_command("--config=configs/dncnn.py:quick --workdir=runs/dncnn_quick"), sandbox)
  out = _run(readme_command("--mode=eval --workdir=runs/dncnn_quick"), sandbox)
  assert "builtin photos: 4 images, 64 px crops" in out

  # A sweep, aggregated.
  out = _run(readme_command("--mode=sweep --config=configs/sweeps/blocks.py:quick"), sandbox)
  assert "sweep results:" in out
  md = open(os.path.join(sandbox, "runs", "blocks_quick", "results.md")).read()
  assert "| input PSNR |" in md and "Paired PSNR difference" in md
