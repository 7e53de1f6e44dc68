"""TinyImageNet (200 classes, 64x64) from an extracted ``tiny-imagenet-200`` folder, decoded once and cached.

Class order is the original pipeline's: torchvision ``ImageFolder`` over ``train/``, i.e. the WordNet ids
(``n01443537``, ...) sorted as strings; the ``test`` split is the official ``val`` set (as in the original).
Samples are ordered as ImageFolder orders them: by class index, then by file name (string order). Both the
layout of the official zip (``train/<wnid>/images/*.JPEG``, ``val/images`` + ``val/val_annotations.txt``) and
the reorganised one of the original download script (``train/<wnid>/*.JPEG``, ``val/<wnid>/*.JPEG``) are read.
Decoding needs Pillow (``pip install 'torchcert[imagenet]'``); the result is cached as ``.npy`` in the folder.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import List, Tuple

import numpy as np

from .cache import load_cache, save_cache

logger = logging.getLogger(__name__)

FOLDER = "tiny-imagenet-200"
URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
_IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png"}

Sample = Tuple[Path, int]


def _root(data_dir: Path) -> Path:
    return data_dir / FOLDER if (data_dir / FOLDER).is_dir() else data_dir


def _images_in(folder: Path) -> List[Path]:
    """Image files under ``folder`` (recursively), sorted by (directory, name) like ImageFolder."""
    files = [p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in _IMAGE_SUFFIXES]
    return sorted(files, key=lambda p: (str(p.parent), p.name))


def class_names(root: Path) -> List[str]:
    """The class folders of ``train/`` sorted as strings: position = class index."""
    return sorted(p.name for p in (root / "train").iterdir() if p.is_dir())


def _val_samples(root: Path, index: dict) -> List[Sample]:
    annotations = root / "val" / "val_annotations.txt"
    if annotations.is_file() and (root / "val" / "images").is_dir():
        pairs = [line.split("\t")[:2] for line in annotations.read_text().splitlines() if line.strip()]
        samples = [(root / "val" / "images" / name, index[wnid]) for name, wnid in pairs]
        return sorted(samples, key=lambda s: (s[1], s[0].name))
    return [(p, index[wnid]) for wnid in sorted(index) for p in _images_in(root / "val" / wnid)]


def list_samples(root: Path, split: str) -> List[Sample]:
    """``(path, class index)`` of every image of the split, in ImageFolder's order."""
    index = {wnid: i for i, wnid in enumerate(class_names(root))}
    if split == "train":
        return [(p, index[wnid]) for wnid in sorted(index) for p in _images_in(root / "train" / wnid)]
    return _val_samples(root, index)


def decode(samples: List[Sample]) -> Tuple[np.ndarray, np.ndarray]:
    """Decode with Pillow (converted to RGB, as ImageFolder's loader) -> ``(uint8 (N, 3, 64, 64), int64 (N,))``."""
    try:
        from PIL import Image
    except ImportError as err:
        raise ImportError("decoding TinyImageNet needs Pillow: pip install 'torchcert[imagenet]'") from err
    images = np.empty((len(samples), 3, 64, 64), dtype=np.uint8)
    for i, (path, _) in enumerate(samples):
        with Image.open(path) as img:
            pixels = np.asarray(img.convert("RGB"))
        if pixels.shape != (64, 64, 3):
            raise ValueError(f"{path}: expected a 64x64 image, got {pixels.shape[:2]}")
        images[i] = pixels.transpose(2, 0, 1)
        if i % 20000 == 19999:
            logger.info("decoded %d / %d images", i + 1, len(samples))
    return images, np.array([label for _, label in samples], dtype=np.int64)


def load_tinyimagenet(data_dir: Path, split: str, download: bool = False) -> Tuple[np.ndarray, np.ndarray]:
    """``(images uint8 (N, 3, 64, 64), labels int64 (N,))``: 100,000 train or 10,000 test (the official val)."""
    root = _root(data_dir)
    cached = load_cache(root, split)
    if cached is not None:
        return cached
    if not (root / "train").is_dir():
        hint = " (automatic download is not available for TinyImageNet)" if download else ""
        raise FileNotFoundError(
            f"TinyImageNet not found in {data_dir}{hint}: expected {data_dir / FOLDER}/train and .../val. "
            f"Download {URL}, unzip it into {data_dir}, and load again (decoded once, then cached).")
    samples = list_samples(root, split)
    if not samples:
        raise FileNotFoundError(f"no TinyImageNet {split} images found under {root}")
    logger.info("decoding %d TinyImageNet %s images (once; cached in %s)", len(samples), split, root)
    images, labels = decode(samples)
    save_cache(root, split, images, labels)
    return images, labels
