"""The command line: config files found from anywhere, overrides, listing, one-line errors."""

import os
import subprocess
import sys

import pytest

from restoration import cli

ROOT = cli.ROOT


def test_overrides_parse_by_field_type_and_lists_take_json(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)  # a relative --config is found beside the launcher
  argv, overrides = cli.split_overrides([
      "launch.py", "--config.corruption", '[{"name": "gaussian_noise", "sigma": 15}]',
      "--config.optimizer.decay_steps=(0.3, 0.6)", "--config.data.augment=false",
      "--config.batch_size=32", "--config.optimizer.learning_rate=2e-4",
      "--config.model.kwargs.residual=True", "--config.loss={'l1': 1.0}", "--workdir=w"])
  assert argv == ["launch.py", "--workdir=w"]
  config, path = cli.load_config("configs/dncnn.py:quick", overrides)
  assert path == os.path.join(ROOT, "configs", "dncnn.py") + ":quick"
  assert config.corruption == [{"name": "gaussian_noise", "sigma": 15}]
  assert config.optimizer.decay_steps == (0.3, 0.6)
  assert config.data.augment is False and config.batch_size == 32
  assert config.optimizer.learning_rate == 2e-4
  assert config.model.kwargs.to_dict() == {"depth": 5, "features": 16, "residual": True}
  assert config.loss.to_dict() == {"l1": 1.0}
  with pytest.raises(AttributeError):  # locked after the overrides: code typos fail too
    config.batchsize = 3


@pytest.mark.parametrize("key,value,match", [
    ("batchsize", "32", r"^--config\.batchsize: no such config field; did you mean "
                        r"--config\.batch_size\?"),
    ("optimizer.learnig_rate", "1", r"did you mean --config\.optimizer\.learning_rate\?"),
    ("data.augment", "maybe", "a flag; use true or false"),
    ("total_steps", "1e3", "an integer is expected"),
    ("corruption", "[{name: x}]", "not JSON or a Python literal"),
    ("corruption", '{"name": "x"}', "expected a list"),
    ("model.kwargs.depth.x", "1", "is a value, not a group"),
])
def test_bad_overrides_name_the_field(key, value, match):
  with pytest.raises(ValueError, match=match):
    cli.load_config("configs/dncnn.py:quick", [(key, value)])


@pytest.mark.parametrize("spec,match", [
    ("configs/default.py:quick", "takes no arguments"),
    ("configs/dncnn.py:quick,sigmaa=3", "unknown config argument 'sigmaa'"),
    ("configs/nope.py", r"no config file 'configs/nope.py'.*known: .*configs/dncnn.py"),
])
def test_bad_config_files_and_arguments(spec, match):
  with pytest.raises((ValueError, FileNotFoundError), match=match):
    cli.load_config(spec)


def test_listing_names_every_config_with_its_arguments():
  rows = {path: (first, args) for path, first, args in cli.config_table()}
  configs = [f"configs/{n}" for n in os.listdir(os.path.join(ROOT, "configs"))
             if n.endswith(".py") and n not in ("__init__.py", "common.py")]
  assert set(configs) <= set(rows)
  for path in configs:
    assert rows[path][0], path  # a one-line description
    if not path.endswith("default.py"):
      assert "quick" in rows[path][1], path
  assert "`sigma=N`" in rows["configs/dncnn.py"][1]


def test_user_error_is_one_line_and_exit_2(capsys):
  def bad():
    raise FileNotFoundError("no such data: folder:/nope")
  with pytest.raises(SystemExit) as e:
    cli.run_guarded(bad)
  assert e.value.code == 2
  assert capsys.readouterr().err == "error: no such data: folder:/nope\n"
  with pytest.raises(SystemExit) as e:  # --debug: the traceback too, the same status
    cli.run_guarded(bad, debug=True)
  err = capsys.readouterr().err
  assert e.value.code == 2 and err.startswith("Traceback") and "raise FileNotFoundError" in err
  assert err.endswith("\nerror: no such data: folder:/nope\n")
  with pytest.raises(KeyError):  # a bug is never hidden
    cli.run_guarded(lambda: {}["x"])


def _launch(tmp_path, *args):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, os.path.join(ROOT, "launch.py"), *args],
                        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_launch_typo_bad_flag_and_listing_in_a_subprocess(tmp_path):
  """From another directory: a relative --config is found; errors are one line, exit 2."""
  out = _launch(tmp_path, "--config=configs/dncnn.py:quick", "--config.batchsize=32",
                f"--workdir={tmp_path / 'w'}")
  assert out.returncode == 2
  assert out.stderr.splitlines() == [
      "error: --config.batchsize: no such config field; did you mean --config.batch_size? "
      "(every field is documented in configs/default.py)"]
  out = _launch(tmp_path, "--mode=nope")
  assert out.returncode == 2 and len(out.stderr.splitlines()) == 1
  assert out.stderr.startswith("error: flag --mode=nope")
  out = _launch(tmp_path, "--mode=configs")
  assert out.returncode == 0 and "configs/unet1024.py" in out.stdout
  out = _launch(tmp_path, "--mode=configs", "--config=configs/dncnn.py:quick",
                '--config.corruption=[{"name": "gaussian_noise", "sigma": 15}]')
  assert out.returncode == 0  # only the fields that differ from default.py
  assert 'corruption: [{"name": "gaussian_noise", "sigma": 15}]' in out.stdout
  assert "fields that differ from configs/default.py" in out.stdout
  assert "eval.seed" not in out.stdout
  out = _launch(tmp_path, "--help")
  assert out.returncode == 0 and "configs/cnn_blocks.py" in out.stdout
  assert not os.path.exists(tmp_path / "w")
