"""Every quick variant, in every argument combination, learns: it ends above its input PSNR.

Slow (each case is a full quick run: 300 steps, minutes on 2 CPU cores); the cases are
`benchmarks/quick_configs.CASES`, which also prints the table in WORKSPACE.md.
"""

import os

import jax
import pytest

from benchmarks import quick_configs
from restoration import cli
from restoration import corruptions
from restoration.modes import train
from tests import test_configs


def test_cases_cover_every_config_argument():
  """Each argument test_configs knows for a config appears in one of its quick cases."""
  for name, args in test_configs.ARGS.items():
    if name in quick_configs.NOT_TRAINED:
      continue
    used = {item.split("=")[0] for case in quick_configs.CASES if case.startswith(name + ":")
            for item in case.split(":", 1)[1].split(",")}
    wanted = {item.split("=")[0] for arg in args for item in arg.split(",") if item}
    wanted -= quick_configs.NOT_LEARNING.get(name, set())  # documented there, with numbers
    wanted -= quick_configs.FULL_SIZE_ONLY.get(name, set())
    assert wanted <= used, (name, wanted - used)


@pytest.mark.slow
@pytest.mark.parametrize("case", [
    pytest.param(c, marks=test_configs.skip_without_data(c.split(":")[0], c))
    for c in quick_configs.CASES])
def test_quick_case_ends_above_its_input(tmp_path, case):
  config, _ = cli.load_config(os.path.join("configs", case))
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(config, workdir, devices=jax.local_devices()[:1])
  last = quick_configs.last_eval(workdir)
  assert last["step"] == config.total_steps
  assert last["psnr"] > last["input_psnr"], last
