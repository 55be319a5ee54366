"""Tests for restoration.corruptions: contract (shape, dtype, keys, jit, vmap), statistics,
chain/validate and parameter errors. Blurs, grayscale and JPEG against their references:
test_corruption_filters.py (which shares this file's cases and helpers)."""

import functools
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from restoration import corruptions as C

KEY = jax.random.key(0)

# One randomised configuration per corruption: ranges wherever a parameter allows them, so
# the per-image / per-key tests exercise the random draws.
CASES = {
    "random_blocks": dict(num_blocks=6, block_size=(3, 9), fill="noise"),
    "study_blocks": dict(num_blocks=20),
    "gaussian_noise": dict(sigma=(5.0, 50.0)),
    "gaussian_noise_map": dict(sigma=(5.0, 50.0), spatial=True),
    "salt_and_pepper": dict(amount=(0.05, 0.3), salt_ratio=0.5),
    "poisson_noise": dict(peak=(5.0, 60.0)),
    "speckle_noise": dict(sigma=(0.05, 0.3)),
    "low_light": dict(brightness=(0.1, 0.6), gamma=(1.0, 2.5)),
    "blur": dict(kernel="levin09:random"),
    "gaussian_blur": dict(sigma=(0.3, 2.0)),
    "motion_blur": dict(length=(3, 9), angle=None),
    "grayscale": dict(),
    "jpeg": dict(quality=(5, 60)),
}
DETERMINISTIC = {"grayscale"}  # ignores the key
# The real kernels live in ../shared/data beside the checkout (always there in CI).
needs_kernels = pytest.mark.skipif(
    not os.path.exists(os.path.join(C.DEFAULT_KERNEL_DIR, "levin09_kernels.npz")),
    reason=f"Levin09 kernels not found in {C.DEFAULT_KERNEL_DIR}")
NAMES = sorted(CASES)
PARAMS = [pytest.param(n, marks=needs_kernels) if n == "blur" else n for n in NAMES]
RANDOM_NAMES = [n for n in NAMES if n not in DETERMINISTIC]


def test_cases_cover_registry():
  assert set(CASES) == set(C.CORRUPTIONS)


@functools.lru_cache(maxsize=None)
def jitted(name):
  """One jitted callable per corruption, so shapes recompiled across tests are cached."""
  return jax.jit(functools.partial(C.CORRUPTIONS[name], **CASES[name]))


def rand_images(shape, seed=0):
  return jnp.asarray(np.random.default_rng(seed).random(shape, np.float32))


def run(fn, x, key=KEY, **params):
  """Jitted call: one compile is cheaper than eager dispatch of vmapped random ops."""
  return jax.jit(lambda k, x: fn(k, x, **params))(key, x)


# ---------------------------------------------------------------------------------------------
# Contract: shape, dtype, range, jit, keys, per-image draws, vmap.


@pytest.mark.parametrize("name", PARAMS)
def test_contract_rgb_odd_size_bf16_keys_and_per_image_draws(name):
  a, b, c = rand_images((3, 37, 53, 3))
  x = jnp.stack([a, a, b, c]).astype(jnp.bfloat16)  # images 0 and 1 are identical
  fn = jitted(name)
  y = fn(KEY, x)
  assert y.shape == x.shape and y.dtype == x.dtype
  assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
  assert float(jnp.abs(y - x).astype(jnp.float32).mean()) > 1e-3  # it corrupts
  np.testing.assert_array_equal(y, fn(jax.random.key(0), x))  # same key, same output
  if name in DETERMINISTIC:
    np.testing.assert_array_equal(y[0], y[1])
  else:
    assert float(jnp.abs(y - fn(jax.random.key(1), x)).max()) > 1e-2  # other key differs
    assert float(jnp.abs(y[0] - y[1]).max()) > 1e-2  # same image, own randomness


