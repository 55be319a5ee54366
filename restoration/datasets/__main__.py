"""`python -m restoration.datasets list | fetch NAME... | path NAME | verify NAME [DIR]`.

  list     every entry: name, what it is, files, bytes, checksum known, source, licence
  fetch    download into the cache ($RESTORATION_CACHE, default ~/.cache/restoration) and
           verify; a local copy under a data root ($RESTORATION_DATA, ../shared/data) is
           verified and used instead (nothing downloaded)
  path     print the verified local path (what `dataset:NAME` specs read)
  verify   check DIR (default: the copy `path` finds) against the checksums

Errors end with one `error: ...` line and exit status 2.
"""

from __future__ import annotations

import sys

from restoration import datasets
from restoration.datasets import fetching


def _list() -> str:
  lines = []
  for e in datasets.REGISTRY.values():
    size = "?" if e.size is None else f"{e.size:,} bytes"
    check = "sha256 known" if e.checksum_known else "checksum unknown"
    source = e.urls[0] if len(e.urls) == 1 else (f"{len(e.urls)} files, {e.urls[0]} ..."
                                                 if e.urls else f"by hand: {e.page}")
    lines.append(f"{e.name:20s} {e.title}: {e.about}; {e.files or '?'} file(s), {size}, "
                 f"{check}\n{'':20s} source: {source}\n{'':20s} licence: {e.licence}")
  return "\n".join(lines)


def main(argv: list[str]) -> int:
  usage = __doc__.splitlines()[0]
  if not argv or argv[0] in ("-h", "--help"):
    print(__doc__)
    return 0
  command, names = argv[0], argv[1:]
  try:
    if command == "list":
      print(_list())
    elif command == "fetch" and names:
      for name in names:
        entry = datasets.get(name)
        try:
          path = datasets.locate(name)
          print(f"{name}: verified local copy, nothing to download: {path}")
        except FileNotFoundError:
          fetching.fetch(entry)
    elif command == "path" and len(names) == 1:
      print(datasets.locate(names[0]))
    elif command == "verify" and names and len(names) <= 2:
      entry = datasets.get(names[0])
      path = names[1] if len(names) == 2 else datasets.locate(names[0])
      ok = datasets.verify(entry, path)
      print(f"{entry.name}: {path} {'matches its checksums' if ok else 'NOT verified (no checksum recorded)'}")
    else:
      raise ValueError(f"usage: {usage}")
  except (ValueError, OSError) as e:
    sys.stderr.write(f"error: {e}\n")
    return 2
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
