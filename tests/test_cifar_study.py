"""The CIFAR-10 block study's pieces: its corruption against a NumPy transcription of its loop,
its Keras model, and its SSIM against scikit-image called the study's way.

The training-side pieces (fixed-per-image corruption, data split, config): test_cifar_study_run.py.
"""

import functools
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from skimage.metrics import structural_similarity
from skimage.util import dtype as skdtype

from restoration import corruptions as C
from restoration.eval import evaluator
from restoration.eval import study_ssim
from restoration.models import get_model

KEY = jax.random.key(0)
CIFAR_TEST = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "shared",
                                           "data", "cifar10", "test.npz"))


def study_loop(images, centres):
  """The study's loop, transcribed: given (row, column) centres instead of np.random draws."""
  out = np.array(images, copy=True)
  for img, cs in zip(out, np.asarray(centres)):
    for xc, yc in cs:
      img[xc - 3 // 2:xc + 3 // 2, yc - 3 // 2:yc + 3 // 2, :] = 0
  return out


def study_numpy(n, num_blocks, rng):
  """The study's loop as it ran (np.random.randint(1, 31)): masks of n 32x32 images."""
  out = np.ones((n, 32, 32, 1))
  for img in out:
    for _ in range(num_blocks):
      xc, yc = rng.randint(1, 31), rng.randint(1, 31)
      img[xc - 3 // 2:xc + 3 // 2, yc - 3 // 2:yc + 3 // 2, :] = 0
  return out[..., 0] == 0


def hit_probability(num_blocks, size=32):
  """Analytic P(pixel zeroed): one block covers row r iff its centre is r or r + 1 (in 1..30)."""
  centres = np.arange(1, size - 1)
  p = np.array([np.isin([r, r + 1], centres).sum() for r in range(size)]) / len(centres)
  return 1.0 - (1.0 - np.outer(p, p)) ** num_blocks


@functools.lru_cache(maxsize=None)
def masks(n, num_blocks, seed=0):
  fn = jax.jit(functools.partial(C.study_blocks, num_blocks=num_blocks, return_mask=True))
  _, m = fn(jax.random.key(seed), jnp.ones((n, 32, 32, 1)))
  return np.asarray(m[..., 0]) > 0


# --------------------------------------------------------------------------- the corruption


@pytest.mark.parametrize("num_blocks", [1, 10, 100])
def test_study_blocks_equal_the_study_loop_given_the_same_centres(num_blocks):
  x = jnp.asarray(np.random.default_rng(0).random((4, 32, 32, 3), np.float32))
  y, mask = C.study_blocks(KEY, x, num_blocks=num_blocks, return_mask=True)
  centres = np.asarray(C.study_block_centres(KEY, x.shape, num_blocks=num_blocks))
  assert centres.shape == (4, num_blocks, 2)
  np.testing.assert_array_equal(y, study_loop(np.asarray(x), centres))
  np.testing.assert_array_equal(mask[..., 0] > 0, study_loop(np.ones((4, 32, 32, 1)),
                                                               centres)[..., 0] == 0)


def test_centres_are_uniform_over_1_to_30():
  c = np.asarray(C.study_block_centres(KEY, (512, 32, 32), num_blocks=100)).reshape(-1, 2)
  for axis in range(2):
    counts = np.bincount(c[:, axis], minlength=32)
    assert counts[0] == counts[31] == 0 and counts[1:31].min() > 0
    expected = len(c) / 30
    chi2 = ((counts[1:31] - expected) ** 2 / expected).sum()
    assert chi2 < 70, chi2  # 29 dof: P(chi2 > 70) ~ 3e-5


def test_hit_probabilities_match_the_study_loop_and_row_31_is_never_hit():
  n, nb = 2000, 10
  ours, theirs = masks(n, nb), study_numpy(n, nb, np.random.RandomState(0))
  p = hit_probability(nb)
  tol = 5 * np.sqrt(p * (1 - p) / n) + 1e-3
  for m in (ours, theirs):
    assert not m[:, 31, :].any() and not m[:, :, 31].any()
    assert np.all(np.abs(m.mean(0) - p) <= tol)
  assert p[31].max() == 0 and p[0, 1] == pytest.approx(p[1, 1] / 2, rel=0.05)


def test_zeroed_pixel_counts_match_the_study_loop():
  n, nb = 1000, 50
  ours = masks(n, nb).sum(axis=(1, 2))
  theirs = study_numpy(n, nb, np.random.RandomState(1)).sum(axis=(1, 2))
  expected = hit_probability(nb).sum()
  for counts in (ours, theirs):
    assert abs(counts.mean() - expected) < 5 * counts.std() / np.sqrt(n)
    assert counts.max() <= 4 * nb
  assert abs(ours.std() - theirs.std()) < 0.15 * theirs.std()


def test_study_blocks_in_a_chain_and_bad_params():
  fn = C.chain([{"name": "study_blocks", "num_blocks": 3}], image_shape=(32, 32))
  y, mask = fn(KEY, jnp.ones((2, 32, 32, 3)))
  assert 0 < float(mask.sum()) <= 2 * 12 and float((y == 0).sum()) == 3 * float(mask.sum())
  with pytest.raises(ValueError, match=r"study_blocks.*'num_blocks'.*integer"):
    C.validate([{"name": "study_blocks", "num_blocks": 2.5}])
  with pytest.raises(ValueError, match=r"study_blocks: unknown parameter.*block_size"):
    C.validate([{"name": "study_blocks", "num_blocks": 2, "block_size": 3}])
  with pytest.raises(ValueError, match=r"study_blocks: images must be at least 3x3"):
    C.validate([{"name": "study_blocks", "num_blocks": 2}], image_shape=(2, 8))


# -------------------------------------------------------------------------------- the model


def test_study_cnn_layers_params_and_sigmoid_range():
  model = get_model("study_cnn")
  x = jnp.asarray(np.random.default_rng(1).random((2, 32, 32, 3), np.float32))
  variables = model.init(KEY, x, train=False)
  shapes = jax.tree.map(jnp.shape, variables["params"])
  assert shapes == {"conv0": {"kernel": (3, 3, 3, 64), "bias": (64,)},
                    "conv1": {"kernel": (3, 3, 64, 64), "bias": (64,)},
                    "deconv": {"kernel": (3, 3, 3, 64), "bias": (3,)}}  # Keras' layout
  n = sum(a.size for a in jax.tree.leaves(variables))
  assert n == 64 * 3 * 9 + 64 + 64 * 64 * 9 + 64 + 3 * 64 * 9 + 3 == 40_451
  p = variables["params"]
  for name in p:  # Keras defaults: zero biases, glorot_uniform kernels
    assert not np.any(p[name]["bias"])
    k = p[name]["kernel"]
    bound = np.sqrt(6.0 / (9 * (k.shape[2] + k.shape[3])))
    assert float(jnp.abs(k).max()) <= bound and float(jnp.abs(k).max()) > 0.9 * bound
  y = model.apply(variables, x, train=False)
  assert y.shape == x.shape and y.dtype == x.dtype
  assert float(y.min()) > 0.0 and float(y.max()) < 1.0


def test_deconv_is_the_keras_transposed_conv():
  """Stride 1, SAME: TF/Keras conv2d_transpose is the input-gradient of a conv whose HWIO
  kernel is the stored (kh, kw, out, in) one, i.e. a conv with it flipped and in/out swapped."""
  h = jnp.asarray(np.random.default_rng(2).normal(size=(2, 7, 9, 64)), jnp.float32)
  layer = nn.ConvTranspose(3, (3, 3), padding="SAME", transpose_kernel=True, use_bias=False)
  kernel = jax.random.normal(KEY, (3, 3, 3, 64))  # Keras: (kh, kw, filters=3, in=64)
  ours = layer.apply({"params": {"kernel": kernel}}, h)
  conv = lambda z: jax.lax.conv_general_dilated(  # noqa: E731
      z, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
  _, vjp = jax.vjp(conv, jnp.zeros((2, 7, 9, 3)))
  np.testing.assert_allclose(ours, vjp(h)[0], rtol=1e-4, atol=1e-4)
  flipped = jnp.transpose(kernel[::-1, ::-1], (0, 1, 3, 2))  # (3, 3, 64, 3) HWIO
  direct = jax.lax.conv_general_dilated(h, flipped, (1, 1), "SAME",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))
  np.testing.assert_allclose(ours, direct, rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------------- the SSIM


def skimage_study(a, b):
  """The study's call on a modern skimage: data_range given as the old default took it."""
  return np.array([structural_similarity(x, y, channel_axis=-1, data_range=2.0)
                   for x, y in zip(np.asarray(a, np.float64), np.asarray(b, np.float64))])


def test_data_range_2_is_what_old_skimage_took_for_floats():
  lo, hi = skdtype.dtype_range[np.float64]
  assert hi - lo == 2.0 == study_ssim.DATA_RANGE


def test_study_ssim_equals_skimage_on_random_images():
  rng = np.random.default_rng(3)
  a = rng.random((3, 32, 32, 3))
  b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1)
  b[1] = rng.random((32, 32, 3))  # unrelated images: SSIM near 0
  b[2] = a[2] * 0.5  # dark: where the data range matters most
  got = np.asarray(study_ssim.ssim(a.astype(np.float32), b.astype(np.float32)))
  np.testing.assert_allclose(got, skimage_study(a, b), atol=1e-5)
  gray = np.asarray(study_ssim.ssim(a[..., :1], b[..., :1]))
  np.testing.assert_allclose(gray, skimage_study(a[..., :1], b[..., :1]), atol=1e-5)


@pytest.mark.skipif(not os.path.exists(CIFAR_TEST), reason="CIFAR-10 not beside the repo")
def test_study_ssim_equals_skimage_on_cifar_with_study_blocks():
  with np.load(CIFAR_TEST) as z:
    clean = z["image"][:6].astype(np.float64) / 255.0
  corrupted = np.asarray(C.study_blocks(KEY, jnp.asarray(clean, jnp.float32), num_blocks=50),
                         np.float64)
  got = np.asarray(study_ssim.ssim(clean.astype(np.float32), corrupted.astype(np.float32)))
  np.testing.assert_allclose(got, skimage_study(clean, corrupted), atol=1e-5)


def test_ssim_convention_in_eval_options_and_metrics():
  from tests.tiny import tiny_config, override  # pylint: disable=g-import-not-at-top
  c = tiny_config()
  assert evaluator.EvalOptions.from_config(c).convention == "rgb"
  study = evaluator.EvalOptions.from_config(override(c, **{"eval.ssim_convention": "study"}))
  assert study.convention == "rgb_ssimstudy" and study.row_fields["convention"] == study.convention
  with pytest.raises(ValueError, match=r"config.eval.ssim_convention must be one of "
                                       r"\['standard', 'study'\], got 'skimage'"):
    evaluator.EvalOptions.from_config(override(c, **{"eval.ssim_convention": "skimage"}))
  rng = np.random.default_rng(4)
  clean = jnp.asarray(rng.random((2, 16, 16, 3)), jnp.float32)
  out = jnp.clip(clean + 0.05, 0, 1)
  values = evaluator.restoration_metrics(out, out, clean, loss_fn=lambda r, t: jnp.mean(r - t),
                                        options=study.metric_options, ssim_convention="study")
  np.testing.assert_allclose(values["ssim"], skimage_study(out, clean), atol=1e-5)


def test_study_table_aggregates_seeds_with_a_t_interval():
  from scipy import stats  # pylint: disable=g-import-not-at-top
  from benchmarks import cifar_study as bench  # pylint: disable=g-import-not-at-top
  ssim = [0.9950, 0.9954, 0.9958]

  def run(seed, s):
    row = {"ssim": s - 0.002, "psnr": 39.0 + seed, "input_psnr": 20.17, "n_images": 10000}
    return {"seed": seed, "rows": {"rgb_ssimstudy": dict(row, ssim=s), "rgb": row},
            "timing": [{"wall_s": 3000.0 + 60 * seed, "cpu_s": 2400.0}]}

  text = bench.table({10: [run(k, s) for k, s in enumerate(ssim)], 100: [run(0, 0.95)]})
  rows = {line.split("|")[1].strip(): line for line in text.splitlines()
          if line.startswith("| 10") or line.startswith("| 100")}
  half = stats.t.ppf(0.975, 2) * np.std(ssim, ddof=1) / np.sqrt(3)
  assert f"0.99540 [{0.9954 - half:.5f}, {0.9954 + half:.5f}]" in rows["10"]
  assert "| 0.99512 |" in rows["10"] and "| 0.95290 |" in rows["100"]
  assert "40.00 [" in rows["10"] and "| 50-52 / 40 |" in rows["10"]
  assert "0.95000 (n=1, no CI)" in rows["100"]
