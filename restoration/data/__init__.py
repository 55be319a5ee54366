"""Input data: spec-named image sources, grain train/eval pipelines, device-resident mode.

Public API (see the submodules' docstrings for details):
  open_sources(config, *, process_count=None, local_device_count=None) -> Sources(train, eval)
  make_train_data(config, source=None, *, process_index=0, process_count=1, local_device_count=None)
      -> TrainData  (iterator of uint8 [D, B, P, P, C]; get_state() / set_state(state))
  load_eval_images(config, source=None) -> EvalImages: list[(name, uint8 HWC)] + set_name,
      set_size, crop, label ("BSD68: 4 of 68 images, 64 px crops")
  eval_batches(images, *, batch_size, process_index=0, process_count=1,
               local_device_count=None) -> Iterator[{'image', 'valid', 'index'}]
  load_device_data(config, source=None) -> DeviceData(images, sizes)
  sample_patches(key, images, sizes, *, batch_size, patch_size, augment) -> uint8 [B, P, P, C]
  open_source(spec, channels, *, split='train', tfds_data_dir='') -> Source

Specs: builtin | folder:PATH | npz:GLOB | tfds:NAME[:SPLIT] (restoration.data.sources).
"""

from restoration.data.device import DeviceData
from restoration.data.device import load_device_data
from restoration.data.device import sample_patches
from restoration.data.eval_images import EvalImages
from restoration.data.eval_images import describe_set
from restoration.data.eval_images import eval_batches
from restoration.data.eval_images import load_eval_images
from restoration.data.pipeline import make_train_data
from restoration.data.pipeline import TrainData
from restoration.data.pipeline import open_sources
from restoration.data.pipeline import Sources
from restoration.data.sources import BUILTIN_EVAL
from restoration.data.sources import BUILTIN_TRAIN
from restoration.data.sources import IMAGE_EXTENSIONS
from restoration.data.sources import Source
from restoration.data.specs import open_source

__all__ = [
    "BUILTIN_EVAL", "BUILTIN_TRAIN", "DeviceData", "EvalImages", "IMAGE_EXTENSIONS", "Source",
    "TrainData", "describe_set",
    "eval_batches", "load_device_data", "load_eval_images", "make_train_data", "open_source",
    "open_sources", "sample_patches", "Sources",
]
