"""``load_dataset``: one entry point that dispatches to the per-dataset readers and returns a :class:`Split`.

Default data folder: ``./data/<name>`` relative to the current directory (``./data/mnist``, ``./data/cifar10``,
``./data/tinyimagenet``, ``./data/imagenet64``); ``digits`` ships with scikit-learn and needs no folder.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, Optional, Tuple, Union

import numpy as np
import torch

from .info import canonical_name, dataset_info
from .tensors import Device, Split

SPLITS = ("train", "test")

Arrays = Tuple[np.ndarray, np.ndarray]


def _mnist(data_dir: Path, split: str, download: bool) -> Arrays:
    from .mnist import load_mnist
    return load_mnist(data_dir, split, download)


def _cifar10(data_dir: Path, split: str, download: bool) -> Arrays:
    from .cifar10 import load_cifar10
    return load_cifar10(data_dir, split, download)


def _tinyimagenet(data_dir: Path, split: str, download: bool) -> Arrays:
    from .tinyimagenet import load_tinyimagenet
    return load_tinyimagenet(data_dir, split, download)


def _imagenet64(data_dir: Path, split: str, download: bool) -> Arrays:
    from .imagenet64 import load_imagenet64
    return load_imagenet64(data_dir, split, download)


def _digits(data_dir: Path, split: str, download: bool) -> Arrays:
    from .digits import load_digits_arrays
    return load_digits_arrays(split)


_LOADERS: Dict[str, Callable[[Path, str, bool], Arrays]] = {
    "mnist": _mnist, "cifar10": _cifar10, "tinyimagenet": _tinyimagenet, "imagenet64": _imagenet64,
    "digits": _digits,
}


def default_data_dir(name: str) -> Path:
    """``./data/<name>`` (relative to the current working directory)."""
    return Path("data") / canonical_name(name)


def load_dataset(name: str, split: str, data_dir: Optional[Union[str, Path]] = None, device: Device = "cpu",
                 download: bool = False) -> Split:
    """Load one split (``"train"`` or ``"test"``) as uint8 images (N, C, H, W) and int64 labels on ``device``.

    ``data_dir`` defaults to :func:`default_data_dir`. Missing files raise ``FileNotFoundError`` naming the
    folder searched and how to obtain the data (``download=True`` where a public download exists).
    """
    key = canonical_name(name)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    folder = Path(data_dir) if data_dir is not None else default_data_dir(key)
    images, labels = _LOADERS[key](folder, split, download)
    info = dataset_info(key)
    expected = (info.in_ch, info.in_dim, info.in_dim)
    if tuple(images.shape[1:]) != expected:
        raise ValueError(f"{key} {split}: images have shape {tuple(images.shape[1:])}, expected {expected}")
    images_t = torch.from_numpy(images) if images.flags.writeable else torch.from_numpy(np.array(images))
    return Split(images_t.to(device), torch.from_numpy(labels).to(torch.int64).to(device), info)
