"""U-Net deblurring of 128x128 RGB crops with a 512-channel bottleneck.

Identical to configs/unet1024.py (same task, data, optimizer, arguments `quick` and `levin`)
except for the bottleneck width, so the two runs compare the bottleneck alone:

  python launch.py --config=configs/unet512.py --workdir=runs/unet512

Arguments: `quick`, `levin` (as in configs/unet1024.py).
"""

from configs import unet1024


def get_config(arg: str | None = None):
  c = unet1024.get_config(arg)
  if c.model.name == "unet1024":  # the quick variant uses a tiny `unet` either way
    c.model.name = "unet512"
  return c
