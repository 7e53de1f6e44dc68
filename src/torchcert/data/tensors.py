"""Datasets as uint8 tensors: the :class:`Split` container, normalisation, data range, splitting and batching.

Images stay uint8 (N, C, H, W) on the device until a batch is drawn; augmentation (see ``augment.py``) works on
uint8 batches and :func:`normalize` turns a batch into the float input of the network.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional, Tuple, Union

import torch

from .info import DatasetInfo

Device = Union[str, torch.device]


@dataclass
class Split:
    """One split of a dataset: ``images`` uint8 (N, C, H, W), ``labels`` int64 (N,), both on one device."""

    images: torch.Tensor
    labels: torch.Tensor
    info: DatasetInfo

    def __post_init__(self) -> None:
        if self.images.dim() != 4 or self.images.dtype != torch.uint8:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(f"labels must have shape ({self.images.shape[0]},), got {tuple(self.labels.shape)}")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, index: torch.Tensor) -> "Split":
        """The samples at ``index`` (a 1-D int64 tensor or a slice), in that order."""
        if isinstance(index, torch.Tensor):
            index = index.to(self.labels.device)
        return Split(self.images[index], self.labels[index], self.info)

    def to(self, device: Device) -> "Split":
        return Split(self.images.to(device), self.labels.to(device), self.info)


def _channel_view(values: Tuple[float, ...], device: Device, dtype: torch.dtype) -> torch.Tensor:
    return torch.tensor(values, device=device, dtype=dtype).view(1, -1, 1, 1)


def normalize(images: torch.Tensor, info: DatasetInfo, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Network input ``(images / 255 - mean) / std`` per channel; ``images`` uint8 (B, C, H, W) -> ``dtype``.

    Equals torchvision's ``ToTensor`` followed by ``Normalize(mean, std)`` used by the original code.
    """
    x = images.to(dtype) / 255.0
    return (x - _channel_view(info.mean, x.device, dtype)) / _channel_view(info.std, x.device, dtype)


def data_range(info: DatasetInfo, device: Device = "cpu", dtype: torch.dtype = torch.float32
               ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Normalised pixel range ``(data_min, data_max)``, each (1, C, 1, 1): ``(0 - mean) / std``, ``(1 - mean) / std``."""
    mean, std = _channel_view(info.mean, device, dtype), _channel_view(info.std, device, dtype)
    return (0.0 - mean) / std, (1.0 - mean) / std


def train_valid_split(split: Split, valid_share: float, shuffle: bool = False,
                      generator: Optional[torch.Generator] = None, seed: Optional[int] = None
                      ) -> Tuple[Split, Split]:
    """Hold out part of a training split for validation, as the original ``--valid_share``.

    ``valid_share`` is the share KEPT FOR TRAINING (the original's naming): with N samples the first
    ``int(valid_share * N)`` go to training and the rest to validation (``--valid_share 0.8`` keeps 80% for
    training). With ``shuffle`` (the original ``--valid_shuffle``) a random permutation drawn from ``generator``
    (or a fresh one seeded with ``seed``) decides instead. The caller trains with augmentation and evaluates the
    validation part without it, as the original does.
    """
    if not 0.0 < valid_share < 1.0:
        raise ValueError(f"valid_share is the share kept for training and must lie in (0, 1), got {valid_share}")
    n = len(split)
    n_train = int(valid_share * n)
    if not shuffle:
        return split.subset(slice(0, n_train)), split.subset(slice(n_train, n))
    if generator is None:
        generator = torch.Generator()
        generator.manual_seed(0 if seed is None else seed)
    order = torch.randperm(n, generator=generator, device=generator.device)
    return split.subset(order[:n_train]), split.subset(order[n_train:])


def iterate_batches(split: Split, batch_size: int, shuffle: bool = False,
                    generator: Optional[torch.Generator] = None, drop_last: bool = False
                    ) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(images uint8 (B, C, H, W), labels int64 (B,))`` on the split's device.

    Like the original ``DataLoader`` (``drop_last=False``): every sample once per pass, the last batch may be
    smaller. With ``shuffle`` the order is one ``randperm`` drawn from ``generator`` (default RNG if None).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
    n = len(split)
    device = split.labels.device
    if shuffle:
        gen_device = generator.device if generator is not None else "cpu"
        order = torch.randperm(n, generator=generator, device=gen_device).to(device)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        if shuffle:
            index = order[start:start + batch_size]
            yield split.images[index], split.labels[index]
        else:
            yield split.images[start:start + batch_size], split.labels[start:start + batch_size]
