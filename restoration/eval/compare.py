"""One metric of several runs in one plot, refusing runs that were not measured alike.

  python -m restoration.eval.compare runs/dncnn_a runs/dncnn_b --out=cmp.png
  python -m restoration.eval.compare runs/a runs/b --out=loss.png --kind=train --metric=loss
  python -m restoration.eval.compare runs/a runs/b --out=cmp.png --label_differences

Curves compare only when the runs saw the same data measured the same way. For eval curves
that is `EVAL_FIELDS` of each run's config.json (eval data, crop, image count, channels, the
corruption, eval seed and metric convention); for train curves `TRAIN_FIELDS`. Runs that differ
are refused with one line naming the fields, unless `--label_differences`, which writes the
differing values into the legend.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

from absl import app
from absl import flags

from restoration import cli
from restoration.eval import visualize

EVAL_FIELDS = ("data.eval", "data.eval_crop", "data.eval_max_images", "data.channels",
               "corruption", "eval.seed", "eval.y_channel", "eval.crop_border", "eval.quantize")
TRAIN_FIELDS = ("data.train", "data.channels", "corruption", "loss", "patch_size",
                "batch_size")
FIELDS = {"eval": EVAL_FIELDS, "train": TRAIN_FIELDS}


def run_setup(workdir: str, fields: Sequence[str]) -> dict[str, str]:
  """{field: JSON of its value} from the run's config.json ('missing' without one)."""
  run_dir = os.path.dirname(workdir) if workdir.endswith(".jsonl") else workdir
  path = os.path.join(run_dir, "config.json")
  if not os.path.exists(path):
    return {f: "missing (no config.json)" for f in fields}
  with open(path) as f:
    config = json.load(f)
  out = {}
  for field in fields:
    value = config
    for key in field.split("."):
      value = value.get(key) if isinstance(value, dict) else None
    out[field] = json.dumps(value, sort_keys=True)
  return out


def differences(workdirs: Sequence[str], kind: str = "eval") -> dict[str, list[str]]:
  """{field: its value in each run} for the fields in which the runs differ."""
  if kind not in FIELDS:
    raise ValueError(f"--kind={kind!r}; allowed: {sorted(FIELDS)}")
  setups = [run_setup(os.fspath(w), FIELDS[kind]) for w in workdirs]
  return {f: [s[f] for s in setups] for f in FIELDS[kind]
          if len({s[f] for s in setups}) > 1}


def compare(workdirs: Sequence[str], out_path: str, *, metric: str = "psnr",
            kind: str = "eval", label_differences: bool = False) -> str:
  """`visualize.compare_runs` after checking the runs were measured alike; returns the PNG."""
  workdirs = [os.fspath(w) for w in workdirs]
  diffs = differences(workdirs, kind)
  labels = [os.path.basename(os.path.normpath(w)) or w for w in workdirs]
  if diffs and not label_differences:
    what = "; ".join(f"{f}: {' vs '.join(v)}" for f, v in diffs.items())
    raise ValueError(f"the runs' {kind} curves are not comparable, they differ in {what} "
                     "(--label_differences plots them anyway, labelled)")
  if diffs:
    labels = [label + " (" + ", ".join(f"{f}={v[i]}" for f, v in diffs.items()) + ")"
              for i, label in enumerate(labels)]
  if len(set(labels)) < len(labels):
    labels = workdirs
  return visualize.compare_runs(workdirs, out_path, metric=metric, kind=kind, labels=labels)


_OUT = flags.DEFINE_string("out", None, "The PNG to write.")
_METRIC = flags.DEFINE_string("metric", "psnr", "Field to plot: psnr, ssim, input_psnr, loss...")
_KIND = flags.DEFINE_enum("kind", "eval", sorted(FIELDS), "Events holding the metric.")
_LABEL = flags.DEFINE_bool("label_differences", False,
                           "Plot runs measured differently, with the differences in the legend.")


def main(argv: Sequence[str]) -> None:
  def go():
    if len(argv) < 2 or not _OUT.value:
      raise ValueError(
          "usage: python -m restoration.eval.compare RUN_DIR [RUN_DIR ...] --out=FILE.png")
    print(compare(argv[1:], _OUT.value, metric=_METRIC.value, kind=_KIND.value,
                  label_differences=_LABEL.value))
  cli.run_guarded(go)


if __name__ == "__main__":
  app.run(main)
