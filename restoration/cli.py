"""The command line of launch.py: finding and listing configs, `--config.*` overrides, errors.

`launch.py` stays a thin shell: absl parses its own flags, and this module owns the config.

  --config=PATH[:ARG]     a config file; PATH relative to the current directory, else to the
                          repository (so `configs/dncnn.py` works from anywhere)
  --config.FIELD=VALUE    override one field (dotted, e.g. `--config.optimizer.learning_rate=1e-4`).
                          Scalars are parsed by the field's type; lists, tuples and dicts take
                          JSON or a Python literal, e.g.
                          --config.corruption='[{"name": "gaussian_noise", "sigma": 15}]'.
                          The open dicts `model.kwargs`, `loss` and `eval.sweep` accept new keys;
                          elsewhere an unknown field is an error naming the closest one.

User errors (ValueError, FileNotFoundError, FileExistsError: bad flags, config, data, workdir)
end with one `error: ...` line on stderr and exit status 2, and the runtime outcomes a job
script must tell apart (diverged, workdir in use, no intact checkpoint, disk/IO error) with one
such line and their own status (`runtime.exit_codes`); `--debug` adds the traceback.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import glob
import importlib.util
import json
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import ml_collections

from restoration import config_fields
from restoration.runtime import exit_codes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
USER_ERRORS = exit_codes.USER_ERRORS
USAGE_EXIT = exit_codes.USAGE
OPEN_DICTS = config_fields.FREE  # fields whose keys a user may add
_PREFIX = "--config."


@dataclasses.dataclass
class Args:
  """What `parse_argv` leaves for launch.main: positional arguments and the overrides."""
  argv: list[str]
  overrides: list[tuple[str, str]]


def split_overrides(argv: Sequence[str]) -> tuple[list[str], list[tuple[str, str]]]:
  """Separates `--config.KEY=VALUE` (or `--config.KEY VALUE`) from the other arguments."""
  rest, overrides, i = [], [], 0
  argv = list(argv)
  while i < len(argv):
    arg = argv[i]
    if arg.startswith(_PREFIX):
      key, eq, value = arg[len(_PREFIX):].partition("=")
      if not eq:
        if i + 1 >= len(argv):
          raise ValueError(f"{arg}: no value (use {arg}=VALUE)")
        value, i = argv[i + 1], i + 1
      overrides.append((key, value))
    else:
      rest.append(arg)
    i += 1
  return rest, overrides


def parse_argv(argv: Sequence[str]) -> Args:
  """absl's `flags_parser`: absl flags, with flag errors as one line and exit status 2."""
  from absl import app, flags  # pylint: disable=g-import-not-at-top
  if any(a in ("-h", "--help", "--helpshort") for a in argv[1:]):
    app.usage(shorthelp=True, writeto_stdout=True, exitcode=0)  # absl's own exits 1
  try:
    rest, overrides = split_overrides(argv)
    return Args(argv=flags.FLAGS(rest), overrides=overrides)
  except (flags.Error, ValueError) as e:
    fail(str(e).splitlines()[0] + "  (see --help)")


def fail(message: str, status: int = USAGE_EXIT) -> None:
  sys.stderr.write(f"error: {message}\n")
  sys.stderr.flush()
  sys.exit(status)


def run_guarded(fn: Callable[[], Any], *, debug: bool = False) -> Any:
  """Runs `fn`; a user error or a runtime stop becomes one `error:` line and its exit status
  (`exit_codes`; the traceback too with `debug`). Unexpected errors keep their traceback."""
  try:
    return fn()
  except KeyboardInterrupt:
    sys.stderr.write("\ninterrupted\n")
    sys.exit(exit_codes.PREEMPTED_SIGINT)
  except Exception as e:  # pylint: disable=broad-except
    status = exit_codes.status_of(e)
    if status is None:
      raise
    if debug:
      traceback.print_exc()
    lines = str(e).strip().splitlines()
    fail(lines[0] if lines else type(e).__name__, status)


