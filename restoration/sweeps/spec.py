"""What a sweep is: a base run config, named variants (overrides) and seeds; and how one run's
config is resolved from it. Used by the sweep files in configs/sweeps/ and by
restoration.modes.sweep.

A sweep file's `get_config(arg)` returns `spec.build(...)`:

  get_config("quick")                     the SWEEP config (fields below), for --mode=sweep
  get_config("quick,variant=V,seed=K")    the resolved RUN config of variant V with seed K
  get_config("quick,variant=V,seed=K,eval")  the same plus the sweep's `eval` overrides: what
                                          --mode=eval of that run reads

Sweep config fields:
  name         the sweep's name (titles of results.md / the SLURM job)
  description  one paragraph for results.md: what is compared and why
  base         a complete run config (configs/default.py fields); every variant starts here
  reference    the variant every other one is compared with (paired differences)
  variants     name -> overrides: dotted config key -> value. A value replaces the field
               whole (a list such as `corruption`, a dict such as `model.kwargs`); keys must
               exist in `base` (typos raise). Names: letters, digits, '_' and '-'.
               `overrides_toward(base, other_config, keys)` derives them from another
               config file (e.g. a GAN variant taking configs/pix2pix.py's settings).
  seeds        training seeds (config.seed); every variant runs with each one
  eval         overrides for --mode=eval only (e.g. a test set, more images, eval.sweep);
               training (and its best-checkpoint selection) never sees them, so a test set
               here does not leak into model selection. eval.seed is shared by all runs, so
               every model is scored on the same corrupted images (paired comparison).
"""

import re
from collections.abc import Mapping, Sequence
from typing import Any

import ml_collections

from configs import common
from restoration.runtime import run_log

NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")


def parse(arg: str | None, **extra: Any) -> ml_collections.ConfigDict:
  """Parses a sweep file's argument: quick, variant=NAME, seed=K, eval, plus `extra` flags."""
  return common.parse_arg(arg, quick=False, variant="", seed=-1, eval=False, **extra)


def _overrides(values: Mapping[str, Any]) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(values), allow_dotted_keys=True)


def _field(config: ml_collections.ConfigDict, key: str, where: str) -> Any:
  value = config
  for i, part in enumerate(key.split(".")):
    if not isinstance(value, ml_collections.ConfigDict) or part not in value:
      raise ValueError(f"{where}: {'.'.join(key.split('.')[:i + 1])!r} is not a config field")
    value = value[part]
  return value


def overrides_toward(base: ml_collections.ConfigDict, target: ml_collections.ConfigDict,
                     keys: Sequence[str]) -> dict[str, Any]:
  """The overrides that make `base`'s fields `keys` (dotted) equal to `target`'s.

  So a variant takes another config file's settings (e.g. configs/pix2pix.py's optimizer and
  adversarial block) without copying its values. Leaf by leaf: a section with the same keys
  on both sides is compared field by field; any other difference (a value, a list, a section
  whose keys differ such as `loss` or `model.kwargs`) overrides the field whole. Fields equal
  in both are left out, so the variant lists only what really changes.
  """
  out = {}

  def walk(key: str, old: Any, new: Any) -> None:
    if (isinstance(old, ml_collections.ConfigDict) and isinstance(new, ml_collections.ConfigDict)
        and set(old.keys()) == set(new.keys())):
      for k in sorted(new.keys()):
        walk(f"{key}.{k}", old[k], new[k])
    elif run_log.plain(old) != run_log.plain(new):
      out[key] = run_log.plain(new)

  for key in keys:
    walk(key, _field(base, key, "overrides_toward base"),
         _field(target, key, "overrides_toward target"))
  return out


def apply_overrides(config: ml_collections.ConfigDict, overrides: Mapping[str, Any], *,
                    where: str) -> None:
  """Sets each dotted key of `overrides` in `config` (in place); dict/list values replace."""
  for key in sorted(overrides):
    value = run_log.plain(overrides[key])
    *parents, leaf = key.split(".")
    target = config
    for i, part in enumerate(parents):
      if part not in target or not isinstance(target[part], ml_collections.ConfigDict):
        raise ValueError(f"{where}: override key {key!r}: {'.'.join(parents[:i + 1])!r} is "
                         "not a config section of the base config")
      target = target[part]
    if leaf not in target:
      raise ValueError(f"{where}: override key {key!r} is not a field of the base config; "
                       f"fields there: {sorted(target.keys())}")
    old = target[leaf]
    if isinstance(old, ml_collections.ConfigDict):
      if not isinstance(value, dict):
        raise ValueError(f"{where}: override {key!r} must be a dict (it is a section), got "
                         f"{value!r}")
      value = ml_collections.ConfigDict(value)
    try:
      target[leaf] = value
    except TypeError as e:
      raise ValueError(f"{where}: override {key!r}={value!r}: {e}") from e


