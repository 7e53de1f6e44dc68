"""Downsampled ImageNet 64x64 (1000 classes) from the official npz batches, converted once to memory-mapped .npy.

Input: ``train_data_batch_1..10.npz`` and ``val_data.npz`` anywhere under ``data_dir`` (e.g. the extracted
``Imagenet64_train_npz`` / ``Imagenet64_val_npz`` folders); each holds ``data`` (N, 12288) uint8 with the
R, G and B 64x64 planes one after the other (so a plain reshape gives (N, 3, 64, 64)) and ``labels`` 1..1000.

Class order is the original pipeline's: its conversion script saved each image into a folder named
``str(label - 1)`` and read them back with torchvision ``ImageFolder``, which sorts folder names as strings
("0", "1", "10", "100", "101", ...). So class index = position of ``str(label - 1)`` among the sorted strings
``"0"..."999"`` (see :func:`folder_class_index`). Samples are ordered as ImageFolder does: by that class index,
then in file order (train batches 1..10, numerically; the original depended on ``os.listdir`` order here).
The ``test`` split is ``val_data`` (the original's ``test/`` folder).
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import List, Tuple

import numpy as np

from .cache import cache_paths, commit, load_cache, temporary

logger = logging.getLogger(__name__)

NUM_CLASS = 1000
SIDE = 64


def folder_class_index(num_class: int = NUM_CLASS) -> np.ndarray:
    """Lookup (num_class,) int64: 0-based label -> ImageFolder index of the folder ``str(label)``."""
    order = sorted(range(num_class), key=str)  # folder labels in string order
    lookup = np.empty(num_class, dtype=np.int64)
    lookup[np.array(order)] = np.arange(num_class)
    return lookup


def _batch_number(path: Path) -> int:
    match = re.search(r"(\d+)$", path.name[: -len(".npz")])
    return int(match.group(1)) if match else 0


def find_files(data_dir: Path, split: str) -> List[Path]:
    """The npz files of ``split`` under ``data_dir`` (train batches sorted numerically)."""
    pattern = "train_data_batch_*.npz" if split == "train" else "val_data.npz"
    return sorted(data_dir.rglob(pattern), key=lambda p: (_batch_number(p), str(p)))


def _read_labels(path: Path) -> np.ndarray:
    with np.load(path) as npz:
        labels = np.asarray(npz["labels"], dtype=np.int64).reshape(-1)
    if labels.size and (labels.min() < 1 or labels.max() > NUM_CLASS):
        raise ValueError(f"{path}: labels must lie in 1..{NUM_CLASS}, found {labels.min()}..{labels.max()}")
    return labels


def _destinations(files: List[Path]) -> Tuple[List[np.ndarray], np.ndarray]:
    """Per file, the output row of each of its samples; and the class index of each output row."""
    per_file = [_read_labels(p) for p in files]
    classes = folder_class_index()[np.concatenate(per_file) - 1]
    order = np.argsort(classes, kind="stable")  # output row r holds input sample order[r]
    rows = np.empty_like(order)
    rows[order] = np.arange(order.size)
    bounds = np.cumsum([0] + [labels.size for labels in per_file])
    return [rows[bounds[i]:bounds[i + 1]] for i in range(len(files))], classes[order]


def convert(files: List[Path], root: Path, split: str) -> None:
    """Write the split's cache: images via a memory map (never all in RAM), then the labels (marks completion)."""
    rows, labels = _destinations(files)
    images_path, labels_path = cache_paths(root, split)
    tmp = temporary(images_path)
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(labels.size, 3, SIDE, SIDE))
    for path, dest in zip(files, rows):
        logger.info("converting %s", path)
        with np.load(path) as npz:
            out[dest] = np.asarray(npz["data"], dtype=np.uint8).reshape(-1, 3, SIDE, SIDE)
    out.flush()
    del out
    commit(tmp, images_path)
    tmp = temporary(labels_path)
    np.save(tmp, labels)
    commit(tmp, labels_path)


def load_imagenet64(data_dir: Path, split: str, download: bool = False) -> Tuple[np.ndarray, np.ndarray]:
    """``(images uint8 (N, 3, 64, 64) memory-mapped, labels int64 (N,))`` of ``train`` or ``test`` (= val)."""
    cached = load_cache(data_dir, split)
    if cached is not None:
        return cached
    files = find_files(data_dir, split) if data_dir.is_dir() else []
    if not files:
        hint = " (automatic download is not available: ImageNet needs an account)" if download else ""
        wanted = "train_data_batch_1..10.npz" if split == "train" else "val_data.npz"
        raise FileNotFoundError(
            f"ImageNet64 {split} files ({wanted}) not found under {data_dir}{hint}. Download the 64x64 "
            f"'downsampled image data' (npz, Train and Val) from image-net.org, extract both archives into "
            f"{data_dir}, and load again (converted once to .npy in {data_dir}).")
    logger.info("converting ImageNet64 %s (%d files) to memory-mapped .npy, once", split, len(files))
    convert(files, data_dir, split)
    return load_cache(data_dir, split)