# ------------------------------------------------------------------------------------- configs

def resolve_path(path: str) -> str:
  """`path` if it exists, else the same path relative to the repository; FileNotFoundError."""
  if os.path.exists(path) or os.path.isabs(path):
    if not os.path.isfile(path):
      raise FileNotFoundError(f"--config: no config file {path!r}; {_known_hint()}")
    return path
  candidate = os.path.join(ROOT, path)
  if os.path.isfile(candidate):
    return candidate
  raise FileNotFoundError(f"--config: no config file {path!r} (relative to {os.getcwd()} or "
                          f"to {ROOT}); {_known_hint()}")


def _known_hint() -> str:
  return "known: " + ", ".join(name for name, _, _ in config_table()) + " (--mode=configs)"


def load_config(spec: str, overrides: Sequence[tuple[str, str]] = ()
                ) -> tuple[ml_collections.ConfigDict, str]:
  """(locked config, 'resolved_path[:arg]') of `--config=spec` plus the command-line overrides.

  `spec` is a config file (`PATH.py[:ARG]`) or a run's resolved `config.json`."""
  path, colon, arg = spec.partition(":")
  path = resolve_path(path)
  if path.endswith(".json"):
    if arg:
      raise ValueError(f"--config={spec}: a JSON config takes no arguments")
    config = read_json_config(path)
  else:
    config = _run_get_config(path, spec, arg)
  for key, value in overrides:
    apply_override(config, key, value)
  config.lock()
  return config, path + colon + arg


def read_json_config(path: str) -> ml_collections.ConfigDict:
  """A run's resolved config.json (what training wrote); ValueError naming the file."""
  try:
    with open(path) as f:
      value = json.load(f)
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
    raise ValueError(f"--config={path}: not a readable JSON config ({e})") from None
  if not isinstance(value, dict) or "model" not in value or "data" not in value:
    raise ValueError(f"--config={path}: not a run's config.json (a JSON object with model, "
                     "data, eval, ... fields, as training writes it)")
  return ml_collections.ConfigDict(value)


def _run_get_config(path: str, spec: str, arg: str) -> ml_collections.ConfigDict:
  if not path.endswith(".py"):
    raise ValueError(f"--config={spec}: expected a config file (.py, e.g. configs/dncnn.py) or "
                     "a run's config.json")
  if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # configs import `configs.common` and `restoration`
  module_spec = importlib.util.spec_from_file_location(
      "config_" + os.path.basename(path).removesuffix(".py"), path)
  module = importlib.util.module_from_spec(module_spec)
  try:
    module_spec.loader.exec_module(module)
  except SyntaxError as e:
    raise ValueError(f"--config: {path} is not valid Python (line {e.lineno}: {e.msg})") from e
  if not hasattr(module, "get_config"):
    raise ValueError(f"--config: {path} has no get_config(arg) function")
  try:
    return module.get_config(arg or None)
  except ValueError as e:
    raise ValueError(f"--config={spec}: {e}") from e


def apply_override(config: ml_collections.ConfigDict, key: str, text: str) -> None:
  """Sets `config.<key>` from its command-line text (ValueError naming the field)."""
  *parents, leaf = key.split(".")
  target, walked = config, []
  for name in parents:
    if not isinstance(target, (ml_collections.ConfigDict, dict)) or name not in target:
      raise ValueError(_unknown(config, ".".join(walked + [name])))
    target, walked = target[name], walked + [name]
  parent = ".".join(walked)
  if not isinstance(target, (ml_collections.ConfigDict, dict)):
    raise ValueError(f"--config.{key}: config.{parent} is a value, not a group of fields")
  if leaf not in target and parent not in OPEN_DICTS:
    raise ValueError(_unknown(config, key))
  old = target[leaf] if leaf in target else None
  value = parse_value(text, old, key)
  if isinstance(target, ml_collections.ConfigDict):
    with target.ignore_type():  # the value was parsed by the field's type above
      target[leaf] = value
  else:
    target[leaf] = value