@pytest.mark.parametrize("name", PARAMS)
def test_gray_vmap_jit_equals_eager_per_image_loop(name):
  # Under an outer vmap (e.g. over groups), group g behaves like fn(gkeys[g], groups[g]), so
  # image i of group g uses the documented key jax.random.split(gkeys[g], 3)[i] ...
  groups = rand_images((2, 3, 16, 24, 1), seed=1)
  gkeys = jnp.stack([KEY, jax.random.key(3)])
  yb = jax.jit(jax.vmap(functools.partial(C.CORRUPTIONS[name], **CASES[name])))(gkeys, groups)
  assert yb.shape == groups.shape and yb.dtype == groups.dtype
  # ... and an eager (un-jitted) loop over single images with those keys reproduces it.
  # jpeg rounds to 8-bit levels: a fused-vs-unfused float difference may flip one level.
  atol = 1.01 / 255 if name == "jpeg" else 1e-5
  for g in range(2):
    keys = jax.random.split(gkeys[g], 3)
    for i in range(3):
      eager = C.CORRUPTIONS[name](keys[i:i + 1], groups[g, i:i + 1], **CASES[name])
      np.testing.assert_allclose(eager[0], yb[g, i], atol=atol)
  if name not in DETERMINISTIC:
    assert float(jnp.abs(yb[0] - yb[1]).max()) > 1e-3


def test_legacy_uint32_key_is_accepted():
  x = rand_images((3, 16, 24, 1))
  raw = jax.random.key_data(jax.random.key(5))  # a legacy raw uint32 key
  fn = jax.jit(functools.partial(C.salt_and_pepper, amount=0.5))
  np.testing.assert_array_equal(fn(raw, x), fn(jax.random.wrap_key_data(raw), x))
  assert C.per_image_keys(raw, 3).shape == (3,)
  with pytest.raises(ValueError, match="per-image keys"):
    fn(jax.random.split(KEY, 2), x)


# ---------------------------------------------------------------------------------------------
# Statistics on large batches (64 images of 64x64 where many pixels are needed).

HALF = jnp.full((64, 64, 64, 1), 0.5, jnp.float32)


def test_gaussian_noise_std_and_blind_range():
  y = jax.jit(lambda k, x: C.gaussian_noise(k, x, sigma=25.0))(KEY, HALF)
  noise = (np.asarray(y) - 0.5) * 255
  assert abs(noise.std() - 25.0) < 0.25 and abs(noise.mean()) < 0.1
  y = jax.jit(lambda k, x: C.gaussian_noise(k, x, sigma=(5.0, 50.0)))(KEY, HALF)
  per_image = ((np.asarray(y) - 0.5) * 255).std(axis=(1, 2, 3))
  assert per_image.min() > 4.8 and per_image.max() < 51.0
  assert per_image.min() < 15 and per_image.max() > 40  # spread over the range
  x = rand_images((2, 16, 16, 3))
  np.testing.assert_array_equal(run(C.gaussian_noise, x, sigma=0.0), x)
  unclipped = run(C.gaussian_noise, x, sigma=50.0, clip=False)
  assert float(unclipped.min()) < 0 and float(unclipped.max()) > 1


def test_salt_and_pepper_fractions_and_mask():
  x = jnp.full((64, 64, 64, 3), 0.5, jnp.float32)
  y, mask = jax.jit(lambda k, x: C.salt_and_pepper(k, x, amount=0.2, salt_ratio=0.25,
                                                   return_mask=True))(KEY, x)
  y, mask = np.asarray(y), np.asarray(mask)
  changed = np.any(y != 0.5, axis=-1)
  assert mask.shape == (64, 64, 64, 1)
  np.testing.assert_array_equal(changed, mask[..., 0] == 1)
  assert abs(changed.mean() - 0.2) < 0.003
  hit = y[changed]  # (n, 3): all channels together
  np.testing.assert_array_equal(hit.min(-1), hit.max(-1))
  assert set(np.unique(hit)) <= {0.0, 1.0}
  assert abs((hit[:, 0] == 1).mean() - 0.25) < 0.01
  np.testing.assert_array_equal(run(C.salt_and_pepper, x[:2], amount=0.0), x[:2])


