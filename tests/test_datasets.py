"""The data/weights registry (restoration.datasets): checksums, local copies, offline fetches."""

import dataclasses
import hashlib
import io
import os
import re
import tarfile
import zipfile

import numpy as np
import pytest
from PIL import Image

from restoration import datasets
from restoration.data import specs
from restoration.datasets import __main__ as cli_main
from restoration.datasets import fetching

SHARED = os.path.normpath(datasets.DEFAULT_DATA_ROOT)


def _png(seed: int) -> bytes:
  buf = io.BytesIO()
  pixels = np.random.default_rng(seed).integers(0, 256, (12, 10), np.uint8)
  Image.fromarray(pixels, "L").save(buf, format="PNG")
  return buf.getvalue()


@pytest.fixture
def tiny(tmp_path, monkeypatch):
  """A registry with one 2-image set served from a local zip (file://) and one weights file."""
  files = {"a.png": _png(0), "b.png": _png(1)}
  manifests = tmp_path / "manifests"
  manifests.mkdir()
  (manifests / "tiny.sha256").write_text(
      "".join(f"{hashlib.sha256(d).hexdigest()}  {n}\n" for n, d in sorted(files.items())))
  monkeypatch.setattr(datasets, "MANIFESTS", str(manifests))
  archive = tmp_path / "repo.zip"
  with zipfile.ZipFile(archive, "w") as z:
    for name, data in files.items():
      z.writestr(f"repo-0123/testsets/Tiny/{name}", data)
    z.writestr("repo-0123/README.md", "not part of the set")
  weights = tmp_path / "w.mat"
  weights.write_bytes(b"weights" * 100)
  images = datasets.Entry("tiny", "Tiny", "images", "two images", (archive.as_uri(),),
                          "test licence", "denoise/test/Tiny", member="testsets/Tiny",
                          manifests=("tiny.sha256",), files=2)
  mat = datasets.Entry("tinyw", "w.mat", "weights", "weights", (weights.as_uri(),), "test",
                       "pretrained/w.mat",
                       sha256=hashlib.sha256(weights.read_bytes()).hexdigest(), files=1)
  monkeypatch.setattr(datasets, "REGISTRY", {"tiny": images, "tinyw": mat})
  monkeypatch.setenv("RESTORATION_CACHE", str(tmp_path / "cache"))
  monkeypatch.setenv("RESTORATION_DATA", str(tmp_path / "no_data_here"))
  monkeypatch.setattr(datasets, "DEFAULT_DATA_ROOT", str(tmp_path / "no_shared"))
  return tmp_path, images, mat, files


def test_registry_names_sources_sizes_and_checksums():
  want = {"train400", "bsd68", "set12", "cbsd68", "cbsd432", "kodak24", "mcmaster",
          "urban100", "dncnn_s15", "dncnn_s25", "dncnn_s50", "dncnn_gray_blind",
          "cdncnn_color_blind", "ffdnet_gray", "ffdnet_color", "ffdnet_clip_gray",
          "ffdnet_clip_color"}
  assert set(datasets.REGISTRY) == want
  for e in datasets.REGISTRY.values():
    assert e.urls or e.page, e.name
    assert e.licence, e.name
    if e.kind == "weights":
      assert re.fullmatch(r"[0-9a-f]{64}", e.sha256) and e.size > 0, e.name
    for m in e.manifests:
      manifest = datasets.read_manifest(m)
      assert all(re.fullmatch(r"[0-9a-f]{64}", v) for v in manifest.values())
      if m == e.manifests[0]:
        assert len(manifest) == e.files, e.name
  # The sets absent here say so: no checksum recorded.
  assert not datasets.get("urban100").checksum_known and not datasets.get("mcmaster").urls
  with pytest.raises(ValueError, match="unknown data set or weights 'bsd69'"):
    datasets.get("bsd69")


@pytest.mark.parametrize("name", ["bsd68", "set12", "cbsd68", "dncnn_s25", "ffdnet_color"])
def test_shared_data_copies_verify(name):
  entry = datasets.get(name)
  path = os.path.join(SHARED, entry.local)
  if not os.path.exists(path):
    pytest.skip(f"{path} absent (shared data not mounted)")
  assert datasets.verify(entry, path) is True


