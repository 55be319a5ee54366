"""Downloading a registry entry into the cache, verified before it is kept.

A weights file is downloaded to `<cache>/weights/<name>.mat.part`, its SHA-256 checked, then
renamed. An image set is downloaded (an archive: .zip, .tar, .tar.gz / .tgz; or its files one
by one), the files under the entry's `member` folder (those its manifest names, when it has
one, found at any depth: BSDS500 keeps CBSD432's JPEGs in train/, val/ and test/) are
extracted flat into `<cache>/images/<name>.part/`, verified, and the folder renamed to
`<cache>/images/<name>`. A failed check keeps nothing and names the file; an existing cached
copy is verified and kept.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import urllib.request
import zipfile

from restoration import datasets

_CHUNK = 1 << 20


def _download(url: str, dest: str) -> None:
  try:
    with urllib.request.urlopen(url, timeout=60) as response, open(dest, "wb") as f:
      shutil.copyfileobj(response, f, _CHUNK)
  except OSError as e:  # URLError, HTTPError, timeouts are OSErrors
    raise OSError(f"could not download {url}: {e}") from e


def _members(names: list[str], member: str, wanted: set[str] | None) -> dict[str, str]:
  """Archive name -> file name in the set, for files under `member` (at any depth below an
  optional top folder, as GitHub's zips have) that `wanted` names (all when None)."""
  out = {}
  member = member.strip("/")
  for name in names:
    if name.endswith("/"):
      continue
    parts = name.split("/")
    for start in range(0, 2):  # GitHub archives wrap everything in '<repo>-<commit>/'
      path = "/".join(parts[start:])
      if member and not path.startswith(member + "/"):
        continue
      rel = path[len(member) + 1:] if member else path
      base = os.path.basename(rel)
      if wanted is None or base in wanted or rel in wanted:
        out[name] = rel if wanted is None or rel in wanted else base
      break
  return out


def _extract(archive: str, url: str, member: str, wanted: set[str] | None, dest: str) -> int:
  if zipfile.is_zipfile(archive):
    with zipfile.ZipFile(archive) as z:
      chosen = _members(z.namelist(), member, wanted)
      for name, rel in chosen.items():
        os.makedirs(os.path.dirname(os.path.join(dest, rel)) or dest, exist_ok=True)
        with z.open(name) as src, open(os.path.join(dest, rel), "wb") as out:
          shutil.copyfileobj(src, out, _CHUNK)
    return len(chosen)
  try:
    with tarfile.open(archive) as t:
      files = {m.name: m for m in t.getmembers() if m.isfile()}
      chosen = _members(list(files), member, wanted)
      for name, rel in chosen.items():
        os.makedirs(os.path.dirname(os.path.join(dest, rel)) or dest, exist_ok=True)
        with t.extractfile(files[name]) as src, open(os.path.join(dest, rel), "wb") as out:
          shutil.copyfileobj(src, out, _CHUNK)
    return len(chosen)
  except tarfile.TarError as e:
    raise ValueError(f"{url}: not a zip or tar archive ({e})") from e


def fetch(entry: datasets.Entry, cache: str | None = None, *, say=print) -> str:
  """Downloads `entry` into the cache (verified); returns its path."""
  final = datasets.cached_path(entry, cache)
  if os.path.exists(final):
    datasets.verify(entry, final)
    say(f"{entry.name}: already in the cache, verified: {final}")
    return final
  if not entry.urls:
    raise ValueError(f"{entry.name}: no direct download is recorded; get it from "
                     f"{entry.page} and pass its folder to "
                     f"`python -m restoration.datasets verify {entry.name} DIR`")
  os.makedirs(os.path.dirname(final), exist_ok=True)
  part = final + ".part"
  if os.path.isdir(part):
    shutil.rmtree(part)
  elif os.path.exists(part):
    os.remove(part)
  try:
    if entry.kind == "weights":
      say(f"{entry.name}: downloading {entry.urls[0]}")
      _download(entry.urls[0], part)
    elif len(entry.urls) > 1:  # the set's files one by one
      os.makedirs(part)
      for url in entry.urls:
        say(f"{entry.name}: downloading {url}")
        _download(url, os.path.join(part, os.path.basename(url)))
    else:
      wanted = None
      if entry.manifests:
        wanted = set()
        for m in entry.manifests[:1]:  # the layout the download has
          wanted |= set(datasets.read_manifest(m))
      with tempfile.TemporaryDirectory(dir=os.path.dirname(final)) as tmp:
        archive = os.path.join(tmp, "archive")
        say(f"{entry.name}: downloading {entry.urls[0]}")
        _download(entry.urls[0], archive)
        os.makedirs(part)
        if not _extract(archive, entry.urls[0], entry.member, wanted, part):
          raise ValueError(f"{entry.name}: {entry.urls[0]} holds no files under "
                           f"{entry.member!r}")
    try:
      verified = datasets.verify(entry, part)
    except ValueError as e:
      raise ValueError(f"{e}; downloaded from {entry.urls[0]}, nothing kept") from None
  except BaseException:
    if os.path.isdir(part):
      shutil.rmtree(part, ignore_errors=True)
    elif os.path.exists(part):
      os.remove(part)
    raise
  os.replace(part, final)
  say(f"{entry.name}: {'verified' if verified else 'NOT verified (no checksum recorded)'}: "
      f"{final}")
  return final
