"""CROWN bounds for selected (unstable) neurons of one layer, in chunks of neighbouring neurons.

Neurons of a feature map are back-substituted with per-neuron patches (their receptive field only, see
``patches``); neurons of a vector (after a Flatten) in chunks of dense rows. Never a dense matrix per
layer pair. Upper bounds are lower bounds of the negated neurons, so each chunk is one
back-substitution of ``2 S`` rows.
"""
from __future__ import annotations

import math
from typing import Sequence, Tuple

import torch
from torch import Tensor

from .backsub import lower_bound
from .box import Box
from .layers import Layer
from .patches import lower_bound as patch_lower_bound, unit_conv_rows
from .rules import conv, flatten, relu

#: cap on the elements of one dense coefficient tensor (rows x widest feature map), 32M floats = 128 MB
MAX_ELEMENTS = 32 * 2 ** 20


def _unit_rows(mask: Tensor) -> Tuple[Tensor, Tensor]:
    """Indices ``(B, S)`` of the selected neurons of each example (padded) and which are valid."""
    s = int(mask.sum(1).max())
    idx = torch.argsort(mask.to(torch.int8), dim=1, descending=True, stable=True)[:, :s]
    return idx, mask.gather(1, idx)


def _one_hot(idx: Tensor, valid: Tensor, n: int, dtype: torch.dtype) -> Tensor:
    """``(S, B, n)`` with a one at ``idx[b, s]`` where ``valid``."""
    batch, s = idx.shape
    rows = torch.zeros(batch, s, n, dtype=dtype, device=idx.device)
    rows.scatter_(2, idx.unsqueeze(-1), valid.unsqueeze(-1).to(dtype))
    return rows.transpose(0, 1)


def _write(target: Tensor, idx: Tensor, valid: Tensor, values: Tensor) -> None:
    """``target`` (flattened per example) at ``idx`` ``(B, S)`` := ``values`` where ``valid``."""
    flat = target.view(target.shape[0], -1)
    flat.scatter_(1, idx, torch.where(valid, values, flat.gather(1, idx)))


def crown_neurons(layers: Sequence[Layer], box: Box, relaxations: Sequence[relu.Relaxation],
                  reference: Box, mask: Tensor, chunk: int = 512) -> Box:
    """Bounds of the outputs of ``layers``: CROWN where ``mask`` (``(B, *shape)``), ``reference`` elsewhere."""
    lower, upper = reference.lower.clone(), reference.upper.clone()
    if not bool(mask.any()):
        return Box(lower, upper)
    shape = tuple(lower.shape[1:])
    if len(shape) == 3 and all(layer.rule is not flatten for layer in layers):
        return _map_neurons(layers, box, relaxations, Box(lower, upper), mask, chunk)
    widest = max(math.prod(layer.in_shape) for layer in layers) * lower.shape[0]
    rows = max(1, min(chunk, MAX_ELEMENTS // (2 * widest)))
    flat = mask.reshape(mask.shape[0], -1)
    count = int(flat.sum(1).max())
    order = torch.argsort(flat.to(torch.int8), dim=1, descending=True, stable=True)[:, :count]
    for start in range(0, count, rows):
        idx = order[:, start:start + rows]
        valid = flat.gather(1, idx)
        A = _one_hot(idx, valid, flat.shape[1], lower.dtype).reshape((idx.shape[1], idx.shape[0]) + shape)
        bound = lower_bound(layers, torch.cat([A, -A]), None, box, relaxations)
        s = A.shape[0]
        _write(lower, idx, valid, bound[:s].t())
        _write(upper, idx, valid, -bound[s:].t())
    return Box(lower, upper)


def _map_neurons(layers: Sequence[Layer], box: Box, relaxations: Sequence[relu.Relaxation],
                 out: Box, mask: Tensor, chunk: int) -> Box:
    """Patch bounds of the selected neurons of a feature map, chunked by positions ``(b, y, x)``."""
    lower, upper = out.lower, out.upper
    positions = mask.any(1).nonzero()
    per_position = int(mask.sum(1).max())
    step = max(1, chunk // per_position)
    for start in range(0, positions.shape[0], step):
        b, y, x = positions[start:start + step].unbind(1)
        selected = mask[b, :, y, x]
        bound, idx, valid = _position_bounds(layers, box, relaxations, selected, (b, y, x))
        s = idx.shape[1]
        _write_map(lower, b, y, x, idx, valid, bound[:, :s])
        _write_map(upper, b, y, x, idx, valid, -bound[:, s:])
    return Box(lower, upper)


def _position_bounds(layers: Sequence[Layer], box: Box, relaxations: Sequence[relu.Relaxation],
                     selected: Tensor, where: Tuple[Tensor, Tensor, Tensor]):
    """Lower bounds ``(P, 2S)`` of ``+-`` the selected neurons ``(P, C)`` at positions ``where``."""
    idx, valid = _unit_rows(selected)
    if layers[-1].rule is conv and layers[-1].op.groups == 1:
        rows, bias = unit_conv_rows(layers[-1].op, idx, valid, *where, layers[-1].in_shape)
        return patch_lower_bound(layers[:-1], rows, box, relaxations, bias), idx, valid
    A = _one_hot(idx, valid, selected.shape[1], box.lower.dtype).transpose(0, 1)
    A = torch.cat([A, -A], 1).view(A.shape[0], -1, A.shape[2], 1, 1)
    return patch_lower_bound(layers, (A,) + tuple(where), box, relaxations), idx, valid


def _write_map(target: Tensor, b: Tensor, y: Tensor, x: Tensor, idx: Tensor, valid: Tensor,
               values: Tensor) -> None:
    """``target[b, idx, y, x] = values`` where ``valid`` (``idx``, ``values``: ``(P, S)``)."""
    bb, yy, xx = (t.unsqueeze(1).expand_as(idx) for t in (b, y, x))
    target[bb[valid], idx[valid], yy[valid], xx[valid]] = values[valid]