def test_fetch_from_file_url_verifies_and_caches(tiny, capsys):
  tmp_path, images, mat, files = tiny
  path = fetching.fetch(images)
  assert path == str(tmp_path / "cache" / "images" / "tiny")
  assert sorted(os.listdir(path)) == ["a.png", "b.png"]  # README.md was not part of the set
  assert open(os.path.join(path, "b.png"), "rb").read() == files["b.png"]
  assert "tiny: verified" in capsys.readouterr().out
  assert fetching.fetch(images) == path
  assert "already in the cache, verified" in capsys.readouterr().out
  w = fetching.fetch(mat)
  assert w.endswith(os.path.join("weights", "tinyw.mat"))
  assert datasets.locate("tinyw") == w and datasets.locate("tiny") == path


def test_corrupted_download_is_refused_naming_the_file_and_nothing_is_kept(tiny):
  tmp_path, images, mat, files = tiny
  bad = tmp_path / "bad.zip"
  with zipfile.ZipFile(bad, "w") as z:
    z.writestr("repo-0123/testsets/Tiny/a.png", files["a.png"])
    z.writestr("repo-0123/testsets/Tiny/b.png", files["b.png"][:-5] + b"xxxxx")
  with pytest.raises(ValueError, match=r"tiny: .*b\.png has sha256 [0-9a-f]{64}, expected"):
    fetching.fetch(dataclasses.replace(images, urls=(bad.as_uri(),)))
  assert os.listdir(tmp_path / "cache" / "images") == []
  wrong = tmp_path / "wrong.mat"
  wrong.write_bytes(b"other bytes")
  with pytest.raises(ValueError, match=r"tinyw: .*tinyw\.mat\.part has sha256"):
    fetching.fetch(dataclasses.replace(mat, urls=(wrong.as_uri(),)))
  assert os.listdir(tmp_path / "cache" / "weights") == []


def test_tar_archive_with_nested_folders_takes_only_the_manifests_files(tiny):
  """BSDS500's layout: CBSD432's JPEGs spread over train/, val/, test/ among others."""
  tmp_path, images, _, files = tiny
  tgz = tmp_path / "bsds.tgz"
  with tarfile.open(tgz, "w:gz") as t:
    for name, data in [("BSR/images/train/a.png", files["a.png"]),
                       ("BSR/images/test/b.png", files["b.png"]),
                       ("BSR/images/test/c.png", _png(3))]:
      info = tarfile.TarInfo(name)
      info.size = len(data)
      t.addfile(info, io.BytesIO(data))
  path = fetching.fetch(dataclasses.replace(images, urls=(tgz.as_uri(),), member="BSR/images"))
  assert sorted(os.listdir(path)) == ["a.png", "b.png"]


def test_local_copy_is_verified_and_used_instead_of_a_download(tiny):
  tmp_path, images, _, files = tiny
  root = tmp_path / "data"
  local = root / images.local
  local.mkdir(parents=True)
  for name, data in files.items():
    (local / name).write_bytes(data)
  os.environ["RESTORATION_DATA"] = str(root)
  assert datasets.locate("tiny") == str(local)
  assert cli_main.main(["fetch", "tiny"]) == 0
  assert not os.path.exists(tmp_path / "cache")  # nothing downloaded
  source = specs.open_source("dataset:tiny", 1)
  assert len(source) == 2 and specs.set_name("dataset:tiny") == "Tiny"
  (local / "a.png").write_bytes(files["a.png"][:-1])
  with pytest.raises(ValueError, match=r"a\.png has sha256"):
    datasets.locate("tiny")
  os.remove(local / "a.png")
  with pytest.raises(ValueError, match="lacks 1 of its 2 files, e.g. a.png"):
    datasets.locate("tiny")


def test_missing_set_says_how_to_get_it_and_cli_errors_are_one_line(tiny, capsys):
  with pytest.raises(FileNotFoundError,
                     match="python -m restoration.datasets fetch tiny.*RESTORATION_DATA"):
    datasets.locate("tiny")
  assert cli_main.main(["verify", "nope"]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith("error: unknown data set or weights 'nope'")
  assert cli_main.main(["list"]) == 0
  out = capsys.readouterr().out
  assert "tiny" in out and "sha256 known" in out and "licence: test licence" in out
