"""Every config file loads (with each argument) and its model initialises (no compute)."""

import glob
import importlib.util
import os

import jax
import jax.numpy as jnp
import ml_collections
import pytest

from configs import common
from configs import dncnn
from restoration import corruptions
from restoration import tasks

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "configs", "*.py"))
                 if not os.path.basename(p).startswith(("_", "common", "default")))
ARGS = {
    "unet1024.py": ["", "quick", "levin"],
    "unet512.py": ["", "quick"],
    "dncnn.py": ["", "quick", "sigma=50", "blind", "color", "quick,sigma=15", "kair",
                 "kair,loss=mse", "cpu=60", "cpu=60,batch=64", "gpu=5"],
    "ffdnet.py": ["", "quick", "color", "clip", "spatial", "kair", "quick,color,spatial"],
    "cnn_blocks.py": ["", "quick", "blocks=50", "blocks=100"],
    "cifar_study.py": ["", "quick", "blocks=50", "blocks=100,seed=2", "quick,test",
                       "beat=10,mask", "beat=10,mask,train_blocks=50"],
    "lowlight.py": ["", "quick", "amount=0.05"],
    "cvt.py": ["", "quick"],
    "pix2pix.py": ["", "quick", "blocks", "loss=lsgan", "quick,blocks,loss=hinge"],
    "colorize.py": ["", "quick"],
    "mask.py": ["", "quick"],
    "inpaint.py": ["", "quick", "gan", "quick,gan"],
    "damaged_gray.py": ["", "quick"],
    "pipeline.py": ["", "laptop"],
    "pixelcnn.py": ["", "quick", "corruption=blocks", "quick,corruption=blocks,blocks=50",
                    "sigma=50"],
}
HAVE_KERNELS = os.path.isdir(corruptions.DEFAULT_KERNEL_DIR)
HAVE_CIFAR = os.path.isdir(os.path.join(ROOT, "..", "shared", "data", "cifar10"))


def skip_without_data(name: str, arg: str):
  """Marks for a case whose data (beside the repo, ../shared/data) is absent."""
  return [pytest.mark.skipif("levin" in arg and not HAVE_KERNELS,
                             reason="Levin09 kernels not beside the repo"),
          pytest.mark.skipif(name == "cifar_study.py" and not HAVE_CIFAR,
                             reason="CIFAR-10 npz not beside the repo")]


CASES = [pytest.param(name, arg, marks=skip_without_data(name, arg))
         for name in CONFIGS for arg in ARGS.get(name, [""])]


def load(name: str, arg: str) -> ml_collections.ConfigDict:
  spec = importlib.util.spec_from_file_location(f"config_{name[:-3]}",
                                                os.path.join(ROOT, "configs", name))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg or None)


def test_every_config_has_args_listed():
  assert set(CONFIGS) == set(ARGS), "add the new config's arguments to ARGS"


@pytest.mark.parametrize("name,arg", CASES)
def test_config_loads_and_model_initialises(name, arg):
  c = load(name, arg)
  default_keys = set(common.base().to_dict())
  assert set(c.to_dict()) == default_keys, "configs must only override documented fields"
  task = tasks.build(c, local_device_count=1, process_count=1)  # checks every field it reads
  abstract = task.abstract_state()
  n_params = sum(x.size for x in jax.tree.leaves(abstract.params))
  assert n_params > 1000
  out = jax.eval_shape(task.inference.predict, task.inference_variables(abstract),
                       jax.ShapeDtypeStruct(task.input_shape(2), jnp.float32))
  assert out.shape == task.output_shape(2)
  if "quick" in arg:
    assert c.total_steps <= 1000 and n_params < 200_000  # CPU-sized (blind DnCNN: 1000)


def test_quick_and_full_differ_for_main_job():
  full, quick = load("unet1024.py", ""), load("unet1024.py", "quick")
  assert full.model.name == "unet1024" and full.patch_size == 128
  assert quick.total_steps < full.total_steps


