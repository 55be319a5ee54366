"""CIFAR-10 npz shards small enough to travel to a lent GPU (benchmarks/gpu_study.sh).

A call to the device machine carries at most 64 MiB, and ../shared/data/cifar10 is six ~23.5 MB
npz shards that do not compress further as they are. Stored as each image row's pixel
differences (uint8, wrapping) and xz'd they are ~19.2 MB each (delta + xz measured here: plain
xz 23.5 MB), so train_0, train_1 and test travel with the wheels in one call and train_2..4 in
the next. Lossless: `unpack` returns the shard's exact bytes.

  python benchmarks/cifar_shards.py --pack=DEST NAME...    # ../shared/data/cifar10/NAME.npz
  python benchmarks/cifar_shards.py --unpack=SRC_GLOB --to=DIR
"""

import glob
import lzma
import os
import sys

import numpy as np

CIFAR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..",
                     "shared", "data", "cifar10")


def pack(images: np.ndarray) -> bytes:
  """uint8 (N, H, W, C) -> xz of the differences along each row (the first pixel kept)."""
  if images.dtype != np.uint8 or images.ndim != 4:
    raise ValueError(f"pack: expected uint8 NHWC images, got {images.dtype} {images.shape}")
  delta = np.diff(images.astype(np.int16), axis=2, prepend=0).astype(np.uint8)
  return lzma.compress(delta.tobytes(), preset=9)


def unpack(data: bytes, shape: tuple[int, int, int]) -> np.ndarray:
  """The inverse of `pack`, given the images' (H, W, C)."""
  delta = np.frombuffer(lzma.decompress(data), np.uint8).reshape(-1, *shape)
  return np.cumsum(delta, axis=2, dtype=np.uint8)  # uint8 sums wrap as the differences did


def main(argv: list[str]) -> None:
  opts = dict(a[2:].split("=", 1) for a in argv if a.startswith("--"))
  names = [a for a in argv if not a.startswith("--")]
  if "pack" in opts:
    os.makedirs(opts["pack"], exist_ok=True)
    for name in names:
      d = np.load(os.path.join(CIFAR, f"{name}.npz"))
      with open(os.path.join(opts["pack"], f"{name}.xz"), "wb") as f:
        f.write(pack(d["image"]))
      np.save(os.path.join(opts["pack"], f"{name}.label.npy"), d["label"])
      print("packed", name, d["image"].shape, flush=True)
  elif "unpack" in opts and "to" in opts:
    os.makedirs(opts["to"], exist_ok=True)
    for path in sorted(glob.glob(opts["unpack"])):
      name = os.path.basename(path)[:-len(".xz")]
      image = unpack(open(path, "rb").read(), (32, 32, 3))
      np.savez(os.path.join(opts["to"], f"{name}.npz"), image=image,
               label=np.load(path[:-len(".xz")] + ".label.npy"))
      print("unpacked", name, image.shape, flush=True)
  else:
    sys.exit("usage: cifar_shards.py --pack=DEST NAME... | --unpack=GLOB --to=DIR")


if __name__ == "__main__":
  main(sys.argv[1:])
