"""Pictures for humans: example grids (clean | corrupted | restored) and training curves.

Headless by construction: image grids are composed pixel-exactly with Pillow (no matplotlib),
and curves use matplotlib's object-oriented ``Figure`` + ``FigureCanvasAgg`` API, so no global
backend state (``matplotlib.use`` / ``pyplot``) is touched and nothing needs a display.

Metrics log format (``metrics.jsonl``, one JSON object per line) read by `plot_curves` and
`compare_runs`::

    {"step": 100, "kind": "train", "loss": ..., "learning_rate": ..., "grad_norm": ..., ...}
    {"step": 1000, "kind": "eval", "psnr": ..., "ssim": ..., "input_psnr": ..., ...}

Other kinds and fields are ignored. Malformed lines (e.g. a partial last line left by a crash)
are skipped. When a step appears several times for the same series (a run resumed from an
earlier checkpoint re-logs steps) the last occurrence in the file wins, and points are plotted
in step order.
"""

from __future__ import annotations

import json
import logging
import math
import os
from typing import Iterable, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image, ImageDraw, ImageFont

__all__ = [
    "save_grid",
    "grid_size",
    "plot_curves",
    "compare_runs",
    "read_metrics",
    "MIN_PANEL_SIDE",
    "PAD",
    "HEADER",
    "CAPTION",
    "FIGSIZE",
    "DPI",
]

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------- grid layout
MIN_PANEL_SIDE = 96  # small images are upscaled (integer, nearest) until min(H, W) >= this
PAD = 4  # horizontal gap left of, between and right of the three panels
HEADER = 16  # title strip at the top of the grid
CAPTION = 16  # caption strip under every panel row (PSNR text)
_BACKGROUND = (255, 255, 255)
_TEXT = (0, 0, 0)

# --------------------------------------------------------------------------------- curve figures
FIGSIZE = (6.4, 4.0)  # inches
DPI = 100  # -> every curve PNG is exactly 640 x 400 pixels


def upscale_factor(height: int, width: int) -> int:
  """Integer nearest-neighbour factor ``s = max(1, ceil(96 / min(H, W)))`` used for panels."""
  return max(1, math.ceil(MIN_PANEL_SIDE / min(height, width)))


def grid_size(n: int, height: int, width: int) -> tuple[int, int]:
  """``(width, height)`` in pixels of the PNG `save_grid` writes for ``n`` images of HxW.

  With ``s = upscale_factor(H, W) = max(1, ceil(96 / min(H, W)))``::

      grid_width  = 3 * s * W + 4 * PAD            = 3 s W + 16
      grid_height = HEADER + n * (s * H + CAPTION)  = 16 + n (s H + 16)
  """
  s = upscale_factor(height, width)
  return 3 * s * width + 4 * PAD, HEADER + n * (s * height + CAPTION)


def panel_origin(row: int, col: int, height: int, width: int) -> tuple[int, int]:
  """``(x, y)`` of the top-left pixel of panel (row, col) in the grid (col 0 = clean).

  ``x = PAD + col * (s W + PAD)``, ``y = HEADER + row * (s H + CAPTION)``.
  """
  s = upscale_factor(height, width)
  return PAD + col * (s * width + PAD), HEADER + row * (s * height + CAPTION)