def build(arg: str | None, *, name: str, description: str, base: ml_collections.ConfigDict,
          variants: Mapping[str, Mapping[str, Any]], seeds: Sequence[int], reference: str,
          eval_overrides: Mapping[str, Any] | None = None) -> ml_collections.ConfigDict:
  """The sweep config, or (with variant=/seed= in `arg`) one resolved run config."""
  a = parse(arg) if not isinstance(arg, ml_collections.ConfigDict) else arg
  sweep = ml_collections.ConfigDict()
  sweep.name = name
  sweep.description = description
  sweep.base = base
  sweep.reference = reference
  sweep.variants = ml_collections.ConfigDict({k: _overrides(v) for k, v in variants.items()})
  sweep.seeds = [int(s) for s in seeds]
  sweep.eval = _overrides(eval_overrides or {})
  validate(sweep)
  if not a.variant and a.seed < 0 and not a.eval:
    return sweep
  if not a.variant or a.seed < 0:
    raise ValueError(f"sweep {name}: give both variant=NAME and seed=K (got variant="
                     f"{a.variant!r}, seed={a.seed}); variants: {sorted(variants)}")
  return resolve(sweep, a.variant, a.seed, for_eval=a.eval)


def validate(sweep: ml_collections.ConfigDict) -> None:
  """Checks names, seeds and every variant's overrides (by resolving each), raising ValueError."""
  if not sweep.variants:
    raise ValueError(f"sweep {sweep.name}: variants is empty")
  for v in sweep.variants:
    if not NAME_RE.match(v):
      raise ValueError(f"sweep {sweep.name}: variant name {v!r} must match {NAME_RE.pattern}")
  if sweep.reference not in sweep.variants:
    raise ValueError(f"sweep {sweep.name}: reference={sweep.reference!r}; allowed: "
                     f"{sorted(sweep.variants)}")
  seeds = list(sweep.seeds)
  if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
    raise ValueError(f"sweep {sweep.name}: seeds={seeds} must be distinct integers >= 0")
  for v in sweep.variants:
    resolve(sweep, v, seeds[0], for_eval=True)


def resolve(sweep: ml_collections.ConfigDict, variant: str, seed: int, *,
            for_eval: bool = False) -> ml_collections.ConfigDict:
  """The run config: base + the variant's overrides, config.seed = seed (+ eval overrides)."""
  if variant not in sweep.variants:
    raise ValueError(f"sweep {sweep.name}: variant={variant!r}; allowed: "
                     f"{sorted(sweep.variants)}")
  config = ml_collections.ConfigDict(sweep.base.to_dict())
  apply_overrides(config, sweep.variants[variant], where=f"sweep {sweep.name} variant {variant}")
  config.seed = int(seed)
  if for_eval:
    apply_overrides(config, sweep.eval, where=f"sweep {sweep.name} eval")
  return config


def natural_key(text: str) -> list:
  """Sort key putting 'blocks10' before 'blocks50' before 'blocks100'."""
  return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def variant_order(sweep: Mapping[str, Any] | ml_collections.ConfigDict) -> list[str]:
  """The reference first, then the other variants in natural name order (tables, SLURM)."""
  ref = sweep["reference"]
  return [ref] + sorted((v for v in sweep["variants"] if v != ref), key=natural_key)


def runs(sweep: Mapping[str, Any] | ml_collections.ConfigDict) -> list[tuple[str, int]]:
  """Every (variant, seed) of the sweep, variant-major in `variant_order`."""
  return [(v, int(s)) for v in variant_order(sweep) for s in sweep["seeds"]]


def run_dir(variant: str, seed: int) -> str:
  """A run's workdir relative to the sweep's workdir."""
  return f"{variant}/seed{int(seed)}"


def to_json_dict(sweep: ml_collections.ConfigDict) -> dict:
  """Plain-dict copy (dotted override keys survive; ConfigDict round trips reject them)."""
  return run_log.plain(sweep)
