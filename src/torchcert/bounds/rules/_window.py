"""Helpers for backward coefficients that cover a rectangular window of a feature map.

Backward coefficients ``A`` have shape ``(S, B, *shape)``. For feature maps ``(C, H, W)`` the last two
dimensions may cover only the window ``[oy, oy + h) x [ox, ox + w)`` of the ``H x W`` map (the
receptive field of the neurons being bounded); ``offset = (oy, ox)``. For vectors ``offset`` is None.
"""
from __future__ import annotations

from typing import Optional, Tuple

from torch import Tensor

Offset = Optional[Tuple[int, int]]


def crop(t: Tensor, offset: Offset, size: Tuple[int, ...]) -> Tensor:
    """``t[..., oy:oy+h, ox:ox+w]`` where ``(h, w) = size[-2:]``; ``t`` itself when ``offset`` is None."""
    if offset is None:
        return t
    oy, ox = offset
    h, w = size[-2], size[-1]
    if oy == 0 and ox == 0 and t.shape[-2] == h and t.shape[-1] == w:
        return t
    return t[..., oy:oy + h, ox:ox + w]


def channel_view(v: Tensor, ndim: int) -> Tensor:
    """Per-channel vector ``(C,)`` viewed to broadcast over ``(..., C, *spatial)`` with ``ndim`` feature dims."""
    return v.view((-1,) + (1,) * (ndim - 1))
