"""Comparing runs: refused, or labelled, when they were not evaluated alike."""

import json
import os

import pytest
from PIL import Image

from restoration.eval import compare
from restoration.runtime import run_log
from restoration.eval import visualize
from tests.tiny import tiny_config


def make_run(path, **overrides):
  os.makedirs(path)
  run_log.write_config(str(path), tiny_config(**overrides))
  with open(os.path.join(path, "metrics.jsonl"), "w") as f:
    for step, psnr in ((2, 20.0), (4, 22.5)):
      f.write(json.dumps({"step": step, "kind": "eval", "psnr": psnr}) + "\n")
      f.write(json.dumps({"step": step, "kind": "train", "loss": 1.0 / step}) + "\n")
  return str(path)


def test_same_eval_setup_plots(tmp_path):
  a = make_run(tmp_path / "a")
  b = make_run(tmp_path / "b", seed=3, total_steps=8)  # training differences do not matter
  out = compare.compare([a, b], str(tmp_path / "cmp.png"))
  assert Image.open(out).size == (640, 400)
  assert compare.differences([a, b]) == {}
  assert compare.differences([a, b], "train") == {}


def test_different_eval_data_is_refused_or_labelled(tmp_path, monkeypatch):
  a = make_run(tmp_path / "a")
  b = make_run(tmp_path / "b", **{"data.eval": "folder:/x", "eval.seed": 7})
  with pytest.raises(ValueError, match=r'differ in data\.eval: "builtin" vs "folder:/x"; '
                                       r"eval\.seed: 1234 vs 7"):
    compare.compare([a, b], str(tmp_path / "cmp.png"))
  seen = {}
  monkeypatch.setattr(visualize, "compare_runs",
                      lambda dirs, out, **kw: seen.update(kw) or out)
  compare.compare([a, b], str(tmp_path / "cmp.png"), label_differences=True)
  assert seen["labels"] == ['a (data.eval="builtin", eval.seed=1234)',
                            'b (data.eval="folder:/x", eval.seed=7)']
  c = make_run(tmp_path / "c", corruption=[{"name": "gaussian_noise", "sigma": 50.0}])
  assert list(compare.differences([a, c], "train")) == ["corruption"]
  with pytest.raises(ValueError, match="--kind"):
    compare.differences([a, c], "test")