def test_poisson_variance_matches_intensity_over_peak():
  x = jnp.concatenate([jnp.full((64, 32, 64, 1), 0.1), jnp.full((64, 32, 64, 1), 0.4)], 1)
  peak = 50.0
  y = np.asarray(jax.jit(lambda k, x: C.poisson_noise(k, x, peak=peak))(jax.random.key(0), x))
  for rows, level in ((slice(0, 32), 0.1), (slice(32, 64), 0.4)):
    v = y[:, rows]
    assert abs(v.mean() - level) < 0.003
    assert abs(v.var() / (level / peak) - 1) < 0.03
    np.testing.assert_allclose(np.round(v * peak), v * peak, atol=1e-4)  # counts / peak


def test_speckle_std_is_relative():
  y = np.asarray(jax.jit(lambda k, x: C.speckle_noise(k, x, sigma=0.1))(KEY, HALF))
  rel = (y - 0.5) / 0.5
  assert abs(rel.std() - 0.1) < 0.002 and abs(rel.mean()) < 0.002
  x = rand_images((2, 16, 16, 3))
  np.testing.assert_allclose(run(C.speckle_noise, x, sigma=0.0), x)


def test_low_light_formula_and_identity():
  x = rand_images((2, 17, 19, 3))
  np.testing.assert_allclose(run(C.low_light, x, brightness=0.5, gamma=2.0), 0.5 * x ** 2,
                             atol=1e-6)
  np.testing.assert_allclose(run(C.low_light, x, brightness=1.0, gamma=1.0), x, atol=1e-6)
  y = np.asarray(jitted("low_light")(KEY, HALF[:16]))  # ranges: 0.1*0.5**2.5 .. 0.6*0.5
  assert y.min() >= 0.1 * 0.5 ** 2.5 - 1e-6 and y.max() <= 0.3 + 1e-6


def _expected_coverage(h, w, s, n):
  """P(pixel covered) averaged over pixels, for n independent uniformly placed s x s blocks."""
  def p(length):
    starts = length - s + 1
    i = np.arange(length)
    return (np.minimum(i, length - s) - np.maximum(i - s + 1, 0) + 1) / starts
  one = np.outer(p(h), p(w))
  return float(np.mean(1 - (1 - one) ** n))


@pytest.mark.parametrize("num_blocks,size", [(10, 4), (50, 4), (100, 4), (10, 8)])
def test_random_blocks_coverage(num_blocks, size):
  x = jnp.full((256, 32, 32, 3), 0.5, jnp.float32)
  y, mask = jax.jit(lambda k, x: C.random_blocks(k, x, num_blocks=num_blocks, block_size=size,
                                                 return_mask=True))(KEY, x)
  y, mask = np.asarray(y), np.asarray(mask)
  assert mask.shape == (256, 32, 32, 1) and mask.dtype == np.float32
  np.testing.assert_array_equal(y == 0, np.broadcast_to(mask == 1, y.shape))
  area = mask.sum(axis=(1, 2, 3))
  assert area.min() >= size * size and area.max() <= num_blocks * size * size
  assert abs(mask.mean() - _expected_coverage(32, 32, size, num_blocks)) < 0.01


def test_random_blocks_single_block_geometry_and_fills():
  x = rand_images((64, 21, 33, 3))
  y, mask = jax.jit(lambda k, x: C.random_blocks(k, x, num_blocks=1, block_size=(2, 6),
                                                 fill=0.3, return_mask=True))(KEY, x)
  y, mask, x = np.asarray(y), np.asarray(mask)[..., 0], np.asarray(x)
  sides = set()
  for i in range(64):
    rows, cols = np.nonzero(mask[i])
    side = rows.max() - rows.min() + 1
    # One full square block inside the image: area == side^2 and a square bounding box.
    assert cols.max() - cols.min() + 1 == side and mask[i].sum() == side * side
    sides.add(int(side))
    np.testing.assert_allclose(y[i][mask[i] == 1], 0.3)
    np.testing.assert_array_equal(y[i][mask[i] == 0], x[i][mask[i] == 0])  # clean outside
  assert sides == {2, 3, 4, 5, 6}
  y, mask = run(C.random_blocks, jnp.asarray(x), num_blocks=20, block_size=5, fill="noise",
                            return_mask=True)
  filled = np.asarray(y)[np.asarray(mask)[..., 0] == 1]
  assert abs(filled.mean() - 0.5) < 0.02 and filled.std() > 0.25  # uniform noise
  np.testing.assert_array_equal(run(C.random_blocks, jnp.asarray(x), num_blocks=0,
                                                block_size=5), x)