def save_grid(
    path: str,
    clean,
    corrupted,
    restored,
    *,
    psnr_corrupted: Sequence[float] | None = None,
    psnr_restored: Sequence[float] | None = None,
    titles: Sequence[str] = ("clean", "corrupted", "restored"),
) -> np.ndarray:
  """Writes a PNG with one row per image: clean | corrupted | restored; returns its pixels
  (long for its layout arithmetic, kept together so the panel geometry reads in one place)
  (uint8 [height, width, 3], e.g. for TensorBoard).

  Args:
    path: output PNG path; parent directories are created, an existing file is overwritten.
    clean, corrupted, restored: arrays ``[N, H, W, C]`` (NumPy or JAX) with the same N, H, W;
      C is 1 (gray) or 3 (RGB), independently per array. Floats are clipped to [0, 1] (NaN ->
      0) and stored as ``round(255 x)``; uint8 is used as is; other integer dtypes raise.
      Gray is shown as gray RGB.
    psnr_corrupted, psnr_restored: optional per-image values (length N), drawn as
      e.g. ``'24.31 dB'`` in the caption strip under the corrupted / restored panel.
    titles: the three column titles drawn in the header strip.

  Layout (pixel-exact, RGB, white background, text in PIL's default font): every panel is the
  image upscaled by the integer nearest-neighbour factor
  ``s = max(1, ceil(96 / min(H, W)))`` (so 32x32 images become 96x96, 128x128 stay as is).
  Panel (row r, column c) has its top-left pixel at
  ``x = 4 + c (s W + 4)``, ``y = 16 + r (s H + 16)``, and the whole image is::

      width  = 3 s W + 16          (4-px gaps left of, between and right of the panels)
      height = 16 + N (s H + 16)   (16-px title header, 16-px caption strip under each row)

  See `grid_size` / `panel_origin`.
  """
  arrays = [
      _to_uint8_rgb(x, name)
      for x, name in ((clean, "clean"), (corrupted, "corrupted"), (restored, "restored"))
  ]
  shapes = {a.shape for a in arrays}
  if len(shapes) != 1:
    raise ValueError(
        "save_grid: clean, corrupted and restored must have the same N, H, W; "
        f"got {[a.shape[:3] for a in arrays]}"
    )
  n, h, w, _ = arrays[0].shape
  if n == 0:
    raise ValueError("save_grid: no images to draw (N = 0)")
  if len(titles) != 3:
    raise ValueError(f"save_grid: need 3 titles, got {len(titles)}")
  captions = [
      None,
      _captions(psnr_corrupted, n, "psnr_corrupted"),
      _captions(psnr_restored, n, "psnr_restored"),
  ]

  s = upscale_factor(h, w)
  gw, gh = grid_size(n, h, w)
  canvas = Image.new("RGB", (gw, gh), _BACKGROUND)
  draw = ImageDraw.Draw(canvas)
  font = ImageFont.load_default()
  ph, pw = s * h, s * w
  for col in range(3):
    x0, _ = panel_origin(0, col, h, w)
    _draw_centered(draw, font, str(titles[col]), x0, 0, pw, HEADER)
    for row in range(n):
      x, y = panel_origin(row, col, h, w)
      img = arrays[col][row]
      if s > 1:
        img = np.repeat(np.repeat(img, s, axis=0), s, axis=1)
      canvas.paste(Image.fromarray(img, "RGB"), (x, y))
      if captions[col] is not None:
        _draw_centered(draw, font, captions[col][row], x, y + ph, pw, CAPTION)
  _makedirs_for(path)
  canvas.save(path, format="PNG")
  return np.asarray(canvas)


def _to_uint8_rgb(x, name: str) -> np.ndarray:
  x = np.asarray(x)
  if x.ndim != 4 or x.shape[-1] not in (1, 3):
    raise ValueError(
        f"save_grid: {name} must be [N, H, W, C] with C in (1, 3), " f"got shape {x.shape}"
    )
  if x.dtype == np.uint8:
    out = x
  elif np.issubdtype(x.dtype, np.integer):
    raise ValueError(
        f"save_grid: {name} has integer dtype {x.dtype}; pass uint8 [0, 255] " "or floats in [0, 1]"
    )
  else:  # float16/32/64, bfloat16, bool
    xf = np.nan_to_num(x.astype(np.float64), nan=0.0)
    out = np.round(np.clip(xf, 0.0, 1.0) * 255.0).astype(np.uint8)
  if out.shape[-1] == 1:
    out = np.repeat(out, 3, axis=-1)
  return np.ascontiguousarray(out)


