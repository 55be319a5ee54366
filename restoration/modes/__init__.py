"""The modes `launch.py --mode=...` runs; `main` (what launch.py calls) sets up the process and
dispatches.

  train           modes.train           the training loop (evaluating as it goes)
  eval            modes.evaluate        checkpoints -> eval/results.{json,md} (pipelines:
                                        chained_eval)
  restore         modes.restore         users' images -> restored files; chained for pipelines
  sweep           modes.sweep           a sweep's runs, here or as a SLURM array
  import          modes.import_weights  published weights -> a workdir

Each mode is imported when chosen, so a mode loads only what it needs."""

import importlib.util
import os
import logging as py_logging

import ml_collections
from absl import logging

from restoration import config_fields
from restoration.runtime import host_memory
from restoration.runtime import run_log
from restoration.runtime import parallel


def hide_tensorflow_from_accelerators() -> None:
  """tfds may import TensorFlow; it must not grab GPU/TPU memory that JAX needs."""
  if importlib.util.find_spec("tensorflow") is None:
    return
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.config.set_visible_devices([], "GPU")
  tf.config.set_visible_devices([], "TPU")


class _QuietLibraries(py_logging.Filter):
  """Drops INFO chatter of the libraries (Orbax logs every save); their warnings still show."""

  NOISY = ("/orbax/", "/grain/", "/jax/", "/tensorflow_datasets/")

  def filter(self, record: py_logging.LogRecord) -> bool:
    return record.levelno >= py_logging.WARNING or not any(
        s in record.pathname for s in self.NOISY)


def main(mode: str, config: ml_collections.ConfigDict | None, workdir: str, *,
         step: int | None = None, input_path: str | None = None,
         output_dir: str | None = None, overwrite: bool = False,
         sweep_emit: str = "none", config_path: str | None = None,
         from_path: str | None = None, sigma: float | None = None,
         sigma_map: str | None = None, skip_existing: bool = False) -> None:
  if (sigma is not None or sigma_map) and mode != "restore":
    raise ValueError(f"--sigma/--sigma_map apply to --mode=restore (of an FFDNet run), not "
                     f"--mode={mode}")
  logging.get_absl_handler().addFilter(_QuietLibraries())
  hide_tensorflow_from_accelerators()
  host_memory.configure()   # like distributed, before any JAX call starts the backend
  parallel.maybe_initialize_distributed()
  if config is None:
    if mode in ("train", "sweep", "import"):
      raise ValueError(f"--config is required for --mode={mode}")
    config = run_log.read_config(workdir)
  if mode in ("eval", "restore"):  # train checks in train_and_evaluate; sweep has its own
    config_fields.check(config, config_path or os.path.join(workdir, "config.json"))
  logging.info("mode=%s workdir=%s", mode, workdir)
  if mode == "train":
    from restoration.modes import train  # pylint: disable=g-import-not-at-top
    train.train_and_evaluate(config, workdir, step=step)
  elif mode == "eval":
    from restoration.modes import evaluate  # pylint: disable=g-import-not-at-top
    evaluate.run(config, workdir, step=step)
  elif mode == "restore":
    if not input_path or not output_dir:
      raise ValueError("--mode=restore needs --input (file, folder or glob) and --output")
    from restoration.modes import restore  # pylint: disable=g-import-not-at-top
    restore.run(config, workdir, input_path, output_dir, step=step, overwrite=overwrite,
                sigma=sigma, sigma_map=sigma_map, skip_existing=skip_existing)
  elif mode == "sweep":
    from restoration.modes import sweep  # pylint: disable=g-import-not-at-top
    sweep.run(config, workdir, config_path=config_path, emit=sweep_emit)
  elif mode == "import":
    if not from_path:
      raise ValueError("--mode=import needs --from=PATH (e.g. a released DnCNN .mat file)")
    from restoration.modes import import_weights  # pylint: disable=g-import-not-at-top
    import_weights.run(config, workdir, from_path)
  else:
    raise ValueError(f"--mode={mode!r}; allowed: train, eval, restore, sweep, import")
