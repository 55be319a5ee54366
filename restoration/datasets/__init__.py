"""The standard test/training sets and published weights the configs name: where each comes
from, its checksum, and where it is on this machine.

  python -m restoration.datasets list                 # every entry: source, size, licence
  python -m restoration.datasets fetch bsd68          # download into the cache, verify
  python -m restoration.datasets path dncnn_s25       # the verified local path (fetch first)
  python -m restoration.datasets verify cbsd68 [DIR]  # check a copy against the checksums

Data specs name a set by registry name: `--config.data.eval=dataset:bsd68`
(restoration.data.specs). `locate` finds it, in order, under every data root
(`$RESTORATION_DATA`, `os.pathsep`-separated, then `<repository>/../shared/data`) at the entry's
`local` path, then in the cache (`$RESTORATION_CACHE`, default `~/.cache/restoration`); the
first copy found is verified against the checksums and used (a mismatch is an error naming
the file), so a machine that already has the files never downloads them.

Checksums. A weights file: the SHA-256 of the file. An image set: a manifest
(`manifests/<name>.sha256`, `sha256sum -c` format, one line per image) of the files as the
source holds them, so a corrupt or missing image is named. Sets whose checksums are unknown
(not present where this registry was made) say so: they are fetched and used unverified, with
a warning. Sizes are bytes of the verified files. Source archives (GitHub's generated zips,
the BSDS500 tarball) are verified by their content, not their own bytes.

`fetch` (restoration.datasets.fetching) downloads with urllib (https://, http://, file://).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os

from absl import logging

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MANIFESTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "manifests")
DEFAULT_DATA_ROOT = os.path.join(ROOT, "..", "shared", "data")

_DNCNN = "https://github.com/cszn/DnCNN"
_DNCNN_COMMIT = "e93b27812d3ff523a3a79d19e5e50d233d7a8d0a"
_DNCNN_ZIP = f"{_DNCNN}/archive/{_DNCNN_COMMIT}.zip"
_FFDNET = "https://github.com/cszn/FFDNet/raw/e787f46df2f374ff3591186706229cb9a0591fea/models"
_CBSD68_COMMIT = "51a07a95884ac7c8bdd5d1614f9da781adc3c4a0"
_BSDS = ("http://www.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/BSR/"
         "BSR_bsds500.tgz")
_BSDS_LICENCE = ("Berkeley Segmentation Dataset (Martin et al., ICCV 2001): free for research "
                 "use, cite the paper")
_ZHANG_LICENCE = "released by Zhang et al. with the paper's code (research use; cite the paper)"


@dataclasses.dataclass(frozen=True)
class Entry:
  """One set or weights file. `urls`: one archive / file, or the set's files one by one;
  `member`: the folder inside an archive that holds the set; `manifests`: checksum files
  (the first describes what `urls` gives; more are other known-good layouts, e.g. a copy
  made from the same originals under other names); `sha256`: a weights file's."""
  name: str
  title: str
  kind: str                      # 'images' | 'weights'
  about: str                     # what it is, one line
  urls: tuple[str, ...]          # () when no direct download is known (see `page`)
  licence: str
  local: str                     # path under a data root where a copy may already be
  page: str = ""                 # where it is described / obtained by hand
  member: str = ""
  manifests: tuple[str, ...] = ()
  sha256: str | None = None
  files: int | None = None
  size: int | None = None

  @property
  def checksum_known(self) -> bool:
    return bool(self.manifests) or self.sha256 is not None


def _weights(name: str, about: str, url: str, local: str, sha: str, size: int) -> Entry:
  return Entry(name, os.path.basename(local), "weights", about, (url,), _ZHANG_LICENCE, local,
               sha256=sha, files=1, size=size)