def parse_value(text: str, old: Any, key: str) -> Any:
  """The value `text` stands for, given the field's current value `old`."""
  if isinstance(old, bool):
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes"):
      return True
    if lowered in ("false", "0", "no"):
      return False
    raise ValueError(f"--config.{key}={text!r}: a flag; use true or false")
  if isinstance(old, int):
    try:
      return int(text)
    except ValueError:
      raise ValueError(f"--config.{key}={text!r}: an integer is expected") from None
  if isinstance(old, float):
    try:
      return float(text)
    except ValueError:
      raise ValueError(f"--config.{key}={text!r}: a number is expected") from None
  if isinstance(old, str):
    return text
  literal = _literal(text)
  if old is None:
    return text if literal is _NOT_LITERAL else literal
  if literal is _NOT_LITERAL:
    raise ValueError(f"--config.{key}={text!r}: not JSON or a Python literal (quote the "
                     f"whole value for the shell, e.g. --config.{key}='{json.dumps(_plain(old))}')")
  kinds = {tuple: (list, tuple), list: (list, tuple)}
  allowed = next((v for k, v in kinds.items() if isinstance(old, k)), (dict,))
  if not isinstance(literal, allowed):
    raise ValueError(f"--config.{key}={text!r}: expected a {type(old).__name__} like "
                     f"{json.dumps(_plain(old))}")
  return tuple(literal) if isinstance(old, tuple) else literal


_NOT_LITERAL = object()


def _literal(text: str) -> Any:
  try:
    return json.loads(text)
  except json.JSONDecodeError:
    pass
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return _NOT_LITERAL


def _plain(value: Any) -> Any:
  return value.to_dict() if hasattr(value, "to_dict") else value


def _unknown(config: ml_collections.ConfigDict, key: str) -> str:
  fields = list(_flat_keys(config))
  close = difflib.get_close_matches(key, fields, n=1, cutoff=0.6)
  hint = f"; did you mean --config.{close[0]}?" if close else ""
  return (f"--config.{key}: no such config field{hint} (every field is documented in "
          "configs/default.py)")


def _flat_keys(config: Any, prefix: str = ""):
  for k, v in config.items():
    yield prefix + k
    if isinstance(v, (ml_collections.ConfigDict, dict)):
      yield from _flat_keys(v, f"{prefix}{k}.")


# ------------------------------------------------------------------------------------- listing

def config_table() -> list[tuple[str, str, str]]:
  """(path, one-line description, arguments) of every config file, from the docstrings."""
  rows = []
  files = sorted(glob.glob(os.path.join(ROOT, "configs", "*.py")))
  files += sorted(glob.glob(os.path.join(ROOT, "configs", "sweeps", "*.py")))
  for path in files:
    if os.path.basename(path) in ("__init__.py", "common.py"):
      continue
    with open(path) as f:
      doc = ast.get_docstring(ast.parse(f.read())) or ""
    first = doc.strip().splitlines()[0] if doc.strip() else ""
    rows.append((os.path.relpath(path, ROOT), first, _arguments(doc)))
  return rows


def _arguments(doc: str) -> str:
  """The docstring's 'Arguments' paragraph, on one line ('' when there is none)."""
  start = doc.find("Arguments")
  if start < 0:
    return ""
  paragraph = doc[start:].split("\n\n")[0]
  text = " ".join(paragraph.split())
  return text.split(":", 1)[1].strip() if ":" in text[:40] else text


def describe_configs() -> str:
  lines = ["Configs (--config=PATH[:ARG,ARG=VALUE]; every field: configs/default.py):"]
  for path, first, args in config_table():
    lines.append(f"  {path}")
    lines.append(f"      {first}")
    if args:
      lines.append(f"      arguments: {args}")
  return "\n".join(lines)
