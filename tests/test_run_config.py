"""Which config a command runs with (restoration.run_config): eval follows the run it scores."""

import json
import os
import re
import shlex
import subprocess
import sys

import pytest

from configs import dncnn as dncnn_config
from restoration import cli
from restoration import run_config
from restoration.eval import evaluator
from restoration.runtime import run_log

ROOT = cli.ROOT


def _imported_like_run(tmp_path, **fields) -> str:
  """A workdir whose config.json stores the paper's protocol, as --mode=import writes it."""
  c = dncnn_config.get_config()
  c.eval.quantize = True
  c.data.eval_crop = 0
  for k, v in fields.items():
    c.update_from_flattened_dict({k: v})
  workdir = str(tmp_path / "run")
  os.makedirs(workdir)
  run_log.write_config(workdir, c)
  return workdir


def test_eval_without_config_uses_the_runs_config_with_overrides_on_top(tmp_path):
  workdir = _imported_like_run(tmp_path)
  config, path = run_config.config_following_run(
      "eval", None, [("data.eval", "folder:/x/CBSD68"), ("data.eval_max_images", "3")], workdir)
  assert path == os.path.join(workdir, "config.json")
  assert config.data.eval == "folder:/x/CBSD68" and config.data.eval_max_images == 3
  assert evaluator.EvalOptions.from_config(config).convention == "rgb_uint8out"
  with pytest.raises(ValueError, match="no such config field"):
    run_config.config_following_run("eval", None, [("data.evl", "x")], workdir)
  # Training never silently takes a workdir's config for its overrides.
  with pytest.raises(ValueError, match="overrides need --config=FILE"):
    run_config.config_following_run("train", None, [("batch_size", "2")], workdir)
  assert run_config.config_following_run("eval", None, [], workdir) == (None, None)


def test_eval_with_config_keeps_the_stored_protocol_and_says_so(tmp_path):
  workdir = _imported_like_run(tmp_path, **{"eval.crop_border": 4})
  said = []
  config, _ = run_config.config_following_run("eval", "configs/dncnn.py", [], workdir,
                                              say=said.append)
  assert config.eval.quantize is True and config.eval.crop_border == 4
  assert evaluator.EvalOptions.from_config(config).convention == "rgb_crop4_uint8out"
  assert len(said) == 2 and all("kept from" in line for line in said)
  assert any("eval.quantize=true kept" in line for line in said)
  # The command line still decides, and the difference from the run's protocol is printed.
  said.clear()
  config, _ = run_config.config_following_run(
      "eval", "configs/dncnn.py", [("eval.quantize", "false")], workdir, say=said.append)
  assert config.eval.quantize is False and config.eval.crop_border == 4
  assert any(re.search(r"--config.eval.quantize=false differs from the run's stored true",
                       line) for line in said)
  # Training with --config is untouched by a workdir's stored protocol.
  config, _ = run_config.config_following_run("train", "configs/dncnn.py", [], workdir)
  assert config.eval.quantize is False


def test_unreadable_stored_config_falls_back_to_the_given_one(tmp_path):
  workdir = str(tmp_path / "run")
  os.makedirs(workdir)
  with open(os.path.join(workdir, "config.json"), "w") as f:
    f.write("{not json")
  said = []
  config, _ = run_config.config_following_run("eval", "configs/dncnn.py", [], workdir,
                                              say=said.append)
  assert config.eval.quantize is False
  assert len(said) == 1 and "not a readable JSON config" in said[0]


def test_config_accepts_a_runs_config_json(tmp_path):
  workdir = _imported_like_run(tmp_path)
  config, path = cli.load_config(os.path.join(workdir, "config.json"),
                                 [("total_steps", "7")])
  assert config.total_steps == 7 and config.eval.quantize is True
  with pytest.raises(ValueError, match="takes no arguments"):
    cli.load_config(os.path.join(workdir, "config.json") + ":quick")
  bad = tmp_path / "bad.json"
  bad.write_text("[1, 2]")
  with pytest.raises(ValueError, match="not a run's config.json"):
    cli.load_config(str(bad))


@pytest.mark.parametrize("content,match", [
    ("{broken", "not a readable JSON config"),
    ('{"a": 1}', "not a run's config.json"),
])
def test_launch_config_json_errors_are_one_line(tmp_path, content, match):
  path = tmp_path / "config.json"
  path.write_text(content)
  proc = subprocess.run([sys.executable, os.path.join(ROOT, "launch.py"), "--mode=eval",
                         f"--config={path}", f"--workdir={tmp_path}"],
                        capture_output=True, text=True, timeout=120)
  assert proc.returncode == 2, proc.stderr
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: ") and match in lines[0], proc.stderr


def test_configs_mode_prints_only_fields_that_differ_from_default():
  config, _ = cli.load_config("configs/dncnn.py:quick")
  text = run_config.differences_from_default(config)
  lines = dict(line.split(": ", 1) for line in text.splitlines())
  assert lines["model.name"] == '"dncnn"'
  assert "eval.seed" not in lines and "data.channels" in lines  # dncnn is gray; default RGB
  default, _ = cli.load_config("configs/default.py")
  assert run_config.differences_from_default(default) == (
      "(no field differs from configs/default.py)")


def _readme_command(marker: str) -> list[str]:
  """The README command (continuation lines joined) that contains `marker`."""
  with open(os.path.join(ROOT, "README.md")) as f:
    text = f.read().replace("\\\n", " ")
  (line,) = [ln for ln in text.splitlines() if marker in ln and ln.startswith("python")]
  return shlex.split(line.split("#")[0])


def test_readme_eval_of_imported_weights_keeps_the_papers_protocol(tmp_path):
  """The README's eval command for the imported CDnCNN: runs without --config and scores with
  the protocol the import stored (rgb_uint8out), not a config file's."""
  argv = _readme_command("--mode=eval --workdir=runs/cdncnn_b")
  assert not any(a.startswith("--config=") for a in argv)
  _, overrides = cli.split_overrides(argv)
  workdir = _imported_like_run(tmp_path)
  config, _ = run_config.config_following_run("eval", None, overrides, workdir)
  assert evaluator.EvalOptions.from_config(config).convention == "rgb_uint8out"
  assert config.data.eval.endswith("denoise/test/CBSD68")
  assert json.loads(json.dumps(run_log.plain(config.eval.sweep)))  # the stored sigma levels
