"""CROWN bounds for selected (unstable) neurons of one layer, in chunks of neighbouring neurons.

Neurons of a feature map are back-substituted with per-neuron patches (their receptive field only, see
``patches``); neurons of a vector (after a Flatten) in chunks of dense rows. Never a dense matrix per
layer pair. Upper bounds are lower bounds of the negated neurons, so each chunk is one
back-substitution of ``2 S`` rows. Chunks are sized by a budget of coefficients per tensor (measured on
CNN7: buffers under glibc's mmap threshold are reused instead of page-faulted in afresh, and large
patch chunks amortise the per-chunk indexing); ``chunk`` caps the neurons per chunk instead. With more
than one intra-op thread on the CPU, chunks run on worker threads (``workers``).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor

from .backsub import lower_bound
from .box import Box
from .layers import Layer
from .patches import (crop_classes, lower_bound as patch_lower_bound, shared_unit_relu_rows, unit_conv_rows,
                      window_elements)
from .rules import conv, flatten, linear, relu
from .workers import map_chunks

#: coefficients in one dense-row tensor (rows x widest map): 4M floats = 16 MB, under glibc's largest
#: mmap threshold (32 MB), so its buffers are reused instead of being faulted in afresh
DENSE_BUDGET = 4 * 2 ** 20
#: coefficients in one patch tensor (rows x largest window): 28 MB, also under the mmap threshold; on
#: CNN7 full CROWN 3% faster than 48 MB chunks with one thread and two workers alike (measured)
PATCH_BUDGET = 7 * 2 ** 20


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
                  reference: Box, mask: Tensor, chunk: Optional[int] = None) -> Box:
    """Bounds of the outputs of ``layers``: CROWN where ``mask`` (``(B, *shape)``), ``reference`` elsewhere."""
    lower, upper = reference.lower.clone(), reference.upper.clone()
    if not bool(mask.any()):
        return Box(lower, upper)
    shape = tuple(lower.shape[1:])
    if len(shape) == 3 and all(layer.rule is not flatten for layer in layers):
        return _map_neurons(layers, box, relaxations, Box(lower, upper), mask, chunk)
    widest = max(math.prod(layer.in_shape) for layer in layers) * lower.shape[0]
    rows = max(1, DENSE_BUDGET // (2 * widest))
    rows = min(rows, chunk) if chunk else rows
    flat = mask.reshape(mask.shape[0], -1)
    count = int(flat.sum(1).max())
    order = torch.argsort(flat.to(torch.int8), dim=1, descending=True, stable=True)[:, :count]
    chunks = [(order[:, start:start + rows], flat.gather(1, order[:, start:start + rows]))
              for start in range(0, count, rows)]

    def bound(item: Tuple[Tensor, Tensor]) -> Tensor:
        return _vector_bounds(layers, box, relaxations, item[0], item[1], shape)

    for (idx, valid), b in zip(chunks, map_chunks(bound, chunks, lower.device)):
        s = idx.shape[1]
        _write(lower, idx, valid, b[:s].t())
        _write(upper, idx, valid, -b[s:].t())
    return Box(lower, upper)


def _vector_bounds(layers: Sequence[Layer], box: Box, relaxations: Sequence[relu.Relaxation], idx: Tensor,
                   valid: Tensor, shape: Tuple[int, ...]) -> Tensor:
    """Lower bounds ``(2S, B)`` of ``+-`` the neurons ``idx`` ``(B, S)`` (where ``valid``) of ``layers``'
    output. Behind a Linear layer the rows start as that layer's weight rows (no one-hot product)."""
    last = layers[-1]
    if last.rule is linear and len(layers) > 1:
        sign = valid.to(last.op.weight.dtype)
        A = (last.op.weight[idx] * sign.unsqueeze(-1)).transpose(0, 1)
        bias = (last.op.bias[idx] * sign).t()
        bound = lower_bound(layers[:-1], torch.cat([A, -A]), None, box, relaxations)
        return bound + torch.cat([bias, -bias])
    A = _one_hot(idx, valid, math.prod(shape), box.lower.dtype).reshape((idx.shape[1], idx.shape[0]) + shape)
    return lower_bound(layers, torch.cat([A, -A]), None, box, relaxations)


