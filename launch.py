"""Entry point: flags + config + one call.

  python launch.py --config=configs/unet1024.py --workdir=runs/unet1024             # train
  python launch.py --mode=eval --config=configs/unet1024.py --workdir=runs/unet1024  # evaluate
  python launch.py --mode=restore --workdir=runs/unet1024 --input='photos/*.png' --output=out/
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

config_flags.DEFINE_config_file("config", None, "Config file, optionally with :arg.",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and pictures.",
                    required=True)
flags.DEFINE_enum("mode", "train", ["train", "eval", "restore"], "What to do.")
flags.DEFINE_integer("step", None, "eval/restore: checkpoint step (default: the best).")
flags.DEFINE_string("input", None, "restore: an image file, a folder or a glob.")
flags.DEFINE_string("output", None, "restore: output folder (inputs are never overwritten).")
flags.DEFINE_bool("overwrite", False, "restore: replace existing output files.")
FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  from restoration import run  # pylint: disable=g-import-not-at-top
  run.main(FLAGS.mode, FLAGS.config, FLAGS.workdir, step=FLAGS.step, input_path=FLAGS.input,
           output_dir=FLAGS.output, overwrite=FLAGS.overwrite)


if __name__ == "__main__":
  app.run(main)
