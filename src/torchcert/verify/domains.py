"""Branch-and-bound sub-problems: which unstable ReLUs are split, and the relaxation they induce.

A domain is the input box intersected with one phase constraint per split neuron: ``s·z_i(x) >= 0`` with
``s = +1`` (active) or ``s = -1`` (inactive). Only neurons unstable at the root (``l < 0 < u``) can be split,
so a domain is stored as one int8 row over the root-unstable neurons.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence, Tuple

import torch

from torchcert.bounds import Box


@dataclass(frozen=True)
class NeuronIndex:
    """Where the root-unstable neurons live.

    ``shapes[i]``: neuron shape of ReLU i (without batch); ``offsets[i]``: start of ReLU i in the concatenation of
    all flattened ReLU inputs; ``unstable``: (U,) int64 global flat indices of the neurons with ``l < 0 < u``.
    """

    shapes: Tuple[Tuple[int, ...], ...]
    offsets: Tuple[int, ...]
    unstable: torch.Tensor

    @property
    def total(self) -> int:
        return self.offsets[-1] + _numel(self.shapes[-1]) if self.shapes else 0

    @property
    def size(self) -> int:
        return int(self.unstable.numel())

    @staticmethod
    def from_bounds(relu_bounds: Sequence[Box]) -> "NeuronIndex":
        """Index of the unstable neurons of root bounds given per ReLU as Box (1, *shape)."""
        shapes = tuple(tuple(b.lower.shape[1:]) for b in relu_bounds)
        offsets, start = [], 0
        for shape in shapes:
            offsets.append(start)
            start += _numel(shape)
        if not relu_bounds:  # no ReLU: nothing to split
            return NeuronIndex((), (), torch.zeros(0, dtype=torch.int64))
        low, up = flat_bounds(relu_bounds)
        unstable = torch.nonzero((low[0] < 0) & (up[0] > 0)).flatten()
        return NeuronIndex(shapes, tuple(offsets), unstable)

    def layer_of(self, flat: torch.Tensor) -> torch.Tensor:
        """ReLU index of each global flat neuron index."""
        starts = torch.tensor(self.offsets, device=flat.device)
        return torch.searchsorted(starts, flat, right=True) - 1


def _numel(shape: Sequence[int]) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def flat_bounds(relu_bounds: Sequence[Box]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Concatenate per-ReLU bounds (B, *shape_i) into (B, total)."""
    low = torch.cat([b.lower.flatten(1) for b in relu_bounds], dim=1)
    up = torch.cat([b.upper.flatten(1) for b in relu_bounds], dim=1)
    return low, up


def dense_signs(index: NeuronIndex, splits: torch.Tensor) -> torch.Tensor:
    """Splits (D, U) int8 -> dense signs (D, total) in the root dtype-agnostic int8."""
    dense = torch.zeros(splits.shape[0], index.total, dtype=torch.int8, device=splits.device)
    dense[:, index.unstable] = splits
    return dense


def split_relu_bounds(root: Sequence[Box], index: NeuronIndex, splits: torch.Tensor) -> List[Box]:
    """Pre-activation bounds of each domain: ``l <- max(l, 0)`` where split active, ``u <- min(u, 0)`` inactive.

    root: Box (1, *shape_i) per ReLU; splits (D, U) -> list of Box (D, *shape_i).
    """
    signs = dense_signs(index, splits)
    out = []
    for box, shape, start in zip(root, index.shapes, index.offsets):
        s = signs[:, start:start + _numel(shape)].view(-1, *shape)
        low = torch.where(s > 0, box.lower.clamp(min=0), box.lower.expand_as(s.to(box.lower.dtype)))
        up = torch.where(s < 0, box.upper.clamp(max=0), box.upper.expand_as(s.to(box.upper.dtype)))
        out.append(Box(low, up))
    return out


def split_signs(index: NeuronIndex, splits: torch.Tensor, dtype: torch.dtype) -> List[torch.Tensor]:
    """Per ReLU the split sign s in {-1, 0, +1} as (D, 1, *shape_i) of ``dtype`` (broadcast over specs)."""
    signs = dense_signs(index, splits).to(dtype)
    return [signs[:, start:start + _numel(shape)].view(-1, 1, *shape)
            for shape, start in zip(index.shapes, index.offsets)]


def children(splits: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
    """Two children per domain: splits (D, U), chosen (D,) positions in [0, U) -> (2D, U), active ones first."""
    rows = torch.arange(splits.shape[0], device=splits.device)
    active, inactive = splits.clone(), splits.clone()
    active[rows, chosen] = 1
    inactive[rows, chosen] = -1
    return torch.cat([active, inactive], dim=0)


class DomainQueue:
    """Open domains with their per-spec lower bounds; the lowest (worst) bound is processed first."""

    def __init__(self, num_unstable: int, num_specs: int, device: torch.device, dtype: torch.dtype) -> None:
        self.splits = torch.zeros(0, num_unstable, dtype=torch.int8, device=device)
        self.lbs = torch.zeros(0, num_specs, dtype=dtype, device=device)

    def __len__(self) -> int:
        return int(self.splits.shape[0])

    def push(self, splits: torch.Tensor, lbs: torch.Tensor) -> None:
        self.splits = torch.cat([self.splits, splits])
        self.lbs = torch.cat([self.lbs, lbs])

    def pop(self, count: int, deep: int = 0) -> Tuple[torch.Tensor, torch.Tensor]:
        """Remove and return the ``count`` domains with the lowest min-over-specs bound, of which up to ``deep``
        are instead the domains with the most splits (diving towards leaves finds counterexamples sooner)."""
        worst = self.lbs.min(dim=1).values
        count = min(count, len(self))
        deep = min(deep, count)
        keep = torch.ones(len(self), dtype=torch.bool, device=worst.device)
        if deep:
            depth = (self.splits != 0).sum(dim=1).to(worst.dtype) - 1e-9 * worst
            keep[torch.topk(depth, deep).indices] = False
        rest = torch.where(keep, -worst, torch.full_like(worst, -float("inf")))
        keep[torch.topk(rest, count - deep).indices] = False
        take = ~keep
        out = self.splits[take], self.lbs[take]
        self.splits, self.lbs = self.splits[keep], self.lbs[keep]
        return out

    def min_bound(self) -> float:
        return float(self.lbs.min()) if len(self) else float("inf")