def _map_neurons(layers: Sequence[Layer], box: Box, relaxations: Sequence[relu.Relaxation],
                 out: Box, mask: Tensor, chunk: Optional[int]) -> Box:
    """Patch bounds of the selected neurons of a feature map.

    Positions ``(b, y, x)`` are ordered by border class (``crop_classes``) so that every chunk crops its
    windows exactly; a chunk holds whole positions where they fit the budget (or ``chunk`` neurons), else
    the channels of one position in groups.
    """
    lower, upper = out.lower, out.upper
    positions = mask.any(1).nonzero()
    ycls, xcls = crop_classes(layers, tuple(lower.shape[1:]))
    ycls, xcls = ycls.to(positions.device), xcls.to(positions.device)
    key = ycls[positions[:, 1]] * (int(xcls.max()) + 1) + xcls[positions[:, 2]]
    order = torch.argsort(key, stable=True)
    positions, key = positions[order], key[order]
    per_position = int(mask.sum(1).max())
    neurons = chunk or max(1, PATCH_BUDGET // (2 * window_elements(layers)))
    step = max(1, neurons // per_position)
    class_sizes = torch.unique_consecutive(key, return_counts=True)[1].tolist()
    chunks = []
    first = 0
    for count in class_sizes:
        for start in range(first, first + count, step):
            where = positions[start:min(start + step, first + count)].unbind(1)
            idx, valid = _unit_rows(mask[where[0], :, where[1], where[2]])
            chunks += [(where, idx[:, g:g + neurons], valid[:, g:g + neurons])
                       for g in range(0, idx.shape[1], neurons)]
        first += count

    def bound(item: Tuple[Tuple[Tensor, Tensor, Tensor], Tensor, Tensor]) -> Tensor:
        return _position_bounds(layers, box, relaxations, item[1], item[2], item[0])

    for (where, idx, valid), b in zip(chunks, map_chunks(bound, chunks, lower.device)):
        s = idx.shape[1]
        _write_map(lower, *where, idx, valid, b[:, :s])
        _write_map(upper, *where, idx, valid, -b[:, s:])
    return Box(lower, upper)


def _position_bounds(layers: Sequence[Layer], box: Box, relaxations: Sequence[relu.Relaxation],
                     idx: Tensor, valid: Tensor, where: Tuple[Tensor, Tensor, Tensor]) -> Tensor:
    """Lower bounds ``(P, 2S)`` of ``+-`` the neurons ``idx`` (channels ``(P, S)``, used where ``valid``)
    at positions ``where``."""
    if layers[-1].rule is conv and layers[-1].op.groups == 1:
        shared = bool(valid.all()) and bool((idx == idx[:1]).all())  # every position: the same channels
        if shared and len(layers) > 1 and layers[-2].rule is relu:
            rows, bias = shared_unit_relu_rows(layers[-1].op, relaxations[-1], idx[0], *where,
                                               layers[-1].in_shape)
            return patch_lower_bound(layers[:-2], rows, box, relaxations, bias)
        rows, bias = unit_conv_rows(layers[-1].op, idx, valid, *where, layers[-1].in_shape)
        return patch_lower_bound(layers[:-1], rows, box, relaxations, bias)
    channels = layers[-1].out_shape[0]
    A = _one_hot(idx, valid, channels, box.lower.dtype).transpose(0, 1)
    A = torch.cat([A, -A], 1).view(A.shape[0], -1, A.shape[2], 1, 1)
    return patch_lower_bound(layers, (A,) + tuple(where), box, relaxations)


def _write_map(target: Tensor, b: Tensor, y: Tensor, x: Tensor, idx: Tensor, valid: Tensor,
               values: Tensor) -> None:
    """``target[b, idx, y, x] = values`` where ``valid`` (``idx``, ``values``: ``(P, S)``)."""
    bb, yy, xx = (t.unsqueeze(1).expand_as(idx) for t in (b, y, x))
    target[bb[valid], idx[valid], yy[valid], xx[valid]] = values[valid]