REGISTRY: dict[str, Entry] = {e.name: e for e in [
    Entry("train400", "Train400", "images", "DnCNN's gray training set (400 BSDS crops, 180x180)",
          (_DNCNN_ZIP,), _BSDS_LICENCE, "denoise/train/Train400",
          page=f"{_DNCNN}/tree/{_DNCNN_COMMIT}/TrainingCodes/DnCNN_TrainingCodes_v1.0/data",
          member="TrainingCodes/DnCNN_TrainingCodes_v1.0/data/Train400",
          manifests=("train400.sha256",), files=400, size=8242575),
    Entry("bsd68", "BSD68", "images", "gray BSD68 test set (BSDS500 test images, gray)",
          (_DNCNN_ZIP,), _BSDS_LICENCE, "denoise/test/BSD68",
          page=f"{_DNCNN}/tree/{_DNCNN_COMMIT}/testsets", member="testsets/BSD68",
          manifests=("bsd68.sha256",), files=68, size=6450605),
    Entry("set12", "Set12", "images", "classic gray test set (12 images, 256^2 / 512^2)",
          (_DNCNN_ZIP,), "classic test images (research use)", "denoise/test/Set12",
          page=f"{_DNCNN}/tree/{_DNCNN_COMMIT}/testsets", member="testsets/Set12",
          manifests=("set12.sha256",), files=12, size=1195905),
    Entry("cbsd68", "CBSD68", "images", "colour BSD68 test set (PNG)",
          (f"https://github.com/clausmichele/CBSD68-dataset/archive/{_CBSD68_COMMIT}.zip",),
          _BSDS_LICENCE, "denoise/test/CBSD68",
          page="https://github.com/clausmichele/CBSD68-dataset", member="CBSD68/original_png",
          # The download names images 0000..0067; ../shared/data's copy is a Pillow decode of
          # the BSDS500 JPEGs named by BSDS id (18256358 bytes): both are accepted.
          manifests=("cbsd68.sha256", "cbsd68_bsds_ids.sha256"), files=68, size=20084133),
    Entry("cbsd432", "CBSD432", "images",
          "colour training set: the 500 BSDS500 JPEGs minus CBSD68's 68 ids",
          (_BSDS,), _BSDS_LICENCE, "denoise/train/CBSD432",
          page="https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/resources.html",
          member="BSR/BSDS500/data/images", manifests=("cbsd432.sha256",), files=432,
          size=32068464),
    Entry("kodak24", "Kodak24", "images", "Kodak Lossless True Color Image Suite (24, 768x512)",
          tuple(f"http://r0k.us/graphics/kodak/kodak/kodim{i:02d}.png" for i in range(1, 25)),
          "released by Eastman Kodak for unrestricted use", "denoise/test/Kodak24",
          page="http://r0k.us/graphics/kodak/", files=24),
    Entry("mcmaster", "McMaster", "images", "McMaster colour test set (18 crops, 500x500)", (),
          "academic data set (Zhang et al., JEI 2011): cite the paper", "denoise/test/McMaster",
          page="https://www4.comp.polyu.edu.hk/~cslzhang/CDM_Dataset.htm", files=18),
    Entry("urban100", "Urban100", "images", "Urban100 (Huang et al., CVPR 2015; 100 photos)", (),
          "academic data set: cite the paper", "denoise/test/Urban100",
          page="https://github.com/jbhuang0604/SelfExSR", files=100),
    _weights("dncnn_s15", "DnCNN-S, gray, sigma 15", f"{_DNCNN}/raw/{_DNCNN_COMMIT}/model/"
             "specifics/sigma=15.mat", "pretrained/dncnn/dncnn_s15.mat",
             "657d5115fa05d371dbf0df1f0a931eff274dae29d08a9cc0824a28caf2460e21", 2292856),
    _weights("dncnn_s25", "DnCNN-S, gray, sigma 25", f"{_DNCNN}/raw/{_DNCNN_COMMIT}/model/"
             "specifics/sigma=25.mat", "pretrained/dncnn/dncnn_s25.mat",
             "5a5404c9e3ef14e353760e14b885439408a654618e14f13b2e97b99b9835020b", 2295807),
    _weights("dncnn_s50", "DnCNN-S, gray, sigma 50", f"{_DNCNN}/raw/{_DNCNN_COMMIT}/model/"
             "specifics/sigma=50.mat", "pretrained/dncnn/dncnn_s50.mat",
             "517dc0b55a8da2c129704ed7921b8557aac40cf3aae9f700dc41a9e25cad0983", 2299259),
    _weights("dncnn_gray_blind", "DnCNN-B, gray, blind sigma in [0, 55]",
             f"{_DNCNN}/raw/{_DNCNN_COMMIT}/model/GD_Gray_Blind.mat",
             "pretrained/dncnn/dncnn_gray_blind.mat",
             "37f76da0b71dd2b2789ce91848fe2f184ab486203c9af9ac1b98199b60ea02b0", 2766582),
    _weights("cdncnn_color_blind", "CDnCNN-B, colour, blind sigma in [0, 55]",
             f"{_DNCNN}/raw/{_DNCNN_COMMIT}/model/GD_Color_Blind.mat",
             "pretrained/dncnn/cdncnn_color_blind.mat",
             "57db5437a44037e7675a99042fe7b14d3dcdf1c333d3ec665855566e8a59795c", 2763713),
    _weights("ffdnet_gray", "FFDNet, gray, sigma map in [0, 75]", f"{_FFDNET}/FFDNet_gray.mat",
             "pretrained/ffdnet/FFDNet_gray.mat",
             "14c231e87a444a9bd85b0b5e174e73b4f6ac50bf4050e75a0d3f4d69f77a2093", 2025905),
    _weights("ffdnet_color", "FFDNet, colour", f"{_FFDNET}/FFDNet_color.mat",
             "pretrained/ffdnet/FFDNet_color.mat",
             "a4b5a9da21294ab9ba6ed5c6cc459c46dff20c025eb7d3ab82e8e0bb00541793", 3373400),
    _weights("ffdnet_clip_gray", "FFDNet, gray, clipped noisy inputs",
             f"{_FFDNET}/FFDNet_Clip_gray.mat", "pretrained/ffdnet/FFDNet_Clip_gray.mat",
             "c51ca4b7920313015caa5a773339701bc3d0c900b41a5aed7847efd1243400f3", 2025689),
    _weights("ffdnet_clip_color", "FFDNet, colour, clipped noisy inputs",
             f"{_FFDNET}/FFDNet_Clip_color.mat", "pretrained/ffdnet/FFDNet_Clip_color.mat",
             "7966f04fbe529d45181a3a19b51fff7f1939a9fefce8a0b44dc878b3cd6bf6a2", 3372841),
]}


