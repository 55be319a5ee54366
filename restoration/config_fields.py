"""Start-up check of a run config against `configs/default.py`: unknown fields and wrong types.

Every field the code reads is declared in `configs/default.py`, so a field that is not there
is a typo (`data.num_worker`) or a leftover, which would otherwise be silently ignored. The
mappings users key themselves (`FREE`) are not checked here; the modules reading them check
their content. A value whose type differs from the default's (a string for an integer) is
rejected too; the value ranges are checked where the fields are read (tasks, EvalOptions).
"""

from __future__ import annotations

from typing import Any

import ml_collections

from configs import default

FREE = frozenset({"model.kwargs", "eval.sweep", "loss",  # keys chosen by the user
                  "adversarial.discriminator.kwargs"})


def _type_ok(value: Any, reference: Any) -> bool:
  if isinstance(reference, bool):
    return isinstance(value, bool)
  if isinstance(reference, int):
    return isinstance(value, int) and not isinstance(value, bool)
  if isinstance(reference, float):
    return isinstance(value, (int, float)) and not isinstance(value, bool)
  if isinstance(reference, str):
    return isinstance(value, str)
  if isinstance(reference, (list, tuple)):
    return isinstance(value, (list, tuple))
  return True


def _check(value: dict, reference: dict, prefix: str, source: str) -> None:
  for key, v in value.items():
    name = f"{prefix}{key}"
    if key not in reference:
      known = ", ".join(sorted(reference))
      raise ValueError(f"{source}: unknown field config.{name}; the fields of "
                       f"config{'.' + prefix[:-1] if prefix else ''} are: {known}")
    ref = reference[key]
    if name in FREE:
      continue
    if isinstance(ref, dict):
      if not isinstance(v, dict):
        raise ValueError(f"{source}: config.{name} must be a group of fields "
                         f"({', '.join(sorted(ref))}), got {v!r}")
      _check(v, ref, name + ".", source)
    elif not _type_ok(v, ref):
      raise ValueError(f"{source}: config.{name}={v!r} has type {type(v).__name__}; expected "
                       f"{type(ref).__name__} like the default {ref!r}")


def check(config: ml_collections.ConfigDict | dict, source: str = "config") -> None:
  """Raises ValueError naming the first unknown or mistyped field (and `source`)."""
  value = config.to_dict() if hasattr(config, "to_dict") else dict(config)
  _check(value, default.get_config().to_dict(), "", source)