# ---------------------------------------------------------------------------------------------
# chain and validate.


def test_chain_reproduces_documented_step_keys_and_masks():
  x = rand_images((4, 32, 32, 3))
  specs = [{"name": "random_blocks", "num_blocks": 3, "block_size": [4, 8]},
           {"name": "gaussian_noise", "sigma": [10, 30]},
           {"name": "salt_and_pepper", "amount": 0.05}]
  y, mask = jax.jit(C.chain(specs, image_shape=(32, 32)))(KEY, x)

  @jax.jit
  def by_hand(key, x):  # the documented derivation: step s uses fold_in(key, s)
    a, m0 = C.random_blocks(jax.random.fold_in(key, 0), x, num_blocks=3, block_size=(4, 8),
                            return_mask=True)
    b = C.gaussian_noise(jax.random.fold_in(key, 1), a, sigma=(10.0, 30.0))
    c, m2 = C.salt_and_pepper(jax.random.fold_in(key, 2), b, amount=0.05, return_mask=True)
    return c, jnp.maximum(m0, m2)

  want_y, want_mask = by_hand(KEY, x)
  np.testing.assert_allclose(y, want_y, atol=1e-6)
  np.testing.assert_array_equal(mask, want_mask)
  assert mask.shape == (4, 32, 32, 1) and mask.dtype == x.dtype
  assert 0 < float(mask.mean()) < 0.5
  # Per-image keys: a loop over single images reproduces the batch.
  fn = jax.jit(C.chain([{"name": "salt_and_pepper", "amount": [0.1, 0.2]}]))
  keys = jax.random.split(KEY, 4)
  yb, mb = fn(keys, x)
  for i in range(4):
    y1, m1 = fn(keys[i:i + 1], x[i:i + 1])
    np.testing.assert_array_equal(y1[0], yb[i])
    np.testing.assert_array_equal(m1[0], mb[i])


@needs_kernels
def test_chain_accepts_config_dicts_kernel_names_and_empty():
  cfg = ml_collections.ConfigDict()
  cfg.corruption = [{"name": "blur", "kernel": "levin09:random"},
                    {"name": "gaussian_noise", "sigma": [0, 10]}]
  C.validate(cfg.corruption, image_shape=(24, 24))
  x = rand_images((2, 24, 24, 3))
  y, mask = jax.jit(C.chain(cfg.corruption))(KEY, x)
  assert y.shape == x.shape and float(jnp.abs(mask).max()) == 0.0
  assert float(jnp.abs(y - x).mean()) > 0.01
  y, mask = C.chain([])(KEY, x)
  np.testing.assert_array_equal(y, x)
  assert mask.shape == (2, 24, 24, 1) and float(jnp.abs(mask).max()) == 0.0
  nested = [{"name": "blur", "kernel": [[0, 0, 0], [0, 1, 0], [0, 0, 0]]}]
  np.testing.assert_allclose(jax.jit(C.chain(nested))(KEY, x)[0], x, atol=1e-6)


