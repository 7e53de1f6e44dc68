"""One VNN-COMP instance: an imported ONNX network and a VNN-LIB property -> sat / unsat / timeout / unknown.

The property's counterexample is a union of disjuncts (:mod:`torchcert.io.vnnlib`), each an input box and output
rows ``A y + b >= 0``; with margins ``m = C f(x) + d`` (``C = -A``, ``d = -b``) a disjunct is infeasible when some
margin is positive everywhere on its box. Disjuncts of one row on the same box (the usual ``or`` of
``Y_j >= Y_t``) form one **all-rows** problem, ``min_j m_j(x) > 0`` on the box, decided by the cascade
(:func:`.spec_cascade.verify_spec`: attack, IBP, CROWN, α-CROWN, branch and bound) on the network with the spec appended
as a last linear layer ``g = C f + d``. A disjunct of several rows (a conjunction) holds when one of its rows is
proved positive by the bounds or, on small inputs, by splitting the input box (:mod:`.input_split`); its attack minimises the largest margin.

Soundness (:mod:`.verdict`): bounds on a float64 copy whose spec layer holds ``C, d`` exactly, over the box rounded
outward to the network's dtype, verified only above the rounding tolerance of the network's float32 execution
(or, with ``real_arithmetic``, of the float64 computation only: the real-valued network VNN-COMP tools reason
about); a counterexample is a point of the exact (float64) box, rounded inward, at which a plain forward pass of
the network gives every margin of a disjunct strictly negative (and onnxruntime agrees, when it is installed).
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch
from torch import Tensor, nn

from torchcert.io.onnx import ImportedNetwork
from torchcert.io.vnnlib import Disjunct, Property

from .attack import random_points
from .bab import BabSettings
from .cascade import METHODS
from .input_split import closed_boxes, input_split
from .spec_cascade import verify_spec
from .verdict import model_dtype

RESULTS = ("sat", "unsat", "timeout", "unknown", "error")
#: conjunctions are decided by input-box splitting on networks with at most this many inputs
INPUT_SPLIT_MAX_INPUTS = 64


@dataclass
class InstanceResult:
    """``result`` in :data:`RESULTS`; for sat ``x (n,)``/``y (K,)``: the witness (input in the network's dtype and
    its forward pass, by onnxruntime when it checked the witness); ``method``: the stage that decided (or why not); ``seconds``: wall time."""

    result: str
    seconds: float
    method: str = ""
    x: Optional[Tensor] = None
    y: Optional[Tensor] = None


def spec_network(net: nn.Module, C: Tensor, d: Tensor, dtype: torch.dtype) -> nn.Sequential:
    """``g(x) = C f(x) + d``: a copy of ``net`` in ``dtype`` followed by a linear layer ``(K -> M)`` holding
    ``C (M, K)`` and ``d (M,)`` (exactly, in float64)."""
    spec = nn.Linear(C.shape[1], C.shape[0]).to(dtype)
    with torch.no_grad():
        spec.weight.copy_(C.to(dtype))
        spec.bias.copy_(d.to(dtype))
    return nn.Sequential(copy.deepcopy(net).to(dtype), spec).eval()


def rounded_box(lower: Tensor, upper: Tensor, dtype: torch.dtype, outward: bool) -> Tuple[Tensor, Tensor]:
    """The float64 box ``lower/upper`` in ``dtype``, each end rounded outward (the box grows: bounds on it hold
    for the exact box) or inward (every point of it lies in the exact box)."""
    lo, hi = lower.to(dtype), upper.to(dtype)
    down, up = torch.tensor(-float("inf"), dtype=dtype), torch.tensor(float("inf"), dtype=dtype)
    lo_too_high, hi_too_low = lo.double() > lower, hi.double() < upper
    lo_too_low, hi_too_high = lo.double() < lower, hi.double() > upper
    if outward:
        return torch.where(lo_too_high, torch.nextafter(lo, down), lo), torch.where(hi_too_low,
                                                                                     torch.nextafter(hi, up), hi)
    return torch.where(lo_too_low, torch.nextafter(lo, up), lo), torch.where(hi_too_high, torch.nextafter(hi, down), hi)


def group_disjuncts(prop: Property) -> Tuple[List[Disjunct], List[Disjunct]]:
    """``(all_rows, conjunctions)``: single-row disjuncts merged per input box (rows stacked), and the rest."""
    merged: dict = {}
    rest: List[Disjunct] = []
    for dj in prop.disjuncts:
        if dj.A.shape[0] != 1:
            rest.append(dj)
            continue
        key = (tuple(dj.lower.tolist()), tuple(dj.upper.tolist()))
        merged.setdefault(key, []).append(dj)
    groups = [Disjunct(g[0].lower, g[0].upper, torch.cat([d.A for d in g]), torch.cat([d.b for d in g]))
              for g in merged.values()]
    return groups, rest


class _Instance:
    """State of one run: the network, the deadline, the settings."""

    def __init__(self, net: ImportedNetwork, prop: Property, timeout: float, methods, seed: int,
                 bab: Optional[BabSettings], onnx_check, real_arithmetic: bool = False) -> None:
        if prop.num_inputs != net.num_inputs or prop.num_outputs != net.num_outputs:
            raise ValueError(f"the property has {prop.num_inputs} inputs and {prop.num_outputs} outputs; the network "
                             f"{net.num_inputs} and {net.num_outputs}")
        self.net, self.prop, self.methods, self.bab, self.onnx_check = net, prop, methods, bab, onnx_check
        self.dtype = model_dtype(net.module)  # the network as run: witnesses are confirmed in it
        self.run_dtype = torch.float64 if real_arithmetic else self.dtype  # the arithmetic the verdicts cover
        self.start, self.timeout = time.perf_counter(), timeout
        self.generator = torch.Generator().manual_seed(seed)

    def left(self) -> float:
        return self.timeout - (time.perf_counter() - self.start)

    def box(self, dj: Disjunct, outward: bool, dtype: Optional[torch.dtype] = None) -> Tuple[Tensor, Tensor]:
        lo, hi = rounded_box(dj.lower, dj.upper, dtype or self.dtype, outward)
        shape = (1,) + tuple(self.net.in_shape)
        return lo.view(shape), hi.view(shape)

    def confirm(self, x: Tensor) -> Optional[Tuple[Tensor, Tensor]]:
        """``(x, y)`` when ``x`` (clamped into the inward-rounded box of a disjunct it may belong to) is a
        counterexample by a plain forward pass (and by onnxruntime when given); None otherwise."""
        for dj in self.prop.disjuncts:
            lo, hi = self.box(dj, outward=False)
            point = torch.max(torch.min(x.detach().to(self.dtype).view(lo.shape), hi), lo)
            with torch.no_grad():
                y = self.net.module(point)[0]
            if not dj.satisfied_by(point, y):
                continue
            if self.onnx_check is not None:  # the written outputs are then onnxruntime's
                y = self.onnx_check(point)
                if not dj.satisfied_by(point, y):
                    continue
            return point.reshape(-1), y.reshape(-1)
        return None

    def all_rows(self, dj: Disjunct) -> InstanceResult:
        """The cascade on ``min_j m_j > 0`` over the disjunct's box."""
        C, d = dj.margins()
        lo, hi = self.box(dj, outward=True, dtype=self.run_dtype)
        g = spec_network(self.net.module, C, d, self.run_dtype)
        bound = spec_network(self.net.module, C, d, torch.float64)
        out = verify_spec(g, lo, hi, self.methods, max(self.left(), 0.0), bab=self.bab, generator=self.generator,
                          bound_model=bound)
        return self._outcome(out.status, out.method, out.counterexample)

    def conjunction(self, dj: Disjunct) -> InstanceResult:
        """Some row positive everywhere (bounds), or a point with every margin negative (attack)."""
        C, d = dj.margins()
        lo, hi = self.box(dj, outward=True, dtype=self.run_dtype)
        g = spec_network(self.net.module, C, d, self.run_dtype)
        x = _minimax_attack(g, lo, hi, self.generator)
        if x is not None:
            return self._outcome("falsified", "pgd", x)
        bound = spec_network(self.net.module, C, d, torch.float64)
        if bool(closed_boxes(bound, lo, hi, self.run_dtype)[0]):
            return self._outcome("verified", "crown", None)
        if self.net.num_inputs > INPUT_SPLIT_MAX_INPUTS:
            return self._outcome("unknown", "crown (conjunction on a large input: no input splitting)", None)
        status, x = input_split(g, bound, lo, hi, max(self.left(), 0.0))
        return self._outcome(status, "input-split", x)

    def _outcome(self, status: str, method: str, cex: Optional[Tensor]) -> InstanceResult:
        seconds = time.perf_counter() - self.start
        if status == "verified":
            return InstanceResult("unsat", seconds, method)
        if status == "falsified":
            witness = self.confirm(cex)
            if witness is not None:
                return InstanceResult("sat", seconds, method, *witness)
            return InstanceResult("unknown", seconds, f"{method}: counterexample not confirmed")
        return InstanceResult("timeout" if status == "timeout" or self.left() <= 0 else "unknown", seconds, method)


