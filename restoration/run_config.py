"""Which config a launch.py command runs with: `--config`, the workdir's run, or both.

`config_following_run` is the one place that decides it (launch.py calls it):

  * `--mode=eval` / `--mode=restore` without `--config`: the run's own `config.json` (what it
    was trained or imported with), with the `--config.*` overrides on top of it;
  * `--mode=eval` with `--config`: that config, except the metric protocol the run stored
    (`PROTOCOL`: uint8 rounding, Y channel, border crop, SSIM convention), which is kept unless
    the command line overrides it: an imported published model keeps the paper's protocol
    whatever config file evaluates it. Every field where `--config` or the command line differs
    from the stored protocol is printed, one line each;
  * otherwise `--config` alone (`cli.load_config`, which also reads a run's config.json).

`differences_from_default` is what `--mode=configs --config=X` prints: the fields of X that
differ from configs/default.py.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import ml_collections

from restoration import cli
from restoration.runtime import run_log

# The eval fields that decide what a PSNR / SSIM number means (its 'convention').
PROTOCOL = ("eval.quantize", "eval.y_channel", "eval.crop_border", "eval.ssim_convention")
FOLLOWS_RUN = ("eval", "restore")  # modes that can take the workdir's config.json as theirs


def _get(tree: Any, dotted: str) -> Any:
  for key in dotted.split("."):
    if key not in tree:
      return None
    tree = tree[key]
  return run_log.plain(tree)


def _overridden(field: str, overrides: Sequence[tuple[str, str]]) -> bool:
  return any(field == key or field.startswith(key + ".") for key, _ in overrides)


def config_following_run(mode: str, spec: str | None, overrides: Sequence[tuple[str, str]],
                         workdir: str | None, *, say=print
                         ) -> tuple[ml_collections.ConfigDict | None, str | None]:
  """(config, its path) for `mode`; (None, None) when the mode reads the workdir itself.

  `say` receives the lines about the protocol (print by default).
  """
  if spec is None:
    if not overrides:
      return None, None
    if mode not in FOLLOWS_RUN or not workdir:
      raise ValueError(f"--config.* overrides need --config=FILE (or, for --mode=eval / "
                       f"restore, a --workdir whose config.json they apply to)")
    path = os.path.join(workdir, "config.json")
    config = run_log.read_config(workdir)  # one error line naming the file when unusable
    for key, value in overrides:
      cli.apply_override(config, key, value)
    config.lock()
    return config, path
  config, path = cli.load_config(spec, overrides)
  if mode != "eval" or not workdir:
    return config, path
  stored_path = os.path.join(workdir, "config.json")
  if not os.path.exists(stored_path):
    return config, path
  try:
    stored = run_log.read_config(workdir)
  except ValueError as e:
    say(f"eval protocol: {e}; the protocol of --config={spec} is used")
    return config, path
  kept = {}
  for field in PROTOCOL:
    want, given = _get(stored, field), _get(config, field)
    if want is None or want == given:
      continue
    if _overridden(field, overrides):
      say(f"eval protocol: --config.{field}={json.dumps(given)} differs from the run's "
          f"stored {json.dumps(want)} ({stored_path}): these numbers use another protocol "
          "than the run's own")
    else:
      kept[field] = want
      say(f"eval protocol: {field}={json.dumps(want)} kept from {stored_path} (--config="
          f"{spec} has {json.dumps(given)}; --config.{field}={json.dumps(given)} to use it)")
  if kept:
    config = ml_collections.ConfigDict(config.to_dict())
    for field, value in kept.items():
      *parents, leaf = field.split(".")
      target = config
      for name in parents:
        target = target[name]
      with target.ignore_type():
        target[leaf] = value
    config.lock()
  return config, path


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
  if isinstance(tree, dict) and tree:
    out = {}
    for k, v in tree.items():
      out.update(_flat(v, f"{prefix}{k}."))
    return out
  return {prefix[:-1]: tree}


def differences_from_default(config: ml_collections.ConfigDict) -> str:
  """`field: value` lines of `config` that differ from configs/default.py (dotted, sorted)."""
  default, _ = cli.load_config("configs/default.py")
  base, mine = _flat(run_log.plain(default)), _flat(run_log.plain(config))
  lines = [f"{k}: {json.dumps(mine[k])}" for k in sorted(mine)
           if k not in base or base[k] != mine[k]]
  lines += [f"{k}: (absent; default {json.dumps(base[k])})" for k in sorted(base)
            if k not in mine]
  return "\n".join(lines) if lines else "(no field differs from configs/default.py)"
