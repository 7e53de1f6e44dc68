"""Atomic ``.npy`` caches of decoded datasets (uint8 images, int64 labels), opened memory-mapped.

A cache is two files ``<split>-images.npy`` and ``<split>-labels.npy`` in a ``torchcert-cache`` folder next to
the data; both are written under a temporary name and renamed when complete, so an interrupted conversion
never leaves a cache that looks valid. Delete the folder to rebuild it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

CACHE_DIR = "torchcert-cache"


def cache_paths(root: Path, split: str) -> Tuple[Path, Path]:
    folder = root / CACHE_DIR
    return folder / f"{split}-images.npy", folder / f"{split}-labels.npy"


def load_cache(root: Path, split: str) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """``(images, labels)`` when both cache files exist (images memory-mapped copy-on-write), else None."""
    images_path, labels_path = cache_paths(root, split)
    if not (images_path.is_file() and labels_path.is_file()):
        return None
    return np.load(images_path, mmap_mode="c"), np.load(labels_path)


def temporary(path: Path) -> Path:
    """Name to write ``path`` under before the atomic rename (keeps the ``.npy`` suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(path.stem + ".tmp.npy")


def commit(tmp: Path, path: Path) -> None:
    os.replace(tmp, path)


def save_cache(root: Path, split: str, images: np.ndarray, labels: np.ndarray) -> None:
    """Write both cache files atomically (labels last: their presence marks a complete cache)."""
    images_path, labels_path = cache_paths(root, split)
    for array, path in ((images, images_path), (labels.astype(np.int64), labels_path)):
        tmp = temporary(path)
        np.save(tmp, array)
        commit(tmp, path)
