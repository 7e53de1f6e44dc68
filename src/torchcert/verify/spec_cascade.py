"""The cascade for a network whose outputs are the margins (VNN-LIB properties, :mod:`.instance`): verified when
every output ``g_j(x) > 0`` on the box, falsified at a point with some ``g_j(x) < 0`` by a plain forward pass.

A property ``C f(x) + d > 0`` is verified by appending the spec as a last linear layer (``g = C f + d``), so the
specification here is the identity. The stages are those of :mod:`.cascade` (IBP, CROWN, α-CROWN, branch and
bound: :func:`.cascade.bound_stage`, :func:`.cascade.record_stage`, :func:`.cascade.bab_stage`) under one deadline.
"""
from __future__ import annotations

import time
from typing import Optional, Sequence

import torch
from torch import nn

from torchcert.bounds import Box

from .attack import margin_pgd, min_margins, random_points
from .bab import BabSettings
from .cascade import ALPHA_ITERATIONS, METHODS, STAGES, BoundState, VerifyResult, bab_stage, bound_stage, \
    record_stage
from .verdict import bound_copy, model_dtype, tolerance


def identity_state(model: nn.Module, bound_model: nn.Module, box: Box, outputs: int) -> BoundState:
    """The bounding state before any stage for ``C = I`` (the outputs are the margins): ``tau`` from IBP boxes."""
    run_dtype, dtype = model_dtype(model), model_dtype(bound_model)
    C = torch.eye(outputs, dtype=run_dtype, device=box.lower.device).unsqueeze(0)
    tau = tolerance(bound_model, box, C, run_dtype).to(dtype)
    lb = torch.full(C.shape[:2], -float("inf"), dtype=dtype, device=C.device)
    return BoundState(box, Box(box.lower.to(dtype), box.upper.to(dtype)), C, C.to(dtype), tau, lb)


def _out_of_time(deadline: float, needed: float) -> bool:
    return time.perf_counter() + needed > deadline


def verify_spec(model: nn.Module, lower: torch.Tensor, upper: torch.Tensor, methods: Sequence[str] = METHODS,
                timeout: float = 60.0, attack_restarts: int = 16, attack_steps: int = 40,
                bab: Optional[BabSettings] = None, generator: Optional[torch.Generator] = None,
                bound_model: Optional[nn.Module] = None) -> VerifyResult:
    """The cascade on the box ``[lower, upper]`` (1, *in) of a margin network ``model`` (module docstring).

    The attack is margin PGD from the box centre and ``attack_restarts - 1`` random points. ``timeout`` bounds the
    whole run: stages are not interrupted, but α-CROWN and branch and bound are skipped (status timeout) when their
    optimisation steps, each about as long as CROWN's last back-substitution, would not fit in the time left, and
    branch and bound gets what is left. ``bound_model``: the copy in the bound dtype (default: float64).
    """
    start = time.perf_counter()
    deadline = start + timeout
    with torch.no_grad():
        outputs = model(lower).shape[1]
    C = torch.eye(outputs, dtype=lower.dtype, device=lower.device).unsqueeze(0)
    result = VerifyResult("falsified", -float("inf"), None, "pgd", 0.0, clean_ok=True, pgd_ok=False)
    starts = torch.cat([(lower + upper) / 2, random_points(lower, upper, max(attack_restarts - 1, 0), generator)])
    points, margins = margin_pgd(model, starts, lower, upper, C, attack_steps) if attack_steps > 0 else \
        (starts, min_margins(model, starts, C))
    best = int(torch.argmin(margins))
    if float(min_margins(model, points[best:best + 1], C)[0]) < 0:  # re-checked alone, as a user runs one input
        result.counterexample = points[best:best + 1].detach()
        return _finish(result, start)
    result.pgd_ok = True
    bound_model = bound_copy(model) if bound_model is None else bound_model
    state = identity_state(model, bound_model, Box(lower, upper), outputs)
    result.status, result.method = "unknown", "none"
    step = 0.0  # seconds of CROWN's last back-substitution: the unit of α and BaB root steps
    for name in STAGES:
        if name not in methods:
            continue
        if name == "alpha" and _out_of_time(deadline, ALPHA_ITERATIONS * step):
            result.status = "timeout"
            continue
        began = time.perf_counter()
        stage = bound_stage(name, state, model, bound_model, None)
        step = time.perf_counter() - began if name == "crown" else step
        if record_stage(result, name, stage[0], state.lb[0], state.tau[0], methods):
            return _finish(result, start)
    if "bab" in methods:
        if _out_of_time(deadline, (bab or BabSettings()).root_iterations * step):
            result.status = "timeout"
        else:
            bab_stage(result, model, bound_model, state, max(deadline - time.perf_counter(), 0.0), bab, generator)
    return _finish(result, start)


def _finish(result: VerifyResult, start: float) -> VerifyResult:
    result.seconds = time.perf_counter() - start
    return result