BAD_SPECS = [
    ({"name": "gaussian_noise", "sigma": -1.0}, r"gaussian_noise.*'sigma'"),
    ({"name": "gaussian_noise", "sigma": [30, 10]}, r"gaussian_noise.*'sigma'.*lo > hi"),
    ({"name": "gaussian_noise", "sigma": [1, 2, 3]}, r"'sigma'"),
    ({"name": "gaussian_noise"}, r"gaussian_noise.*missing.*sigma"),
    ({"name": "gaussian_noise", "sigma": 25, "sgima": 1}, r"gaussian_noise.*sgima.*allowed"),
    ({"name": "gaussian_noise", "sigma": 25, "clip": "yes"}, r"'clip'"),
    ({"name": "salt_and_pepper", "amount": 1.5}, r"salt_and_pepper.*'amount'.*\[0.0, 1.0\]"),
    ({"name": "salt_and_pepper", "amount": 0.1, "salt_ratio": -0.1}, r"'salt_ratio'"),
    ({"name": "salt_and_pepper", "amount": 0.1, "return_mask": True}, r"'return_mask'"),
    ({"name": "poisson_noise", "peak": 0}, r"poisson_noise.*'peak'.*\(0.0, inf\)"),
    ({"name": "speckle_noise", "sigma": -0.1}, r"speckle_noise.*'sigma'"),
    ({"name": "low_light", "brightness": 0.0}, r"low_light.*'brightness'"),
    ({"name": "low_light", "brightness": 0.5, "gamma": -1}, r"low_light.*'gamma'"),
    ({"name": "random_blocks", "num_blocks": -1, "block_size": 4}, r"'num_blocks'"),
    ({"name": "random_blocks", "num_blocks": 2.5, "block_size": 4}, r"'num_blocks'.*integer"),
    ({"name": "random_blocks", "num_blocks": 10, "block_size": 40}, r"random_blocks.*'block_size'"),
    ({"name": "random_blocks", "num_blocks": 10, "block_size": [4, 33]}, r"'block_size'.*32"),
    ({"name": "random_blocks", "num_blocks": 1, "block_size": 4, "fill": "ones"}, r"'fill'.*zero"),
    ({"name": "blur", "kernel": [[0.5, 0.4]]}, r"blur.*'kernel'.*sum to 1"),
    ({"name": "blur", "kernel": np.ones((2, 2, 2)) / 8}, r"blur.*'kernel'.*2-D"),
    ({"name": "blur", "kernel": [0.5, 0.5]}, r"blur.*'kernel'.*2-D"),
    ({"name": "blur", "kernel": "levin09:k9"}, r"blur.*'kernel'.*levin09:k1"),
    ({"name": "gaussian_blur", "sigma": -1}, r"gaussian_blur.*'sigma'"),
    ({"name": "motion_blur", "length": 0.5}, r"motion_blur.*'length'"),
    ({"name": "motion_blur", "length": 5, "angle": "up"}, r"motion_blur.*'angle'"),
    ({"name": "grayscale", "keep_channels": 1}, r"grayscale.*'keep_channels'"),
    ({"name": "jpeg", "quality": 0}, r"jpeg.*'quality'.*\[1, 100\]"),
    ({"name": "jpeg", "quality": 101}, r"jpeg.*'quality'"),
    ({"name": "jpeg", "quality": 50.5}, r"jpeg.*'quality'.*integer"),
    ({"name": "jpeg", "quality": [90, 10]}, r"jpeg.*'quality'"),
    ({"name": "denoise", "sigma": 1}, r"unknown corruption.*'denoise'.*gaussian_noise"),
    ({"sigma": 1}, r"'name'"),
]


@pytest.mark.parametrize("spec,match", BAD_SPECS)
def test_invalid_specs_raise_when_chain_is_built(spec, match):
  with pytest.raises(ValueError, match=match):
    C.validate([spec], image_shape=(32, 32))
  with pytest.raises(ValueError, match=match):
    C.chain([spec], image_shape=(32, 32))  # raises before anything is traced or compiled


def test_direct_calls_raise_at_trace_time():
  x = rand_images((2, 16, 16, 3))
  with pytest.raises(ValueError, match=r"random_blocks.*'block_size'.*16"):
    jax.jit(lambda k, x: C.random_blocks(k, x, num_blocks=1, block_size=17))(KEY, x)
  with pytest.raises(ValueError, match=r"gaussian_noise.*'sigma'"):
    C.gaussian_noise(KEY, x, sigma=(5, 1))
  with pytest.raises(ValueError, match=r"blur.*'kernel'.*sum to 1"):
    C.blur(KEY, x, kernel=np.ones((3, 3)))
  with pytest.raises(ValueError, match="load_kernel"):
    C.load_kernel("kernels12:12")
  with pytest.raises(ValueError, match="channels"):
    C.gaussian_noise(KEY, rand_images((1, 8, 8, 2)), sigma=1.0)
  with pytest.raises(ValueError, match="'specs'"):
    C.chain({"name": "gaussian_noise", "sigma": 25})
  with pytest.raises(ValueError, match="'image_shape'"):
    C.validate([], image_shape=(32,))
