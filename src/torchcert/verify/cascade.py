"""The per-sample verification cascade of the original ``verify.py``, cheapest test first.

natural prediction (wrong => not robust) -> PGD (a counterexample => not robust) -> IBP and CROWN margin bounds
combined elementwise by max (all above the rounding tolerance => verified) -> α-CROWN -> branch and bound on the
margins still unproved. Bounds are computed on a float64 copy of the network; :mod:`.verdict` defines what
"verified" and "falsified" mean (floating-point error and ties included).
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import time
from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence

import torch
from torch import nn

from torchcert import bounds
from torchcert.attacks import per_example_ce, pgd
from torchcert.bounds import Box

from .attack import margin_pgd, min_margins, random_points
from .bab import BabSettings, bab_refusal, branch_and_bound
from .verdict import bound_copy, misclassified, model_dtype, tolerance

LOG = logging.getLogger(__name__)
_SAID: set = set()  # warnings given once per process

METHODS = ("ibp", "crown", "alpha", "bab")
#: Adam steps of the α-CROWN stage
ALPHA_ITERATIONS = 20


@dataclass
class VerifyResult:
    """Verdict on one sample.

    ``status``: verified | falsified | timeout | unknown (the chosen methods stopped before a verdict);
    ``lower_bound``: a lower bound of ``min_j margin_j`` over the box (``-inf`` when no bound was computed);
    ``counterexample`` (1, *in) when falsified (checked by a plain forward pass); ``method``: the stage that
    decided; ``bounds``: min-margin lower bound of each bounding stage run; ``domains``: BaB domains.
    """

    status: str
    lower_bound: float
    counterexample: Optional[torch.Tensor]
    method: str
    seconds: float
    clean_ok: bool
    pgd_ok: bool
    ibp_ok: bool = False
    crown_ok: bool = False
    alpha_ok: bool = False
    domains: int = 0
    bounds: Dict[str, float] = field(default_factory=dict)

    @property
    def verified(self) -> bool:
        return self.status == "verified"


def parse_methods(text: str) -> tuple:
    """``"ibp,crown"`` -> ("ibp", "crown") (the bounding stages; PGD runs unless its steps are 0)."""
    names = tuple(m.strip().lower() for m in text.split(",") if m.strip())
    unknown = [m for m in names if m not in METHODS]
    if unknown or not names:
        raise ValueError(f"unknown method(s) {unknown or text!r}; choose a comma-separated subset of {', '.join(METHODS)}")
    return tuple(m for m in METHODS if m in names)


def spec_bounds(fn, model: nn.Module, box: Box, C: torch.Tensor, chunk: Optional[int]) -> torch.Tensor:
    """Lower bounds (1, M) of ``C f`` from ``fn(model, box, C_part)``, in chunks of ``chunk`` specs (the
    original ``--lirpa_crown_batch``, for 200 or 1000 classes)."""
    size = chunk or C.shape[1]
    parts = [fn(model, box, C[:, i:i + size]).lower for i in range(0, C.shape[1], size)]
    return torch.cat(parts, dim=1).detach()


def _is_counterexample(model: nn.Module, x: torch.Tensor, label: int) -> bool:
    """A plain forward pass of the network as given: another logit strictly above the label's."""
    with torch.no_grad():
        return bool(misclassified(model(x), label)[0])


def verify_sample(model: nn.Module, lower: torch.Tensor, upper: torch.Tensor, label: int,
                  methods: Sequence[str] = METHODS, timeout: float = 60.0, x: Optional[torch.Tensor] = None,
                  pgd_steps: int = 40, pgd_step_size: float = 0.035, spec_chunk: Optional[int] = None,
                  bab: Optional[BabSettings] = None, generator: Optional[torch.Generator] = None,
                  bound_model: Optional[nn.Module] = None) -> VerifyResult:
    """Run the cascade on the box ``[lower, upper]`` (1, *in) of a sample with true class ``label``.

    ``x`` is the clean input (defaults to the box centre); ``methods`` the bounding stages, a subset of
    :data:`METHODS` (``("ibp", "crown")`` is the original ``--crown_ver``); PGD runs first unless
    ``pgd_steps`` is 0; ``timeout`` is the branch-and-bound budget in seconds. ``model`` must be in eval mode;
    ``bound_model`` is its copy in the bound dtype (default: a float64 copy made here; pass one made once by
    :func:`.verdict.bound_copy` when verifying many samples).
    """
    start = time.perf_counter()
    x = (lower + upper) / 2 if x is None else x
    result = VerifyResult("falsified", -float("inf"), None, "clean", 0.0, clean_ok=False, pgd_ok=False)
    if _is_counterexample(model, x, label):
        result.counterexample = x.detach()
        return _finish(result, start)
    result.clean_ok = True
    if pgd_steps > 0:
        adv = pgd(model, lower, upper, per_example_ce(torch.tensor([label], device=x.device)), pgd_steps,
                  pgd_step_size, generator=generator)
        if _is_counterexample(model, adv, label):
            result.method, result.counterexample = "pgd", adv
            return _finish(result, start)
    result.pgd_ok = True
    bound_model = bound_copy(model) if bound_model is None else bound_model
    with torch.no_grad():
        logits = model(lower)
    C = bounds.margin_matrix(torch.tensor([label], device=logits.device), logits.shape[1]).to(logits.dtype)
    _bound_stages(result, model, bound_model, Box(lower, upper), C, methods, timeout, spec_chunk, bab, generator)
    return _finish(result, start)


