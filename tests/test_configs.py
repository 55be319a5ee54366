"""Every config file loads (with each argument) and its model initialises (no compute)."""

import glob
import os

import jax
import jax.numpy as jnp
import ml_collections
import pytest
from ml_collections import config_flags

from configs import common
from restoration import corruptions
from restoration import losses
from restoration import optim
from restoration import state as state_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "configs", "*.py"))
                 if not os.path.basename(p).startswith(("_", "common", "default")))
ARGS = {
    "unet1024.py": ["", "quick", "levin"],
    "unet512.py": ["", "quick"],
    "dncnn.py": ["", "quick", "sigma=50", "blind", "color", "quick,sigma=15"],
    "cnn_blocks.py": ["", "quick", "blocks=50", "blocks=100"],
    "lowlight.py": ["", "quick", "amount=0.05"],
    "cvt.py": ["", "quick"],
}
HAVE_KERNELS = os.path.isdir(corruptions.DEFAULT_KERNEL_DIR)
CASES = [pytest.param(name, arg, marks=pytest.mark.skipif(
             "levin" in arg and not HAVE_KERNELS, reason="Levin09 kernels not beside the repo"))
         for name in CONFIGS for arg in ARGS.get(name, [""])]


def load(name: str, arg: str) -> ml_collections.ConfigDict:
  path = os.path.join(ROOT, "configs", name)
  return config_flags.config_flags._LoadConfigModule(f"{name}_config", path).get_config(arg or None)


def test_every_config_has_args_listed():
  assert set(CONFIGS) == set(ARGS), "add the new config's arguments to ARGS"


@pytest.mark.parametrize("name,arg", CASES)
def test_config_loads_and_model_initialises(name, arg):
  c = load(name, arg)
  default_keys = set(common.base().to_dict())
  assert set(c.to_dict()) == default_keys, "configs must only override documented fields"
  model = state_lib.build_model(c)
  tx, _ = optim.make_optimizer(c)
  losses.validate(dict(c.loss))
  corruptions.validate(list(c.corruption), image_shape=(c.patch_size, c.patch_size))
  for specs in c.eval.sweep.values():
    corruptions.validate(list(specs))
  abstract = state_lib.abstract_train_state(c, model, tx)
  n_params = sum(x.size for x in jax.tree.leaves(abstract.params))
  assert n_params > 1000
  out = jax.eval_shape(lambda v, x: model.apply(v, x, train=False),
                       {"params": abstract.params, **({"batch_stats": abstract.batch_stats}
                                                      if abstract.batch_stats else {})},
                       jax.ShapeDtypeStruct(state_lib.input_shape(c, 2), jnp.float32))
  assert out.shape == state_lib.input_shape(c, 2)
  if "quick" in arg:
    assert c.total_steps <= 500 and n_params < 200_000  # CPU-sized


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


def test_patchgan_is_not_a_restorer():
  c = common.base()
  c.model.name = "patchgan"
  with pytest.raises(ValueError, match="discriminator"):
    state_lib.build_model(c)
