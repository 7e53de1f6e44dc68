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
from typing import Dict, List, Optional, Sequence

import torch
from torch import nn

from torchcert import bounds
from torchcert.attacks import per_example_ce, pgd
from torchcert.bounds import Box

from .bab import BabSettings, bab_refusal, branch_and_bound
from .verdict import bound_copy, misclassified, model_dtype, tolerance

LOG = logging.getLogger(__name__)
_SAID: set = set()  # warnings given once per process

METHODS = ("ibp", "crown", "alpha", "bab")
#: the bounding stages before branch and bound, in cascade order
STAGES = ("ibp", "crown", "alpha")
#: Adam steps of the α-CROWN stage
ALPHA_ITERATIONS = 20


@dataclass
class VerifyResult:
    """Verdict on one sample.

    ``status``: verified | falsified | timeout | unknown (the chosen methods stopped before a verdict) | error
    (an exception was raised on this sample; ``error`` holds its type and message; never counted as verified);
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
    error: Optional[str] = None

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
    """Lower bounds (B, M) of ``C f`` from ``fn(model, box, C_part)``, in chunks of ``chunk`` specs (the
    original ``--lirpa_crown_batch``, for 200 or 1000 classes)."""
    size = chunk or C.shape[1]
    parts = [fn(model, box, C[:, i:i + size]).lower for i in range(0, C.shape[1], size)]
    return torch.cat(parts, dim=1).detach()


def _is_counterexample(model: nn.Module, x: torch.Tensor, label: int) -> bool:
    """A plain forward pass of the network as given: another logit strictly above the label's."""
    with torch.no_grad():
        return bool(misclassified(model(x), label)[0])


@dataclass
class BoundState:
    """What the bounding stages know about B samples: boxes ``(B, *in)`` in the network's dtype (``box``) and in
    the bound dtype (``box_b``), margin specs ``C``/``C_b (B, M, K)``, the rounding tolerance ``tau (B, M)``, the
    best margin lower bounds so far ``lb (B, M)`` (elementwise max over the stages run) and CROWN's
    pre-activation bounds once computed (one Box ``(B, *shape)`` per ReLU)."""

    box: Box
    box_b: Box
    C: torch.Tensor
    C_b: torch.Tensor
    tau: torch.Tensor
    lb: torch.Tensor
    relu_bounds: Optional[List[Box]] = None

    def rows(self, keep: torch.Tensor) -> "BoundState":
        """The state of the samples ``keep`` (indices into the B rows)."""
        pick = lambda b: Box(b.lower[keep], b.upper[keep])  # noqa: E731
        relu = None if self.relu_bounds is None else [pick(b) for b in self.relu_bounds]
        return BoundState(pick(self.box), pick(self.box_b), self.C[keep], self.C_b[keep], self.tau[keep],
                          self.lb[keep], relu)


def start_bounds(model: nn.Module, bound_model: nn.Module, box: Box, labels: torch.Tensor,
                 num_class: int) -> BoundState:
    """The state before any stage: ``C`` = margin specs of ``labels (B,)``, ``lb = -inf``, ``tau`` from IBP boxes."""
    run_dtype, dtype = model_dtype(model), model_dtype(bound_model)
    C = bounds.margin_matrix(labels, num_class).to(run_dtype)
    tau = tolerance(bound_model, box, C, run_dtype).to(dtype)
    lb = torch.full(C.shape[:2], -float("inf"), dtype=dtype, device=C.device)
    return BoundState(box, Box(box.lower.to(dtype), box.upper.to(dtype)), C, C.to(dtype), tau, lb)


def bound_stage(name: str, state: BoundState, model: nn.Module, bound_model: nn.Module, chunk: Optional[int],
                alpha_iterations: int = ALPHA_ITERATIONS) -> torch.Tensor:
    """Run stage ``name`` (ibp | crown | alpha) on every sample of ``state``: returns its bounds ``(B, M)`` and
    updates ``state.lb`` (max) and, on the first CROWN-based stage, ``state.relu_bounds`` and ``state.tau`` (the
    tolerance from CROWN's pre-activation bounds is never looser than IBP's)."""
    fn = bounds.ibp
    if name != "ibp":
        if state.relu_bounds is None:
            with torch.no_grad():
                state.relu_bounds = bounds.crown_relu_bounds(bound_model, state.box_b)
            state.tau = tolerance(bound_model, state.box, state.C, model_dtype(model),
                                  state.relu_bounds).to(state.lb.dtype)
        fn = functools.partial(bounds.crown, intermediate="given", relu_bounds=state.relu_bounds) if name == "crown" \
            else functools.partial(bounds.alpha_crown, iterations=alpha_iterations, intermediate="given",
                                   relu_bounds=state.relu_bounds)
    with torch.no_grad() if name != "alpha" else torch.enable_grad():
        stage = spec_bounds(fn, bound_model, state.box_b, state.C_b, chunk)
    state.lb = torch.maximum(state.lb, stage)
    return stage


