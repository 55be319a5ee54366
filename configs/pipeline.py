"""Chained restore of damaged gray photos: mask -> colourise -> inpaint (restoration.modes.chained).

  python launch.py --config=configs/mask.py --workdir=runs/mask
  python launch.py --config=configs/colorize.py --workdir=runs/colorize
  python launch.py --config=configs/inpaint.py --workdir=runs/inpaint
  python launch.py --config=configs/damaged_gray.py --workdir=runs/damaged_gray  # baseline
  python launch.py --mode=restore --config=configs/pipeline.py --workdir=runs/pipeline \\
    --input='old_photos/*.png' --output=restored/
  python launch.py --mode=eval --config=configs/pipeline.py --workdir=runs/pipeline

Arguments: `laptop` (the `:quick` runs, in runs/*_quick, evaluated on 64 px centre crops as
their own evals are). --workdir is not read in chained restore (launch.py requires one); eval
writes its rows to <workdir>/eval/ (restoration.modes.chained_eval: each stage, end to end, and the
single U-Net of pipeline.single). Eval data: the colourisation run's, builtin:color (a gray
photo would make colourisation exact); real data: --config.data.eval=folder:PATH. Override a
stage with e.g. --config.pipeline.mask=runs/other_mask; --config.pipeline.single='' skips
the baseline.
"""

from configs import common


def get_config(arg: str | None = None):
  a = common.parse_arg(arg, laptop=False)
  c = common.base()
  suffix = "_quick" if a.laptop else ""
  c.pipeline.mask = f"runs/mask{suffix}"
  c.pipeline.colorize = f"runs/colorize{suffix}"
  c.pipeline.inpaint = f"runs/inpaint{suffix}"
  c.pipeline.single = f"runs/damaged_gray{suffix}"
  c.pipeline.save_masks = True
  c.data.eval = "builtin:color"
  if a.laptop:
    c.data.eval_crop = 64
  return c
