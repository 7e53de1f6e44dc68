"""Static facts about each dataset: shape, class count and the normalisation of the original code.

Nothing here reads data; :func:`dataset_info` is cheap and safe to call anywhere (model building, configs).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple


@dataclass(frozen=True)
class DatasetInfo:
    """Shape and normalisation of one dataset.

    ``mean``/``std`` are per channel, on the [0, 1] pixel scale: the network sees ``(x / 255 - mean) / std``.
    """

    name: str
    in_ch: int
    in_dim: int
    num_class: int
    mean: Tuple[float, ...]
    std: Tuple[float, ...]


# Values of the original datasets.py (MNIST is not normalised there: mean 0, std 1).
_INFOS = {
    "mnist": DatasetInfo("mnist", 1, 28, 10, (0.0,), (1.0,)),
    "cifar10": DatasetInfo("cifar10", 3, 32, 10, (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "tinyimagenet": DatasetInfo("tinyimagenet", 3, 64, 200, (0.4802, 0.4481, 0.3975), (0.2302, 0.2265, 0.2262)),
    "imagenet64": DatasetInfo("imagenet64", 3, 64, 1000, (0.4815, 0.4578, 0.4082), (0.2153, 0.2111, 0.2121)),
    "digits": DatasetInfo("digits", 1, 8, 10, (0.0,), (1.0,)),
}

# Spellings used by the original code's --data flag, accepted for convenience.
_ALIASES = {"cifar": "cifar10", "cifar-10": "cifar10", "tiny-imagenet": "tinyimagenet", "imagenet": "imagenet64"}

DATASET_NAMES: Tuple[str, ...] = tuple(_INFOS)


def canonical_name(name: str) -> str:
    """Canonical dataset name (lower case, aliases resolved); ValueError listing the valid names otherwise."""
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in _INFOS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASET_NAMES)}")
    return key


def dataset_info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of ``name`` (one of :data:`DATASET_NAMES`, or an alias such as ``cifar``)."""
    return _INFOS[canonical_name(name)]