@pytest.mark.parametrize("arg,match", [("sigma=abc,nope", "nope"), ("quick=3", "flag")])
def test_bad_config_argument(arg, match):
  with pytest.raises(ValueError, match=match):
    load("dncnn.py", arg)


def test_cnn_blocks_rejects_unknown_level():
  with pytest.raises(ValueError, match="blocks"):
    load("cnn_blocks.py", "blocks=7")


@pytest.mark.parametrize("arg,match", [("corruption=blur", "corruption"), ("blocks=7", "blocks")])
def test_pixelcnn_rejects_unknown_corruption(arg, match):
  with pytest.raises(ValueError, match=match):
    load("pixelcnn.py", arg)


def test_patchgan_is_not_a_restorer():
  c = common.base()
  c.model.name = "patchgan"
  with pytest.raises(ValueError, match="discriminator"):
    tasks.build_restorer(c.model)


@pytest.mark.parametrize("arg,match", [("cpu=-5", "cpu is a training budget"),
                                       ("gpu=abc", "gpu is a training budget"),
                                       ("cpu=60,gpu=5", "exclude each other"),
                                       ("kair,loss=l2", "loss is l1 or mse"),
                                       ("loss=mse", "applies to the kair"),
                                       ("batch=32", "applies to the cpu=MINUTES"),
                                       ("cpu=60,batch=48", r"batch is one of \[16, 32, 64\]"),
                                       ("cpu=60,batch=True", r"batch is one of")])
def test_dncnn_budget_arguments_checked(arg, match):
  with pytest.raises(ValueError, match=match):
    load("dncnn.py", arg)


def test_dncnn_budget_schedules_fill_the_budget():
  """cpu=/gpu= fit the cosine to the steps the budget holds: twice the minutes, ~twice the
  steps; gpu= trains the paper's batch from device-resident data."""
  cpu30, cpu60 = load("dncnn.py", "cpu=30"), load("dncnn.py", "cpu=60")
  assert 1.9 < cpu60.total_steps / cpu30.total_steps < 2.1
  # The steps, the start-up and the closing BN re-estimation fit in the 60 minutes, at each
  # measured batch size; half the batch, about twice the steps.
  steps = {}
  for batch, step_s in dncnn.CPU_STEP_S.items():
    c = load("dncnn.py", f"cpu=60,batch={batch}")
    assert c.batch_size == batch and c.precise_bn_batches == dncnn.CPU_PRECISE_BN_BATCHES > 0
    closing = c.precise_bn_batches * dncnn.CPU_PRECISE_BN_STEP_FRACTION * step_s
    used = c.total_steps * step_s + dncnn.CPU_START_S + closing
    assert 60 * 60 - step_s < used <= 60 * 60
    steps[batch] = c.total_steps
  assert cpu60.batch_size == dncnn.CPU_BATCH and cpu60.total_steps == steps[dncnn.CPU_BATCH]
  assert 1.8 < steps[32] / steps[64] < 2.3 and 1.8 < steps[16] / steps[32] < 2.3
  gpu = load("dncnn.py", "gpu=10")
  assert gpu.batch_size == 128 and gpu.data.on_device and gpu.optimizer.schedule == "cosine"
  assert gpu.total_steps > cpu60.total_steps   # a GPU step is ~100x faster than a CPU one
  assert gpu.model.kwargs["weight_init"] == "orthogonal"


def test_dncnn_loss_argument_swaps_only_the_loss():
  """`loss=mse` is the recipe with MSE for L1 and nothing else changed (the factor table)."""
  l1, mse = load("dncnn.py", "cpu=60").to_dict(), load("dncnn.py", "cpu=60,loss=mse").to_dict()
  assert l1.pop("loss") == {"l1": 1.0} and mse.pop("loss") == {"mse": 1.0}
  assert l1 == mse
