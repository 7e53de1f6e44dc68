"""Branch and bound on the input box for a conjunction ``AND_j g_j(x) <= 0`` (a VNN-LIB disjunct of several rows):
it is infeasible when every sub-box has some margin ``g_j`` bounded above its rounding tolerance.

Each round bounds a batch of sub-boxes at once (max of IBP and CROWN on the float64 copy), drops those closed, tries
their centres as counterexamples (every ``g_j < 0`` by a plain forward pass) and halves the rest along their widest
dimension (the two halves share the midpoint, so together they cover the parent exactly). Complete for
low-dimensional inputs given time; for images the number of boxes explodes, so callers use it on small inputs only.
"""
from __future__ import annotations

import time
from typing import Optional, Tuple

import torch
from torch import Tensor, nn

from torchcert.bounds import Box, crown, crown_relu_bounds, ibp

from .verdict import tolerance


def closed_boxes(bound_model: nn.Module, lower: Tensor, upper: Tensor, run_dtype: torch.dtype) -> Tensor:
    """``(N,)``: sub-boxes ``lower/upper (N, *in)`` on which some margin's lower bound clears its tolerance."""
    rows = bound_model(lower[:1].double()).shape[1]
    eye = torch.eye(rows, dtype=torch.float64).expand(lower.shape[0], rows, rows)
    box = Box(lower.double(), upper.double())
    with torch.no_grad():
        relu_bounds = crown_relu_bounds(bound_model, box)
        lb = torch.maximum(ibp(bound_model, box, eye).lower,
                           crown(bound_model, box, eye, "given", relu_bounds=relu_bounds).lower)
    tau = tolerance(bound_model, Box(lower, upper), eye, run_dtype, relu_bounds)  # CROWN's boxes: a tighter tau
    return (lb > tau).any(dim=1)


def split_widest(lower: Tensor, upper: Tensor) -> Tuple[Tensor, Tensor]:
    """Each box ``(N, *in)`` halved along its widest coordinate: ``(2N, *in)`` lowers and uppers."""
    flat_lo, flat_hi = lower.flatten(1), upper.flatten(1)
    dim = (flat_hi - flat_lo).argmax(dim=1)
    rows = torch.arange(lower.shape[0])
    mid = (flat_lo[rows, dim] + flat_hi[rows, dim]) / 2
    left_hi, right_lo = flat_hi.clone(), flat_lo.clone()
    left_hi[rows, dim], right_lo[rows, dim] = mid, mid
    lo, hi = torch.cat([flat_lo, right_lo]), torch.cat([left_hi, flat_hi])
    return lo.view((-1,) + lower.shape[1:]), hi.view((-1,) + lower.shape[1:])


def input_split(model: nn.Module, bound_model: nn.Module, lower: Tensor, upper: Tensor, timeout: float,
                batch: int = 256) -> Tuple[str, Optional[Tensor]]:
    """``("verified", None)``, ``("falsified", x (1, *in))`` or ``("timeout", None)`` for the conjunction
    ``AND_j model(x)_j <= 0`` over the box ``lower/upper (1, *in)`` (module docstring)."""
    start = time.perf_counter()
    run_dtype = next(model.parameters()).dtype
    queue_lo, queue_hi = lower, upper
    while queue_lo.shape[0]:
        if time.perf_counter() - start > timeout:
            return "timeout", None
        lo, hi = queue_lo[:batch], queue_hi[:batch]
        queue_lo, queue_hi = queue_lo[batch:], queue_hi[batch:]
        centre = ((lo + hi) / 2).to(run_dtype)
        with torch.no_grad():
            worst = model(centre).max(dim=1).values
        hit = (worst < 0).nonzero().flatten()
        if hit.numel():
            return "falsified", centre[hit[0]:hit[0] + 1]
        keep = ~closed_boxes(bound_model, lo, hi, run_dtype)
        if bool(keep.any()):
            kids_lo, kids_hi = split_widest(lo[keep], hi[keep])
            queue_lo, queue_hi = torch.cat([kids_lo, queue_lo]), torch.cat([kids_hi, queue_hi])
    return "verified", None
