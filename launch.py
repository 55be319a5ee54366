"""Entry point: flags + config + one call.

  python launch.py --config=configs/unet1024.py --workdir=runs/unet1024             # train
  python launch.py --mode=eval --workdir=runs/unet1024     # evaluate with the run's own config
  python launch.py --mode=restore --workdir=runs/unet1024 --input='photos/*.png' --output=out/
  python launch.py --mode=restore --workdir=runs/ffdnet --sigma=25 --input=noisy.png --output=out/
  python launch.py --mode=sweep --config=configs/sweeps/unet_bottleneck.py:quick --workdir=runs/ub
  python launch.py --mode=import --config=configs/dncnn.py --from=W.mat --workdir=runs/dncnn_pub
  python launch.py --mode=configs                      # every config, its purpose and arguments
  python launch.py --mode=configs --config=configs/dncnn.py:quick   # where it differs from default.py

Override any field with --config.FIELD=VALUE (documented in configs/default.py); lists take
JSON: --config.corruption='[{"name": "gaussian_noise", "sigma": 15}]'.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from restoration import cli  # noqa: E402

__doc__ += "\n" + cli.describe_configs() + "\n"  # what --help prints above the flags
flags.DEFINE_string("config", None, "Config file PATH[:ARG,...] (listed above); relative to "
                    "the current directory or to this launcher.")
flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and pictures.")
flags.DEFINE_enum("mode", "train", ["train", "eval", "restore", "sweep", "import", "configs"],
                  "What to do (import: published weights -> a workdir; configs: list the "
                  "configs, or print where --config differs from configs/default.py).")
flags.DEFINE_integer("step", None, "eval/restore: checkpoint step (default: the best). "
                     "train: resume from this kept checkpoint (0: start over); later "
                     "checkpoints are moved to <workdir>/rewound/.")
flags.DEFINE_string("input", None, "restore: an image file, a folder or a glob.")
flags.DEFINE_string("output", None, "restore: output folder (inputs are never overwritten).")
flags.DEFINE_bool("overwrite", False, "restore: replace existing output files.")
flags.DEFINE_bool("skip_existing", False, "restore: leave inputs whose output exists alone "
                  "(resume an interrupted restore).")
flags.DEFINE_float("sigma", None, "restore, FFDNet runs: the noise level on the 0-255 scale "
                   "(default: estimated per image).")
flags.DEFINE_string("sigma_map", None, "restore, FFDNet runs: a grayscale image of the "
                    "input's size whose gray level (0-255) is the sigma at each pixel.")
flags.DEFINE_enum("sweep_emit", "none", ["none", "slurm"],
                  "sweep: run every run here (none) or write a SLURM job array (slurm).")
flags.DEFINE_string("from", None, "import: published weights to import (a DnCNN .mat file).")
flags.DEFINE_bool("debug", False, "Show full tracebacks for user errors (bad config, data).")
FLAGS = flags.FLAGS


def main(args: cli.Args):
  if len(args.argv) > 1:
    cli.fail(f"unexpected arguments {args.argv[1:]} (flags are --name=value)")
  cli.run_guarded(lambda: _run(args.overrides), debug=FLAGS.debug)


def _run(overrides):
  from restoration import run_config  # pylint: disable=g-import-not-at-top
  if FLAGS.mode == "configs":
    if not FLAGS.config:
      if overrides:
        raise ValueError("--config.* overrides need --config=FILE")
      print(cli.describe_configs())
      return
    config, config_path = cli.load_config(FLAGS.config, overrides)
    print(f"{config_path}: the fields that differ from configs/default.py (every field is "
          f"documented there)\n{run_config.differences_from_default(config)}")
    return
  config, config_path = run_config.config_following_run(FLAGS.mode, FLAGS.config, overrides,
                                                        FLAGS.workdir)
  if not FLAGS.workdir:
    raise ValueError(f"--workdir is required for --mode={FLAGS.mode}")
  from restoration import modes  # pylint: disable=g-import-not-at-top
  modes.main(FLAGS.mode, config, FLAGS.workdir, step=FLAGS.step, input_path=FLAGS.input,
           output_dir=FLAGS.output, overwrite=FLAGS.overwrite, sweep_emit=FLAGS.sweep_emit,
           config_path=config_path, from_path=FLAGS["from"].value, sigma=FLAGS.sigma,
           sigma_map=FLAGS.sigma_map, skip_existing=FLAGS.skip_existing)


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_argv)
