"""Chained restore of damaged gray photos: mask -> colourise -> inpaint (restoration.chained).

  python launch.py --config=configs/mask.py --workdir=runs/mask
  python launch.py --config=configs/colorize.py --workdir=runs/colorize
  python launch.py --config=configs/inpaint.py --workdir=runs/inpaint
  python launch.py --mode=restore --config=configs/pipeline.py --workdir=runs/pipeline \\
    --input='old_photos/*.png' --output=restored/

Arguments: `laptop` (the three stages' `:quick` runs, in runs/*_quick). --workdir is not read
in chained restore (launch.py requires one). Override a stage with e.g.
--config.pipeline.mask=runs/other_mask.
"""

from configs import common


def get_config(arg: str | None = None):
  a = common.parse_arg(arg, laptop=False)
  c = common.base()
  suffix = "_quick" if a.laptop else ""
  c.pipeline.mask = f"runs/mask{suffix}"
  c.pipeline.colorize = f"runs/colorize{suffix}"
  c.pipeline.inpaint = f"runs/inpaint{suffix}"
  c.pipeline.save_masks = True
  return c
