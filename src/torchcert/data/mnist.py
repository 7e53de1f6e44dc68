"""MNIST from the four IDX files (gzip-compressed or raw), with an optional checksummed download.

Files are looked up in ``data_dir`` and in ``data_dir/MNIST/raw`` (torchvision's layout, so an existing
``./data`` folder of the original code works). Checksums are SHA-256 of the uncompressed bytes.
"""
from __future__ import annotations

import gzip
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from .download import Checksum, download_file

MIRRORS: Tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

FILES: Dict[str, Tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

SHA256: Dict[str, str] = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}


def read_idx(path: Path) -> np.ndarray:
    """Parse an IDX file of unsigned bytes (magic 0x00 0x00 0x08 ndim, big-endian int32 sizes, then the data)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as stream:
        raw = stream.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes (header {raw[:4].hex()})")
    ndim = raw[3]
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path} is truncated: header says {shape}, found {data.size} bytes of data")
    return data.reshape(shape)


def _find(data_dir: Path, stem: str) -> Optional[Path]:
    for folder in (data_dir, data_dir / "MNIST" / "raw"):
        for name in (stem, stem + ".gz"):
            if (folder / name).is_file():
                return folder / name
    return None


def download_mnist(data_dir: Path, mirrors: Sequence[str] = MIRRORS, timeout: float = 60.0) -> None:
    """Fetch the four ``.gz`` files into ``data_dir`` from the first mirror that serves verified bytes."""
    for stem, digest in SHA256.items():
        if _find(data_dir, stem) is None:
            urls = [base.rstrip("/") + "/" + stem + ".gz" for base in mirrors]
            download_file(urls, data_dir / (stem + ".gz"), Checksum("sha256", digest, gunzip=True), timeout)


def load_mnist(data_dir: Path, split: str, download: bool = False,
               mirrors: Sequence[str] = MIRRORS) -> Tuple[np.ndarray, np.ndarray]:
    """``(images uint8 (N, 1, 28, 28), labels int64 (N,))`` of the ``train`` (60,000) or ``test`` (10,000) split."""
    if download:
        download_mnist(data_dir, mirrors)
    image_stem, label_stem = FILES[split]
    paths = [_find(data_dir, image_stem), _find(data_dir, label_stem)]
    if None in paths:
        raise FileNotFoundError(
            f"MNIST {split} files not found in {data_dir} (nor in {data_dir / 'MNIST' / 'raw'}): looked for "
            f"{image_stem}[.gz] and {label_stem}[.gz]. Pass download=True (CLI: --download) to fetch them, or "
            f"copy the four IDX files (train-/t10k- images/labels, gzip or raw) into that folder.")
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    if images.ndim != 3 or labels.shape != (images.shape[0],):
        raise ValueError(f"MNIST {split}: images {images.shape} and labels {labels.shape} do not match")
    return images[:, None], labels.astype(np.int64)