def record_stage(result: "VerifyResult", name: str, stage: torch.Tensor, lb: torch.Tensor, tau: torch.Tensor,
                 methods: Sequence[str]) -> bool:
    """Write stage ``name``'s outcome for one sample (``stage``, ``lb``, ``tau`` of shape (M,)) into ``result``;
    True when the max-combined bounds verify it (then the later stages count as verifying too)."""
    result.bounds[name] = float(stage.min())
    setattr(result, f"{name}_ok", bool((stage > tau).all()) if name == "ibp" else bool((lb > tau).all()))
    result.lower_bound = float(lb.min())
    if not bool((lb > tau).all()):
        return False
    result.status, result.method = "verified", name
    for later in STAGES[STAGES.index(name) + 1:]:
        if later in methods:
            setattr(result, f"{later}_ok", True)
    return True


def verify_sample(model: nn.Module, lower: torch.Tensor, upper: torch.Tensor, label: int,
                  methods: Sequence[str] = METHODS, timeout: float = 60.0, x: Optional[torch.Tensor] = None,
                  pgd_steps: int = 40, pgd_step_size: float = 0.035, spec_chunk: Optional[int] = None,
                  bab: Optional[BabSettings] = None, generator: Optional[torch.Generator] = None,
                  bound_model: Optional[nn.Module] = None,
                  alpha_iterations: int = ALPHA_ITERATIONS) -> VerifyResult:
    """Run the cascade on the box ``[lower, upper]`` (1, *in) of a sample with true class ``label``.

    ``x`` is the clean input (defaults to the box centre); ``methods`` the bounding stages, a subset of
    :data:`METHODS` (``("ibp", "crown")`` is the original ``--crown_ver``); PGD runs first unless
    ``pgd_steps`` is 0; ``timeout`` is the branch-and-bound budget in seconds. ``model`` must be in eval mode;
    ``bound_model`` is its copy in the bound dtype (default: a float64 copy made here; pass one made once by
    :func:`.verdict.bound_copy` when verifying many samples); ``alpha_iterations``: Adam steps of α-CROWN.
    :func:`.batched.verify_batch` gives the same verdicts for many samples at once.
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
    _bound_stages(result, model, bound_model, Box(lower, upper), label, methods, timeout, spec_chunk, bab,
                  generator, alpha_iterations)
    return _finish(result, start)


def _bound_stages(result: VerifyResult, model: nn.Module, bound_model: nn.Module, box: Box, label: int,
                  methods: Sequence[str], timeout: float, chunk: Optional[int], bab: Optional[BabSettings],
                  generator: Optional[torch.Generator], alpha_iterations: int = ALPHA_ITERATIONS) -> None:
    with torch.no_grad():
        logits = model(box.lower)
    labels = torch.tensor([label], device=logits.device)
    state = start_bounds(model, bound_model, box, labels, logits.shape[1])
    result.status, result.method = "unknown", "none"
    for name in STAGES:
        if name in methods:
            stage = bound_stage(name, state, model, bound_model, chunk, alpha_iterations)
            if record_stage(result, name, stage[0], state.lb[0], state.tau[0], methods):
                return
    if "bab" in methods:
        bab_stage(result, model, bound_model, state, timeout, bab, generator)


def bab_stage(result: VerifyResult, model: nn.Module, bound_model: nn.Module, state: BoundState, timeout: float,
              bab: Optional[BabSettings], generator: Optional[torch.Generator]) -> None:
    """Branch and bound on the margins of one sample (``state`` of one row) that the bounds left open."""
    reason = bab_refusal(bound_model, state.box)
    if reason:  # the sample stays undecided: say why once per run
        kind = reason.split(" (")[0]
        if kind not in _SAID:
            LOG.warning("%s: samples the bounds do not verify stay unknown", reason)
            _SAID.add(kind)
        return
    lb, tau = state.lb[0], state.tau[0]
    open_rows = (lb <= tau).nonzero().flatten()
    settings = dataclasses.replace(bab or BabSettings(), timeout=timeout)
    out = branch_and_bound(model, state.box, state.C[:, open_rows], settings, generator, bound_model)
    proved = lb[lb > tau]
    result.lower_bound = min(out.lower_bound, float(proved.min())) if proved.numel() else out.lower_bound
    result.bounds["bab"] = out.lower_bound
    result.status, result.method, result.domains = out.status, "bab", out.domains
    if out.status == "falsified":
        result.counterexample, result.pgd_ok = out.counterexample, False


def _finish(result: VerifyResult, start: float) -> VerifyResult:
    result.seconds = time.perf_counter() - start
    return result
