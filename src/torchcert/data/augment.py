"""Batched data augmentation on the device, matching the original torchvision training transforms.

The original code applies, per sample, ``RandomHorizontalFlip()`` then ``RandomCrop(S, p, padding_mode='edge')``
(CIFAR-10: p = 2; TinyImageNet and ImageNet64: p = 4; MNIST: nothing). Here the whole batch is done at once:
for sample n with flip bit f_n and crop offsets (i_n, j_n) in {0, ..., 2p}^2,

    out[n, c, y, x] = img[n, c, clamp(i_n + y - p), flip_n(clamp(j_n + x - p))],   flip_n(u) = W - 1 - u if f_n

where ``clamp`` to [0, H-1] / [0, W-1] is exactly edge (replicate) padding by p followed by the crop. It is a
single advanced-indexing gather, valid for uint8 and any device, with no loop over samples.
"""
from __future__ import annotations

from typing import Dict, Optional

import torch

from .info import canonical_name

# Padding of the edge-padded random crop for each augmentation kind (None: no augmentation at all).
AUGMENTATIONS: Dict[str, Optional[int]] = {"none": None, "cifar": 2, "imagenet": 4}

_KIND_OF_DATASET = {"mnist": "none", "digits": "none", "cifar10": "cifar",
                    "tinyimagenet": "imagenet", "imagenet64": "imagenet"}


def augmentation_for(name: str) -> str:
    """The augmentation kind the original code uses for dataset ``name``."""
    return _KIND_OF_DATASET[canonical_name(name)]


def _draw(shape: tuple, high: int, generator: Optional[torch.Generator], device: torch.device) -> torch.Tensor:
    """Integers uniform in [0, high) drawn on the generator's device, returned on ``device``."""
    gen_device = generator.device if generator is not None else device
    return torch.randint(0, high, shape, generator=generator, device=gen_device).to(device)


def flip_crop(images: torch.Tensor, flip: torch.Tensor, top: torch.Tensor, left: torch.Tensor,
              padding: int) -> torch.Tensor:
    """Deterministic part: flip where ``flip`` (B,) is true, then crop at (``top``, ``left``) (B,) of the edge-padded image.

    ``images`` (B, C, H, W); offsets lie in [0, 2 * padding]; output has the input's shape and dtype.
    """
    b, c, h, w = images.shape
    dev = images.device
    rows = (top.view(b, 1) + torch.arange(h, device=dev) - padding).clamp(0, h - 1)   # (B, H)
    cols = (left.view(b, 1) + torch.arange(w, device=dev) - padding).clamp(0, w - 1)  # (B, W)
    cols = torch.where(flip.view(b, 1), w - 1 - cols, cols)
    n = torch.arange(b, device=dev).view(b, 1, 1, 1)
    ch = torch.arange(c, device=dev).view(1, c, 1, 1)
    return images[n, ch, rows.view(b, 1, h, 1), cols.view(b, 1, 1, w)]


def augment(images: torch.Tensor, kind: str, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Random horizontal flip (p = 0.5) then edge-padded random crop, per sample; ``images`` (B, C, H, W).

    ``kind`` is one of :data:`AUGMENTATIONS` (see :func:`augmentation_for`); ``"none"`` returns ``images``.
    Randomness comes from ``generator`` (default RNG if None), so a seeded generator reproduces the batch.
    """
    if kind not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {kind!r}; valid kinds: {', '.join(AUGMENTATIONS)}")
    padding = AUGMENTATIONS[kind]
    if padding is None or images.shape[0] == 0:
        return images
    b, dev = images.shape[0], images.device
    flip = _draw((b,), 2, generator, dev).bool()
    offsets = _draw((2, b), 2 * padding + 1, generator, dev)
    return flip_crop(images, flip, offsets[0], offsets[1], padding)