def _captions(values, n: int, name: str) -> list[str] | None:
  if values is None:
    return None
  values = np.asarray(values, dtype=np.float64).reshape(-1)
  if values.shape[0] != n:
    raise ValueError(f"save_grid: {name} has {values.shape[0]} values for {n} images")
  return [f"{v:.2f} dB" for v in values]


def _draw_centered(draw, font, text: str, x: int, y: int, w: int, h: int) -> None:
  left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
  tx = x + max(0, (w - (right - left)) // 2) - left
  ty = y + max(0, (h - (bottom - top)) // 2) - top
  draw.text((tx, ty), text, fill=_TEXT, font=font)


def _makedirs_for(path: str) -> None:
  parent = os.path.dirname(os.path.abspath(path))
  os.makedirs(parent, exist_ok=True)


# ---------------------------------------------------------------------------------- curves


def read_metrics(path: str) -> list[dict]:
  """Parses a metrics.jsonl file; blank, malformed or non-object lines are skipped."""
  events = []
  bad = 0
  with open(path, encoding="utf-8", errors="replace") as f:
    for line in f:
      line = line.strip()
      if not line:
        continue
      try:
        event = json.loads(line)
      except json.JSONDecodeError:
        bad += 1
        continue
      if isinstance(event, dict):
        events.append(event)
      else:
        bad += 1
  if bad:
    log.warning("%s: skipped %d malformed line(s)", path, bad)
  return events


def _is_number(v) -> bool:
  return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _series(events: Iterable[dict], kind: str, field: str) -> tuple[np.ndarray, np.ndarray]:
  """(steps, values) of ``field`` over events of ``kind``; last write per step wins; sorted."""
  by_step: dict[float, float] = {}
  for e in events:
    if e.get("kind") != kind:
      continue
    step, value = e.get("step"), e.get(field)
    if _is_number(step) and _is_number(value):
      by_step[step] = float(value)
  steps = np.array(sorted(by_step), dtype=np.float64)
  return steps, np.array([by_step[s] for s in steps], dtype=np.float64)


def _new_figure():
  fig = Figure(figsize=FIGSIZE, dpi=DPI)
  FigureCanvasAgg(fig)
  ax = fig.add_subplot(1, 1, 1)
  ax.grid(True, alpha=0.3)
  return fig, ax


def _save_figure(fig, path: str) -> str:
  _makedirs_for(path)
  fig.tight_layout()
  fig.savefig(path, dpi=DPI, format="png")  # no bbox_inches='tight': size stays fixed
  return path


def plot_curves(metrics_jsonl_path: str, out_dir: str) -> list[str]:
  """Plots training curves from a metrics.jsonl into ``out_dir``; returns the written paths.

  Writes, in this order and only when the data exists (at least one finite value):

  * ``loss.png``: train ``loss`` (adversarial runs: ``g_l1``) vs step (log y axis when all
    values are > 0);
  * ``gan.png``: adversarial runs' ``g_adv``, ``d_loss``, ``d_real``, ``d_fake`` vs step;
  * ``psnr.png``: eval ``psnr`` and ``input_psnr`` vs step (dB);
  * ``ssim.png``: eval ``ssim`` and ``input_ssim`` vs step;
  * ``learning_rate.png``: train ``learning_rate`` (and ``d_learning_rate``) vs step.

  Every PNG is ``FIGSIZE`` x ``DPI`` = 6.4 x 4.0 in at 100 dpi = exactly 640 x 400 pixels.
  """
  events = read_metrics(metrics_jsonl_path)
  title = os.path.basename(os.path.dirname(os.path.abspath(metrics_jsonl_path)))
  specs = [
      ("loss.png", "train", [("loss", "train loss"), ("g_l1", "generator L1")], "loss", True),
      ("gan.png", "train", [("g_adv", "G adversarial"), ("d_loss", "D loss"),
                            ("d_real", "D(real) mean logit"), ("d_fake", "D(fake) mean logit")],
       "adversarial terms", False),
      (
          "psnr.png",
          "eval",
          [("psnr", "restored"), ("input_psnr", "input (corrupted)")],
          "PSNR (dB)",
          False,
      ),
      (
          "ssim.png",
          "eval",
          [("ssim", "restored"), ("input_ssim", "input (corrupted)")],
          "SSIM",
          False,
      ),
      ("learning_rate.png", "train", [("learning_rate", "learning rate"),
                                      ("d_learning_rate", "D learning rate")],
       "learning rate", False),
  ]
  written = []
  for filename, kind, fields, ylabel, log_y in specs:
    series = [(label, *_series(events, kind, field)) for field, label in fields]
    series = [(label, x, y) for label, x, y in series if len(x)]
    if not series:
      continue
    fig, ax = _new_figure()
    for label, x, y in series:
      ax.plot(x, y, label=label, marker="." if len(x) < 50 else None)
    if log_y and all(np.all(y > 0) for _, _, y in series):
      ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if len(series) > 1:
      ax.legend()
    written.append(_save_figure(fig, os.path.join(out_dir, filename)))
  return written


def compare_runs(
    workdirs: list[str], out_path: str, *, metric: str = "psnr", kind: str = "eval",
    labels: Sequence[str] | None = None,
) -> str:
  """Overlays one metric from several runs in a single 640 x 400 PNG; returns ``out_path``.

  Args:
    workdirs: run directories, each holding a ``metrics.jsonl`` (a path to a ``.jsonl`` file
      itself is accepted too). The legend label is the workdir's basename (the full path when
      two basenames collide).
    out_path: PNG path; parent directories are created.
    metric: field to plot (e.g. 'psnr', 'ssim', 'input_psnr').
    kind: event kind holding the field ('eval' by default, 'train' for e.g. 'loss').
    labels: legend labels, one per workdir (default: the basenames). `restoration.eval.compare`
      is the command line, and checks that the runs were evaluated alike.

  Raises:
    FileNotFoundError: a workdir has no metrics.jsonl.
    ValueError: no run has any value for ``metric``. Runs without values are skipped with a
      warning.
  """
  if not workdirs:
    raise ValueError("compare_runs: no workdirs given")
  paths, run_dirs = [], []
  for wd in workdirs:
    wd = os.fspath(wd)
    if os.path.isfile(wd) and wd.endswith(".jsonl"):
      p, run_dir = wd, os.path.dirname(os.path.abspath(wd))
    else:
      p, run_dir = os.path.join(wd, "metrics.jsonl"), os.path.abspath(wd)
    if not os.path.isfile(p):
      raise FileNotFoundError(f"compare_runs: no metrics.jsonl at {p}")
    paths.append(p)
    run_dirs.append(os.path.normpath(run_dir))
  if labels is None:
    labels = [os.path.basename(d) for d in run_dirs]
    labels = [d if labels.count(l) > 1 else l for d, l in zip(run_dirs, labels)]
  elif len(labels) != len(workdirs):
    raise ValueError(f"compare_runs: {len(labels)} labels for {len(workdirs)} workdirs")

  fig, ax = _new_figure()
  plotted = 0
  for p, label in zip(paths, labels):
    x, y = _series(read_metrics(p), kind, metric)
    if not len(x):
      log.warning("compare_runs: %s has no %s %r values; skipped", p, kind, metric)
      continue
    ax.plot(x, y, label=label, marker="." if len(x) < 50 else None)
    plotted += 1
  if not plotted:
    raise ValueError(f"compare_runs: none of the runs has {kind} {metric!r} values")
  ax.set_xlabel("step")
  ax.set_ylabel(metric)
  ax.set_title(f"{kind} {metric}")
  ax.legend()
  return _save_figure(fig, out_path)