def get(name: str) -> Entry:
  key = str(name).strip().lower()
  if key not in REGISTRY:
    raise ValueError(f"unknown data set or weights {name!r}; known: {', '.join(REGISTRY)} "
                     "(python -m restoration.datasets list)")
  return REGISTRY[key]


def data_roots() -> list[str]:
  """Where local copies may be: $RESTORATION_DATA (os.pathsep-separated), ../shared/data."""
  env = [p for p in os.environ.get("RESTORATION_DATA", "").split(os.pathsep) if p]
  return env + [os.path.normpath(DEFAULT_DATA_ROOT)]


def cache_dir() -> str:
  return os.path.expanduser(os.environ.get("RESTORATION_CACHE", "~/.cache/restoration"))


def cached_path(entry: Entry, cache: str | None = None) -> str:
  """Where `fetch` puts `entry` in the cache."""
  base = os.path.join(cache or cache_dir(), entry.kind)
  return os.path.join(base, entry.name + (".mat" if entry.kind == "weights" else ""))


def file_sha256(path: str) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


def read_manifest(name: str) -> dict[str, str]:
  """relative path -> sha256 of a shipped manifest (sha256sum format)."""
  out = {}
  with open(os.path.join(MANIFESTS, name)) as f:
    for line in f:
      if line.strip():
        sha, rel = line.rstrip("\n").split("  ", 1)
        out[rel] = sha
  return out


def _set_files(folder: str) -> dict[str, str]:
  out = {}
  for root, dirs, files in os.walk(folder):
    dirs.sort()
    for f in files:
      path = os.path.join(root, f)
      out[os.path.relpath(path, folder).replace(os.sep, "/")] = path
  return out


def verify(entry: Entry, path: str) -> bool:
  """True when `path` matches `entry`'s checksums; False when none are known (warned).

  ValueError naming the first differing file (a set: against the manifest whose names it
  holds) or FileNotFoundError when `path` does not exist."""
  if not os.path.exists(path):
    raise FileNotFoundError(f"{entry.name}: {path} does not exist")
  if not entry.checksum_known:
    logging.warning("%s: no published checksum is recorded; %s is used unverified",
                    entry.name, path)
    return False
  if entry.kind == "weights":
    got = file_sha256(path)
    if got != entry.sha256:
      raise ValueError(f"{entry.name}: {path} has sha256 {got}, expected {entry.sha256} "
                       "(corrupt or another file: delete it and fetch again)")
    return True
  files = _set_files(path)
  manifests = [read_manifest(m) for m in entry.manifests]
  # The manifest whose names the folder holds most of (several layouts may be accepted).
  manifest = max(manifests, key=lambda m: len(set(m) & set(files)))
  missing = sorted(set(manifest) - set(files))
  if missing:
    raise ValueError(f"{entry.name}: {path} lacks {len(missing)} of its {len(manifest)} files, "
                     f"e.g. {missing[0]}")
  for rel in sorted(manifest):
    got = file_sha256(files[rel])
    if got != manifest[rel]:
      raise ValueError(f"{entry.name}: {files[rel]} has sha256 {got}, expected "
                       f"{manifest[rel]} (corrupt or another file)")
  return True


def locate(name: str, *, cache: str | None = None) -> str:
  """The verified local path of `name`: under a data root, else in the cache.

  FileNotFoundError (saying how to fetch it) when there is no copy; ValueError naming the
  file when the copy found fails its checksums."""
  entry = get(name)
  candidates = [os.path.join(r, entry.local) for r in data_roots()]
  candidates.append(cached_path(entry, cache))
  for path in candidates:
    if os.path.exists(path):
      verify(entry, path)
      return path
  how = (f"python -m restoration.datasets fetch {entry.name}" if entry.urls else
         f"get it by hand from {entry.page} and put it under a data root as {entry.local}")
  raise FileNotFoundError(
      f"{entry.title} ({entry.name}) is not on this machine (looked in "
      f"{', '.join(candidates)}): {how}, or set RESTORATION_DATA to a folder holding "
      f"{entry.local}")
