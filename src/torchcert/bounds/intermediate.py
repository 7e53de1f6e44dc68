"""CROWN bounds for selected (unstable) neurons of one layer, in chunks of neighbouring neurons.

The neurons of a feature map are taken tile by tile (``T x T`` positions, all channels), so all the
neurons of a chunk share one receptive field: back-substitution then only touches that window of every
earlier feature map (see ``rules._window``), never a dense matrix per layer pair. Upper bounds are
lower bounds of the negated neurons, so each chunk is one back-substitution of ``2 S`` rows.
"""
from __future__ import annotations

import math
from typing import Iterator, Sequence, Tuple

import torch
from torch import Tensor

from .backsub import lower_bound
from .box import Box
from .layers import Layer
from .rules import relu

Tile = Tuple[Tuple[slice, ...], object]


def _tiles(shape: Tuple[int, ...], frac: float, chunk: int, side: int) -> Iterator[Tile]:
    """(feature slices, window offset) of chunks: ``side x side`` positions of a feature map, or about
    ``chunk`` selected neurons of a vector."""
    if len(shape) == 3:
        c, h, w = shape
        for y in range(0, h, side):
            for x in range(0, w, side):
                yield (slice(None), slice(y, min(y + side, h)), slice(x, min(x + side, w))), (y, x)
    else:
        size = max(1, int(chunk / max(frac, 1e-9)))
        flat = math.prod(shape)
        for f in range(0, flat, size):
            yield (slice(f, min(f + size, flat)),), None


def _unit_rows(mask: Tensor, dtype: torch.dtype) -> Tuple[Tensor, Tensor, Tensor]:
    """Rows ``e_i`` for the selected neurons of each example: ``(S, B, n)``, indices ``(B, S)``, valid."""
    batch, n = mask.shape
    s = int(mask.sum(1).max())
    idx = torch.argsort(mask.to(torch.int8), dim=1, descending=True, stable=True)[:, :s]
    valid = mask.gather(1, idx)
    rows = torch.zeros(batch, s, n, dtype=dtype, device=mask.device)
    rows.scatter_(2, idx.unsqueeze(-1), valid.unsqueeze(-1).to(dtype))
    return rows.transpose(0, 1), idx, valid


def _write(target: Tensor, where: Tuple[slice, ...], idx: Tensor, valid: Tensor, values: Tensor) -> None:
    """``target[:, where]`` (flattened per example) at ``idx`` := ``values`` where ``valid``."""
    full = (slice(None),) + where
    tile = target[full].reshape(target.shape[0], -1)
    tile.scatter_(1, idx, torch.where(valid, values, tile.gather(1, idx)))
    target[full] = tile.view(target[full].shape)


def crown_neurons(layers: Sequence[Layer], box: Box, relaxations: Sequence[relu.Relaxation],
                  reference: Box, mask: Tensor, chunk: int = 512, side: int = 1) -> Box:
    """Bounds of the outputs of ``layers``: CROWN where ``mask`` (``(B, *shape)``), ``reference`` elsewhere."""
    lower, upper = reference.lower.clone(), reference.upper.clone()
    if not bool(mask.any()):
        return Box(lower, upper)
    shape = tuple(lower.shape[1:])
    frac = float(mask.flatten(1).float().mean(1).max())
    for where, offset in _tiles(shape, frac, chunk, side):
        sub = mask[(slice(None),) + where]
        if not bool(sub.any()):
            continue
        rows, idx, valid = _unit_rows(sub.reshape(sub.shape[0], -1), lower.dtype)
        A = rows.reshape(rows.shape[:2] + sub.shape[1:])
        bound = lower_bound(layers, torch.cat([A, -A]), offset, box, relaxations)
        s = A.shape[0]
        _write(lower, where, idx, valid, bound[:s].t())
        _write(upper, where, idx, valid, -bound[s:].t())
    return Box(lower, upper)
