"""What launch.py calls: process set-up, then train, eval or restore."""

import importlib.util
import logging as py_logging

import ml_collections
from absl import logging

from restoration import logging as rlog
from restoration import parallel


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
         output_dir: str | None = None, overwrite: bool = False) -> None:
  logging.get_absl_handler().addFilter(_QuietLibraries())
  hide_tensorflow_from_accelerators()
  parallel.maybe_initialize_distributed()
  if config is None:
    if mode == "train":
      raise ValueError("--config is required for --mode=train")
    config = rlog.read_config(workdir)
  logging.info("mode=%s workdir=%s", mode, workdir)
  if mode == "train":
    from restoration import train  # pylint: disable=g-import-not-at-top
    train.train_and_evaluate(config, workdir)
  elif mode == "eval":
    from restoration import eval_mode  # pylint: disable=g-import-not-at-top
    eval_mode.run(config, workdir, step=step)
  elif mode == "restore":
    if not input_path or not output_dir:
      raise ValueError("--mode=restore needs --input (file, folder or glob) and --output")
    from restoration import restore  # pylint: disable=g-import-not-at-top
    restore.run(config, workdir, input_path, output_dir, step=step, overwrite=overwrite)
  else:
    raise ValueError(f"--mode={mode!r}; allowed: train, eval, restore")
