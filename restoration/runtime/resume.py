"""Resuming a run whose config changes the shape of its training state.

Some config changes alter the optimizer state's structure: `optimizer.grad_clip_norm` from 0
to >0 adds a clipping stage to the optax chain, `optimizer.schedule='plateau'` adds the
reduce-on-plateau state, `optimizer.name` or `optimizer.momentum` swap the inner state. The
checkpoints are intact; only the config differs. `restore` therefore never moves them aside
(`checkpoints.StateMismatch`): with the default `config.resume_optimizer='exact'` it refuses
before anything is read, written or moved, in one line naming the changed field and the ways
forward:

  --config.resume_optimizer=reinit_changed   resume here: step, params, EMA params and batch
        statistics from the checkpoint; each stage of the optimizer chain whose state still
        fits (same arrays, same order) too, e.g. Adam's moments after adding gradient
        clipping; only the stages the change added or replaced start fresh
  --config.init_from=<this workdir> with a new --workdir   the weights, a fresh optimizer,
        step 0
  the stored value of the field                        resumes exactly

A change of the model itself (params / EMA / batch statistics) is refused in every mode.

`rewind` is `--mode=train --step=N`: resume from any kept checkpoint N, or start over with
N=0, e.g. after a divergence whose last checkpoint already held exploding values. The later
checkpoints (latest and best) are moved to <workdir>/rewound/, and `keep_log` keeps a copy of
metrics.jsonl there, since the resumed run rewrites the log after N (also when a run starts
over because every checkpoint was broken).
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging

from restoration import optim
from restoration.eval import visualize
from restoration.runtime import checkpoints
from restoration.runtime import run_log

MODES = ("exact", "reinit_changed")
REWOUND = "rewound"


def check_mode(config: ml_collections.ConfigDict) -> str:
  mode = config.get("resume_optimizer", "exact")
  if mode not in MODES:
    raise ValueError(f"config.resume_optimizer={mode!r}; allowed: {list(MODES)}")
  return mode


def restore(ckpt: checkpoints.Checkpointer, task: Any, config: ml_collections.ConfigDict,
            workdir: str, step: int | None = None) -> tuple[Any, dict]:
  """(state, data_state) of the workdir's newest intact checkpoint (or `step`), fitted to
  `config` as the module docstring says; ValueError (one line) when it cannot be."""
  mode = check_mode(config)
  adapt = None
  if mode == "reinit_changed":
    adapt = lambda stored: graft(jax.jit(task.init_state)(), stored)
  try:
    state, data_state = ckpt.restore_latest(task.abstract_state(), step, adapt=adapt)
  except checkpoints.StateMismatch as e:
    raise ValueError(explain(e, workdir, config)) from None
  return state, data_state


def _opt_field(path: str) -> bool:
  return "opt_state" in path.split("/", 1)[0]


def graft(fresh: Any, stored: Any) -> Any:
  """`fresh` (a newly initialised state) with every array the checkpoint's `stored` tree has
  at the same place, and each optimizer chain stage taken from the first not yet used stored
  stage of the same arrays (in order). ValueError when a non-optimizer array does not fit."""
  old = {k: np.asarray(v) for k, v in _flat(stored).items()}
  new = _flat(fresh)
  old_layout, new_layout = checkpoints.layout(stored), checkpoints.layout(fresh)
  model = [k for k in set(old_layout) | set(new_layout)
           if not _opt_field(k) and old_layout.get(k) != new_layout.get(k)]
  if model:
    raise ValueError(f"the checkpoint's model arrays differ from this config's ("
                     f"{checkpoints.layout_diff(*_only(old_layout, new_layout, model))}): "
                     "config.resume_optimizer=reinit_changed re-initialises optimizer state "
                     "only; use --config.init_from with a new --workdir")
  taken = {k: old[k] for k in new if not _opt_field(k)}
  kept, fresh_stages = [], []
  for field in sorted({k.split("/", 1)[0] for k in new if _opt_field(k)}):
    old_stages, new_stages = _stages(old_layout, field), _stages(new_layout, field)
    cursor = 0
    for name, arrays in new_stages:
      match = next((i for i in range(cursor, len(old_stages))
                    if old_stages[i][1] == arrays), None)
      if match is None:
        fresh_stages.append(name)
        continue
      cursor = match + 1
      kept.append(name)
      for rest in arrays:
        taken[f"{name}/{rest}" if rest else name] = old[
            f"{old_stages[match][0]}/{rest}" if rest else old_stages[match][0]]
  logging.warning("config.resume_optimizer=reinit_changed: kept the checkpoint's step, model "
                  "and optimizer state %s; re-initialised %s", kept or "(none)",
                  fresh_stages or "(nothing)")
  leaves, treedef = jax.tree_util.tree_flatten_with_path(fresh)
  return jax.tree_util.tree_unflatten(treedef, [
      np.asarray(taken.get(_key(p), leaf)) for p, leaf in leaves])


def _key(path) -> str:
  return jax.tree_util.keystr(path, simple=True, separator="/")


def _flat(tree: Any) -> dict[str, Any]:
  return {_key(p): leaf for p, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def _only(a: dict, b: dict, keys) -> tuple[dict, dict]:
  return {k: a[k] for k in keys if k in a}, {k: b[k] for k in keys if k in b}


def _stages(lay: dict, field: str) -> list[tuple[str, dict]]:
  """[(stage path, {path inside the stage: (shape, dtype)})] of an optax chain's state at
  `field` (e.g. 'opt_state/0', ...), in chain order; the whole field when it is no chain."""
  prefix = field + "/"
  inside = {k[len(prefix):]: v for k, v in lay.items() if k.startswith(prefix)}
  heads = {k.split("/", 1)[0] for k in inside}
  if not inside or not all(h.isdigit() for h in heads):
    return [(field, {"": lay[field]} if field in lay else inside)]
  stages = []
  for head in sorted(heads, key=int):
    stages.append((prefix + head, {k.split("/", 1)[1] if "/" in k else "": v
                                   for k, v in inside.items()
                                   if k == head or k.startswith(head + "/")}))
  return stages


def _stored_config(workdir: str) -> dict | None:
  try:
    return run_log.plain(run_log.read_config(workdir))
  except (OSError, ValueError):
    return None


def _leaves(value: Any, prefix: str) -> dict[str, Any]:
  if isinstance(value, dict):
    out = {}
    for k, v in value.items():
      out.update(_leaves(v, f"{prefix}.{k}" if prefix else k))
    return out
  return {prefix: value}


def structural_fields(stored: dict, config: ml_collections.ConfigDict) -> list[str]:
  """The `optimizer.*` fields whose stored value differs and, set back alone, gives another
  optimizer-state structure than `config`'s: the ones a resume cannot follow."""
  new = run_log.plain(config)
  old_leaves = _leaves(stored.get("optimizer", {}), "optimizer")
  new_leaves = _leaves(new.get("optimizer", {}), "optimizer")
  changed = [k for k in sorted(new_leaves) if k in old_leaves and old_leaves[k] != new_leaves[k]]
  probe = {"w": jax.ShapeDtypeStruct((2,), np.float32)}

  def structure(c):
    try:
      return jax.tree.structure(jax.eval_shape(optim.make_optimizer(c)[0].init, probe))
    except (ValueError, TypeError, KeyError):
      return None

  mine = structure(config)
  out = []
  for key in changed:
    reverted = ml_collections.ConfigDict(new)
    reverted.optimizer[key.split(".", 1)[1]] = old_leaves[key]
    if structure(reverted) != mine:
      out.append(key)
  return out or changed  # none alone: name every changed one


