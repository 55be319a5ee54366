"""Tasks: what a run trains, built once from the config (`build`), run by the generic loop.

  supervised   corrupt clean crops on the device, regress them back (the default)
  adversarial  pix2pix: the restorer against a conditional PatchGAN (config.adversarial)
  paired       pairs:INPUT_DIR,TARGET_DIR data: (optionally corrupted) input -> target
  mask         predict the corruption chain's damage mask (logits; IoU/F1 eval)
  inpaint      fill the chain's holes given the image and its mask
  inpaint_adversarial  inpaint's network, input and loss as pix2pix's generator against a
               conditional PatchGAN judging the filled image (config.adversarial)
  ffdnet       denoising with the noise-level map as a second input (model 'ffdnet')
  autoregressive  a PixelCNN learns p(clean | corrupted) by exact NLL; decodes to restore

`config.task` picks one; see `restoration.tasks.base` for what a task owns.
"""

from __future__ import annotations

import ml_collections

from restoration.tasks.adversarial import AdversarialTask
from restoration.tasks.base import DISCRIMINATORS, Inference, Task, build_restorer
from restoration.tasks.autoregressive import AutoregressiveTask
from restoration.tasks.ffdnet import FFDNetTask
from restoration.tasks.inpaint import InpaintAdversarialTask, InpaintTask
from restoration.tasks.mask import MaskTask
from restoration.tasks.supervised import PairedTask, SupervisedTask

TASKS: dict[str, type[Task]] = {
    "supervised": SupervisedTask,
    "adversarial": AdversarialTask,
    "paired": PairedTask,
    "mask": MaskTask,
    "inpaint": InpaintTask,
    "inpaint_adversarial": InpaintAdversarialTask,
    "autoregressive": AutoregressiveTask,
    "ffdnet": FFDNetTask,
}


def build(config: ml_collections.ConfigDict, *, local_device_count: int,
          process_count: int) -> Task:
  """The task `config.task`, built and checked (ValueError naming the bad field)."""
  name = config.get("task", "supervised")
  if name not in TASKS:
    raise ValueError(f"config.task={name!r}; allowed: {sorted(TASKS)}")
  return TASKS[name](config, local_device_count=local_device_count,
                     process_count=process_count)


def inference_for(meta: dict, config: ml_collections.ConfigDict, **kwargs) -> Inference:
  """The inference side of a trained run's task, from its checkpoint meta and an eval config."""
  name = meta.get("task", "supervised")
  if name not in TASKS:
    raise ValueError(f"checkpoint of task {name!r}, which this version does not know; "
                     f"known: {sorted(TASKS)}")
  return TASKS[name].inference_class(meta, config, **kwargs)


__all__ = ["DISCRIMINATORS", "Inference", "TASKS", "Task", "build", "build_restorer",
           "inference_for"]