def _minimax_attack(g: nn.Module, lower: Tensor, upper: Tensor, generator: torch.Generator, restarts: int = 16,
                    steps: int = 40) -> Optional[Tensor]:
    """Signed-gradient descent on ``max_j g_j(x)`` in the box; the first point with every ``g_j < 0``, or None."""
    x = torch.cat([(lower + upper) / 2, random_points(lower, upper, restarts - 1, generator)])
    scale = 0.1 * (upper - lower) / 2
    for _ in range(steps + 1):
        x.requires_grad_(True)
        with torch.enable_grad():
            worst = g(x).max(dim=1).values
            grad = torch.autograd.grad(worst.sum(), x)[0]
        hit = (worst < 0).nonzero().flatten()
        if hit.numel():
            return x[hit[0]:hit[0] + 1].detach()
        x = torch.max(torch.min(x.detach() - scale * grad.sign(), upper), lower)
    return None


def verify_instance(net: ImportedNetwork, prop: Property, timeout: float, methods=METHODS, seed: int = 0,
                    bab: Optional[BabSettings] = None, onnx_check=None,
                    real_arithmetic: bool = False) -> InstanceResult:
    """Decide ``prop`` on ``net`` within about ``timeout`` seconds (module docstring). ``onnx_check(x) -> y``:
    an optional second forward pass (onnxruntime) every witness must also satisfy. ``real_arithmetic``: verdicts
    about the network in real arithmetic, as VNN-COMP tools take it (the cascade runs on a float64 copy, so the
    tolerance covers the float64 computation only, not the rounding of the network's own float32 execution);
    witnesses are still confirmed in the network's dtype. Disjunct groups are attacked
    and bounded one after another; the first confirmed counterexample answers sat, unsat needs every group."""
    run = _Instance(net, prop, timeout, methods, seed, bab, onnx_check, real_arithmetic)
    groups, conjunctions = group_disjuncts(prop)
    outcomes = []
    for dj, merged in [(g, True) for g in groups] + [(c, False) for c in conjunctions]:
        if dj.A.shape[0] == 0:  # no output constraint: any point of the box is a counterexample
            outcome = run._outcome("falsified", "box", (dj.lower + dj.upper) / 2)
        else:
            outcome = run.all_rows(dj) if merged else run.conjunction(dj)
        if outcome.result == "sat":
            return outcome
        outcomes.append(outcome)
        if outcome.result != "unsat" and run.left() <= 0:
            break
    seconds = time.perf_counter() - run.start
    if outcomes and all(o.result == "unsat" for o in outcomes) and len(outcomes) == len(groups) + len(conjunctions):
        return InstanceResult("unsat", seconds, ",".join(sorted({o.method for o in outcomes})))
    if not prop.disjuncts:
        return InstanceResult("unsat", seconds, "empty property")
    undecided = [o for o in outcomes if o.result != "unsat"]
    status = "timeout" if any(o.result == "timeout" for o in undecided) or run.left() <= 0 else "unknown"
    return InstanceResult(status, seconds, undecided[0].method if undecided else "")