def explain(e: checkpoints.StateMismatch, workdir: str, config: ml_collections.ConfigDict
            ) -> str:
  """The one-line refusal of a resume whose config changes the training state's structure."""
  diff = checkpoints.layout_diff(e.stored, e.wanted)
  model = [k for k in set(e.stored) | set(e.wanted)
           if not _opt_field(k) and e.stored.get(k) != e.wanted.get(k)]
  stored = _stored_config(workdir)
  config_path = os.path.join(workdir, "config.json")
  if model:
    return (f"--workdir={workdir}: its checkpoint (step {e.step}) holds another model than "
            f"this config builds ({diff}); nothing was changed. Use a new --workdir (with "
            f"--config.init_from={workdir} for a model of the same shapes), or the stored "
            f"config ({config_path})")
  if stored is None:
    fields, because = [], f"{config_path} is unreadable, so the changed field is unknown"
  else:
    fields = structural_fields(stored, config)
    because = (", ".join(f"config.{k} changed ({json.dumps(_get(stored, k))} -> "
                         f"{json.dumps(_get(run_log.plain(config), k))})" for k in fields)
               or "no optimizer field changed (another optax version?)")
  back = " ".join(f"--config.{k}={json.dumps(_get(stored, k))}" for k in fields)
  return (f"--workdir={workdir}: {because}, which changes the optimizer state's structure "
          f"saved at step {e.step} ({diff}); nothing was changed. Ways forward: "
          "--config.resume_optimizer=reinit_changed resumes here keeping step, params, EMA "
          "and the optimizer state that still fits (the rest starts fresh); or "
          f"--config.init_from={workdir} with a new --workdir (weights kept, fresh optimizer, "
          f"step 0){'; or ' + back + ' resumes exactly' if back else ''}")


