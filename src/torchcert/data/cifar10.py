"""CIFAR-10 from the official python batches (``cifar-10-batches-py``), with an optional checksummed download.

CIFAR-10's own distribution format is Python pickle. The batches are read with a restricted unpickler that
only accepts the numpy array reconstruction globals those files contain (any other global is refused), and
downloads come only from the official archive whose MD5 is verified before extraction.
Layout: ``data_dir/cifar-10-batches-py/{data_batch_1..5, test_batch}`` (torchvision's layout, so the original
code's ``./data`` works too), or ``data_dir`` itself being that folder.
"""
from __future__ import annotations

import pickle
import tarfile
from pathlib import Path
from typing import Dict, Sequence, Tuple

import numpy as np

from .download import Checksum, download_file

URLS: Tuple[str, ...] = ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",)
ARCHIVE = "cifar-10-python.tar.gz"
ARCHIVE_MD5 = Checksum("md5", "c58f30108f718f92721af3b95e74349a")
FOLDER = "cifar-10-batches-py"
BATCHES: Dict[str, Tuple[str, ...]] = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),  # encode: bytes in protocol-2 pickles
}


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickler that resolves only numpy's array-reconstruction globals."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing global {module}.{name} in a CIFAR batch file")
        return super().find_class(module, name)


def read_batch(path: Path) -> Tuple[np.ndarray, np.ndarray]:
    """One batch file -> ``(images uint8 (N, 3, 32, 32), labels int64 (N,))``; rows are R, G, B planes of 32x32."""
    with open(path, "rb") as stream:
        entry = _ArrayOnlyUnpickler(stream, encoding="bytes").load()
    if not isinstance(entry, dict) or b"data" not in entry or b"labels" not in entry:
        raise ValueError(f"{path} is not a CIFAR-10 batch (expected a dict with b'data' and b'labels')")
    data = np.asarray(entry[b"data"], dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(f"{path}: data has shape {data.shape}, expected (N, 3072)")
    return data.reshape(-1, 3, 32, 32), np.asarray(entry[b"labels"], dtype=np.int64)


def _batch_folder(data_dir: Path) -> Path:
    return data_dir if data_dir.name == FOLDER else data_dir / FOLDER


def _extract(archive: Path, data_dir: Path) -> None:
    """Extract only the regular files directly under ``cifar-10-batches-py/`` (no other path is written)."""
    target = data_dir / FOLDER
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar.getmembers():
            parts = Path(member.name).parts
            if member.isfile() and len(parts) == 2 and parts[0] == FOLDER:
                source = tar.extractfile(member)
                (target / parts[1]).write_bytes(source.read())


def download_cifar10(data_dir: Path, urls: Sequence[str] = URLS, checksum: Checksum = ARCHIVE_MD5) -> None:
    """Fetch and verify the official archive into ``data_dir`` and extract its batches."""
    archive = download_file(urls, data_dir / ARCHIVE, checksum)
    _extract(archive, data_dir)


def load_cifar10(data_dir: Path, split: str, download: bool = False) -> Tuple[np.ndarray, np.ndarray]:
    """``(images uint8 (N, 3, 32, 32), labels int64 (N,))``: 50,000 train (batches 1..5 in order) or 10,000 test."""
    folder = _batch_folder(data_dir)
    names = BATCHES[split]
    if download and not all((folder / n).is_file() for n in names):
        download_cifar10(data_dir)
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise FileNotFoundError(
            f"CIFAR-10 {split} batches not found in {folder} (missing {', '.join(missing)}). Pass download=True "
            f"(CLI: --download) to fetch {URLS[0]}, or extract that archive into {data_dir}.")
    parts = [read_batch(folder / n) for n in names]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
