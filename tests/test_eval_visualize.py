"""Tests for restoration.eval.visualize (grids with Pillow, curves with headless matplotlib)."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from restoration.eval import visualize


def _images(n, h, w, c, seed=0):
  rng = np.random.default_rng(seed)
  return rng.uniform(0.0, 1.0, size=(n, h, w, c)).astype(np.float32)


def _read(path):
  with Image.open(path) as im:
    return np.asarray(im.convert("RGB"))


# ------------------------------------------------------------------ grid


@pytest.mark.parametrize(
    "n,h,w,c,s",
    [
        (2, 100, 120, 3, 1),  # RGB, native size
        (3, 96, 96, 1, 1),  # gray, exactly at the threshold
        (2, 32, 32, 3, 3),  # small: upscaled x3 -> 96x96
        (1, 40, 64, 1, 3),  # non-square small gray: ceil(96 / 40) = 3
    ],
)
def test_grid_pixel_size_and_clean_panel(tmp_path, n, h, w, c, s):
  clean = _images(n, h, w, c, seed=1)
  corrupted = _images(n, h, w, c, seed=2)
  restored = _images(n, h, w, c, seed=3)
  path = tmp_path / "sub" / "dir" / "grid.png"  # parent dirs get created
  visualize.save_grid(
      str(path),
      clean,
      corrupted,
      restored,
      psnr_corrupted=[20.5] * n,
      psnr_restored=np.full(n, 30.25),
  )
  assert visualize.upscale_factor(h, w) == s
  expected_w = 3 * s * w + 16
  expected_h = 16 + n * (s * h + 16)
  assert visualize.grid_size(n, h, w) == (expected_w, expected_h)
  with Image.open(path) as im:
    assert im.format == "PNG"
    assert im.size == (expected_w, expected_h)
  png = _read(path)
  for col, arr in enumerate((clean, corrupted, restored)):
    for row in range(n):
      x, y = visualize.panel_origin(row, col, h, w)
      assert (x, y) == (4 + col * (s * w + 4), 16 + row * (s * h + 16))
      panel = png[y : y + s * h, x : x + s * w]
      want = np.round(arr[row] * 255.0).astype(np.uint8)
      want = np.repeat(np.repeat(want, s, 0), s, 1)
      if c == 1:
        want = np.repeat(want, 3, -1)
      np.testing.assert_array_equal(panel, want)
  # The gaps between panels are background; the caption strip under corrupted has text.
  assert np.all(png[16 : 16 + s * h, 0:4] == 255)
  strip = png[16 + s * h : 16 + s * h + 16, 4 + (s * w + 4) : 4 + (s * w + 4) + s * w]
  assert np.any(strip < 128)
  # Header has titles.
  assert np.any(png[:16] < 128)


def test_grid_uint8_input_and_no_captions(tmp_path):
  rng = np.random.default_rng(0)
  clean = rng.integers(0, 256, size=(2, 24, 24, 3), dtype=np.uint8)
  gray = rng.integers(0, 256, size=(2, 24, 24, 1), dtype=np.uint8)
  path = tmp_path / "g.png"
  visualize.save_grid(str(path), clean, gray, clean)
  s = 4  # ceil(96 / 24)
  with Image.open(path) as im:
    assert im.size == (3 * s * 24 + 16, 16 + 2 * (s * 24 + 16))
  png = _read(path)
  x, y = visualize.panel_origin(1, 0, 24, 24)
  np.testing.assert_array_equal(png[y : y + s * 24 : s, x : x + s * 24 : s], clean[1])
  x, y = visualize.panel_origin(0, 1, 24, 24)
  np.testing.assert_array_equal(png[y : y + s * 24 : s, x : x + s * 24 : s, 0], gray[0, ..., 0])
  # No PSNR given -> caption strips stay blank.
  assert np.all(png[16 + s * 24 : 16 + s * 24 + 16] == 255)


def test_grid_overwrites_and_clips(tmp_path):
  path = tmp_path / "g.png"
  a = np.full((1, 32, 32, 3), 1.7, np.float32)  # out of range -> clipped to 255
  b = np.full((1, 32, 32, 3), -0.2, np.float32)  # -> 0
  visualize.save_grid(str(path), a, b, a)
  visualize.save_grid(str(path), a, b, a, psnr_corrupted=[float("inf")], psnr_restored=[1.0])
  png = _read(path)
  x, y = visualize.panel_origin(0, 0, 32, 32)
  assert np.all(png[y : y + 96, x : x + 96] == 255)
  x, y = visualize.panel_origin(0, 1, 32, 32)
  assert np.all(png[y : y + 96, x : x + 96] == 0)


def test_grid_errors(tmp_path):
  a = _images(2, 16, 16, 3)
  p = str(tmp_path / "g.png")
  with pytest.raises(ValueError, match="same N, H, W"):
    visualize.save_grid(p, a, a[:, :8], a)
  with pytest.raises(ValueError, match="C in"):
    visualize.save_grid(p, a[..., :2], a[..., :2], a[..., :2])
  with pytest.raises(ValueError, match="2 images"):
    visualize.save_grid(p, a, a, a, psnr_restored=[1.0])
  with pytest.raises(ValueError, match="integer dtype"):
    visualize.save_grid(p, (a * 255).astype(np.int32), a, a)
  assert not os.path.exists(p)


# ------------------------------------------------------------------ curves


def _write_log(path, n_train=30, n_eval=5, truncated=True, eval_events=True):
  lines = []
  for i in range(n_train):
    step = (i + 1) * 10
    lines.append(
        json.dumps(
            {
                "step": step,
                "kind": "train",
                "loss": 1.0 / (i + 1),
                "learning_rate": 1e-3 * min(1.0, (i + 1) / 10),
                "grad_norm": 0.5,
                "steps_per_sec": 12.0,
            }
        )
    )
    if eval_events and i % (n_train // n_eval) == 0:
      lines.append(
          json.dumps(
              {
                  "step": step,
                  "kind": "eval",
                  "psnr": 25.0 + i * 0.1,
                  "ssim": 0.7 + i * 0.005,
                  "input_psnr": 20.0,
                  "input_ssim": 0.5,
              }
          )
      )
  lines.append(json.dumps({"step": 5, "kind": "config", "note": "other kinds are ignored"}))
  text = "\n".join(lines) + "\n"
  if truncated:
    text += '{"step": 310, "kind": "train", "lo'  # crash mid-write
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w") as f:
    f.write(text)


def test_plot_curves_writes_fixed_size_pngs(tmp_path):
  log = tmp_path / "run" / "metrics.jsonl"
  _write_log(str(log))
  out_dir = tmp_path / "plots"
  paths = visualize.plot_curves(str(log), str(out_dir))
  names = [os.path.basename(p) for p in paths]
  assert names == ["loss.png", "psnr.png", "ssim.png", "learning_rate.png"]
  for p in paths:
    assert os.path.dirname(p) == str(out_dir)
    with Image.open(p) as im:
      assert im.format == "PNG"
      assert im.size == (640, 400)


def test_read_metrics_skips_bad_lines(tmp_path):
  log = tmp_path / "metrics.jsonl"
  _write_log(str(log), n_train=10, n_eval=2)
  with open(log, "a") as f:
    f.write("\n")
  events = visualize.read_metrics(str(log))
  assert len(events) == 10 + 2 + 1
  assert all(isinstance(e, dict) for e in events)


def test_plot_curves_train_only_skips_eval_plots(tmp_path):
  log = tmp_path / "metrics.jsonl"
  _write_log(str(log), eval_events=False, truncated=False)
  paths = visualize.plot_curves(str(log), str(tmp_path / "plots"))
  assert [os.path.basename(p) for p in paths] == ["loss.png", "learning_rate.png"]
  assert not (tmp_path / "plots" / "psnr.png").exists()
  assert not (tmp_path / "plots" / "ssim.png").exists()


def test_series_resumed_run_last_write_wins():
  events = [
      {"step": 10, "kind": "eval", "psnr": 1.0},
      {"step": 20, "kind": "eval", "psnr": 2.0},
      {"step": 10, "kind": "eval", "psnr": 3.0},
      {"step": 15, "kind": "eval", "psnr": None},
      {"kind": "eval", "psnr": 9.0},
      {"step": 5, "kind": "train", "psnr": 7.0},
  ]
  x, y = visualize._series(events, "eval", "psnr")
  np.testing.assert_array_equal(x, [10, 20])
  np.testing.assert_array_equal(y, [3.0, 2.0])


def test_compare_runs_two_runs(tmp_path):
  for name in ("baseline", "bigger_model"):
    _write_log(str(tmp_path / name / "metrics.jsonl"))
  out = tmp_path / "cmp" / "psnr.png"
  got = visualize.compare_runs(
      [str(tmp_path / "baseline"), str(tmp_path / "bigger_model")], str(out)
  )
  assert got == str(out)
  with Image.open(out) as im:
    assert im.size == (640, 400)
  got = visualize.compare_runs(
      [str(tmp_path / "baseline"), str(tmp_path / "bigger_model")],
      str(tmp_path / "ssim.png"),
      metric="ssim",
  )
  assert os.path.exists(got)


def test_compare_runs_errors(tmp_path):
  _write_log(str(tmp_path / "a" / "metrics.jsonl"), eval_events=False)
  with pytest.raises(FileNotFoundError):
    visualize.compare_runs([str(tmp_path / "missing")], str(tmp_path / "x.png"))
  with pytest.raises(ValueError, match="psnr"):
    visualize.compare_runs([str(tmp_path / "a")], str(tmp_path / "x.png"))
  # A train-side metric works with kind='train'.
  visualize.compare_runs(
      [str(tmp_path / "a")], str(tmp_path / "x.png"), metric="loss", kind="train"
  )
  assert (tmp_path / "x.png").exists()
