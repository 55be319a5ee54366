"""`launch.py --mode=import`: published weights -> a workdir that eval and restore use.

  python launch.py --mode=import --config=configs/dncnn.py \\
    --from=../shared/data/pretrained/dncnn/dncnn_s25.mat --workdir=runs/dncnn_s25_published

  python launch.py --mode=import --config=configs/ffdnet.py \\
    --from=../shared/data/pretrained/ffdnet/FFDNet_gray.mat --workdir=runs/ffdnet_gray_published

Reads the MatConvNet file (`dncnn.import_dncnn`; an FFDNet, recognised by its first
layer, with `ffdnet.import_ffdnet` and task 'ffdnet'), sets the imported architecture and the
paper's eval protocol (`dncnn.eval_overrides`: whole images, RGB PSNR on outputs rounded
to uint8) on top of `--config`, and writes config.json + best/0/ (variables and meta) with
`trained_run.export`. The workdir is then like a trained run's: `--mode=eval`, `--mode=restore`
and `--config.init_from=WORKDIR` (fine-tuning) read it.
"""

from __future__ import annotations

import ml_collections
from absl import logging

from restoration.runtime import trained_run
from restoration.weights import dncnn
from restoration.weights import ffdnet


def run(config: ml_collections.ConfigDict, workdir: str, from_path: str) -> str:
  """Imports `from_path` into `workdir`; returns the workdir. Refuses an existing best/."""
  if ffdnet.is_ffdnet(from_path):
    model_config, variables = ffdnet.import_ffdnet(from_path)
    overrides, task = ffdnet.eval_overrides(model_config), "ffdnet"
  else:
    model_config, variables = dncnn.import_dncnn(from_path)
    overrides, task = dncnn.eval_overrides(model_config), "supervised"
  config = ml_collections.ConfigDict(config.to_dict())
  config.update_from_flattened_dict(
      {k: ml_collections.ConfigDict(v) if isinstance(v, dict) else v
       for k, v in overrides.items()})
  meta = {"task": task, "channels": int(model_config["channels"]),
          "model": {"name": model_config["name"], "kwargs": dict(model_config["kwargs"]),
                    "dtype": "float32"}}
  trained_run.export(workdir, config, variables, meta, step=0)
  logging.info("imported %s into %s (%s, %d conv layers)", from_path, workdir,
               model_config["name"], model_config["kwargs"]["depth"])
  print(f"imported {from_path} -> {workdir}: evaluate with --mode=eval --workdir={workdir}, "
        f"restore with --mode=restore --workdir={workdir}", flush=True)
  return workdir