def _get(tree: dict, dotted: str) -> Any:
  for part in dotted.split("."):
    tree = tree.get(part) if isinstance(tree, dict) else None
  return tree


def rewind(ckpt: checkpoints.Checkpointer, workdir: str, step: int) -> None:
  """Sets aside every checkpoint after `step` (module docstring); ValueError (before anything
  is moved) when `step` is neither 0 nor a kept step."""
  kept = sorted(ckpt.latest.all_steps())
  if step != 0 and step not in kept:
    raise ValueError(f"--step={step}: {workdir} keeps the checkpoints of steps {kept}; resume "
                     "from one of them, or --step=0 to start over")
  later = {which: sorted(s for s in ckpt._manager(which).all_steps() if s > step)  # pylint: disable=protected-access
           for which in ("latest", "best")}
  if not any(later.values()) or not ckpt.primary:
    return
  moved = [ckpt.set_aside(which, s, REWOUND) for which, steps in later.items() for s in steps]
  logging.warning("--step=%d: moved the %d later checkpoint(s) to %s", step, len(moved),
                  os.path.join(workdir, REWOUND))


def keep_log(workdir: str, step: int) -> str | None:
  """Copies metrics.jsonl to <workdir>/rewound/metrics.before_step<step>[.n].jsonl when it
  holds events after `step` that the run starting there will not recompute (a rewind, or a
  start from scratch after every checkpoint was found broken): the log is then rewritten
  after `step`, and its old lines must survive. Returns the copy's path, if one was made."""
  metrics = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(metrics):
    return None
  if not any(e.get("step", 0) > step for e in visualize.read_metrics(metrics)):
    return None
  os.makedirs(os.path.join(workdir, REWOUND), exist_ok=True)
  copy, n = os.path.join(workdir, REWOUND, f"metrics.before_step{step}.jsonl"), 1
  while os.path.exists(copy):
    n += 1
    copy = os.path.join(workdir, REWOUND, f"metrics.before_step{step}.{n}.jsonl")
  shutil.copy2(metrics, copy)
  logging.warning("%s holds steps after %d that this run rewrites: copied to %s", metrics,
                  step, copy)
  return copy