def verify_spec(model: nn.Module, lower: torch.Tensor, upper: torch.Tensor, methods: Sequence[str] = METHODS,
                timeout: float = 60.0, attack_restarts: int = 16, attack_steps: int = 40,
                bab: Optional[BabSettings] = None, generator: Optional[torch.Generator] = None,
                bound_model: Optional[nn.Module] = None) -> VerifyResult:
    """The cascade for a network whose outputs are the margins: verified when every output ``g_j(x) > 0`` on the
    box ``[lower, upper]`` (1, *in), falsified at a point with some ``g_j(x) < 0`` (a plain forward pass).

    A property ``C f(x) + d > 0`` is verified by appending the spec as a last linear layer (``g = C f + d``; see
    :mod:`torchcert.verify.instance`). The attack is margin PGD from the box centre and ``attack_restarts - 1``
    random points; ``timeout`` bounds the whole run (branch and bound gets what the earlier stages leave; they are not
    interrupted); the rest as :func:`verify_sample`.
    """
    start = time.perf_counter()
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
    _bound_stages(result, model, bound_model, Box(lower, upper), C, methods, timeout, None, bab, generator,
                  deadline=start + timeout)
    return _finish(result, start)


def _bound_stages(result: VerifyResult, model: nn.Module, bound_model: nn.Module, box: Box, C: torch.Tensor,
                  methods: Sequence[str], timeout: float, chunk: Optional[int], bab: Optional[BabSettings],
                  generator: Optional[torch.Generator], deadline: Optional[float] = None) -> None:
    """IBP, CROWN, α-CROWN (max-combined) and branch and bound on the margins ``C f`` (C (1, M, K)); branch and
    bound gets ``timeout`` seconds, or what is left until ``deadline`` (a ``time.perf_counter()`` value). With a
    deadline, α-CROWN and branch and bound are skipped (status timeout) when their optimisation steps, each about
    as long as the CROWN stage's back-substitution, would not fit in the time left."""
    dtype = model_dtype(bound_model)
    box_b, C_b = Box(box.lower.to(dtype), box.upper.to(dtype)), C.to(dtype)
    run_dtype = model_dtype(model)
    tau = tolerance(bound_model, box, C, run_dtype).to(dtype)
    lb = torch.full((1, C.shape[1]), -float("inf"), dtype=dtype, device=C.device)
    result.status, result.method = "unknown", "none"
    relu_bounds = None
    step_seconds = 0.0  # one back-substitution to the output (CROWN's final stage): the unit of α steps
    for name in ("ibp", "crown", "alpha"):
        if name not in methods:
            continue
        if name == "alpha" and _out_of_time(deadline, ALPHA_ITERATIONS * step_seconds):
            result.status = "timeout"
            continue
        fn = bounds.ibp
        if name != "ibp":
            if relu_bounds is None:  # CROWN's pre-activation bounds, computed once for CROWN, alpha and tau
                with torch.no_grad():
                    relu_bounds = bounds.crown_relu_bounds(bound_model, box_b)
                tau = tolerance(bound_model, box, C, run_dtype, relu_bounds).to(dtype)  # never looser than IBP's
            fn = functools.partial(bounds.crown, intermediate="given", relu_bounds=relu_bounds) if name == "crown" \
                else functools.partial(bounds.alpha_crown, iterations=ALPHA_ITERATIONS, intermediate="given",
                                       relu_bounds=relu_bounds)
        began = time.perf_counter()
        with torch.no_grad() if name != "alpha" else torch.enable_grad():
            stage = spec_bounds(fn, bound_model, box_b, C_b, chunk)
        step_seconds = time.perf_counter() - began if name == "crown" else step_seconds
        result.bounds[name] = float(stage.min())
        lb = torch.maximum(lb, stage)
        setattr(result, f"{name}_ok", bool((stage > tau).all()) if name == "ibp" else bool((lb > tau).all()))
        result.lower_bound = float(lb.min())
        if bool((lb > tau).all()):
            result.status, result.method = "verified", name
            for later in ("crown", "alpha")[("ibp", "crown", "alpha").index(name):]:
                if later in methods:  # the max-combined bounds of the later stages verify too
                    setattr(result, f"{later}_ok", True)
            return
    if "bab" not in methods:
        return
    reason = bab_refusal(bound_model, box)
    if reason:  # the sample stays undecided: say why once per run
        kind = reason.split(" (")[0]
        if kind not in _SAID:
            LOG.warning("%s: samples the bounds do not verify stay unknown", reason)
            _SAID.add(kind)
        return
    open_rows = (lb[0] <= tau[0]).nonzero().flatten()
    if _out_of_time(deadline, (bab or BabSettings()).root_iterations * step_seconds):
        result.status = "timeout"
        return
    if deadline is not None:
        timeout = min(timeout, max(deadline - time.perf_counter(), 0.0))
    settings = dataclasses.replace(bab or BabSettings(), timeout=timeout)
    out = branch_and_bound(model, box, C[:, open_rows], settings, generator, bound_model)
    proved = lb[0][lb[0] > tau[0]]
    result.lower_bound = min(out.lower_bound, float(proved.min())) if proved.numel() else out.lower_bound
    result.bounds["bab"] = out.lower_bound
    result.status, result.method, result.domains = out.status, "bab", out.domains
    if out.status == "falsified":
        result.counterexample, result.pgd_ok = out.counterexample, False


def _out_of_time(deadline: Optional[float], needed: float) -> bool:
    """Whether ``needed`` more seconds overrun ``deadline`` (never without a deadline)."""
    return deadline is not None and time.perf_counter() + needed > deadline


def _finish(result: VerifyResult, start: float) -> VerifyResult:
    result.seconds = time.perf_counter() - start
    return result
