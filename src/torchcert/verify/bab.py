"""Complete verification of ``min_j (C f(x))_j > 0`` over an input box by branch and bound on ReLU phases.

Root: CROWN pre-activation bounds (kept fixed, tightened only by the splits, as in the original OVAL configs
with ``fixed_ib``), α-CROWN on the output. Loop: take the domains with the lowest bound, split one unstable ReLU
in each (:mod:`.branching`), bound all children in one batch with α/β-CROWN (:mod:`.domain_bounds`), drop the
children whose bound is positive, and try the minimisers of their linear bounds as counterexamples. A domain
whose root-unstable ReLUs are all split is affine on its region and is solved exactly by LP (:mod:`.lp`), so
the search ends with an exact answer on any ReLU network given enough time.

Bounds and LP leaves run on a copy of the network in the bound dtype (float64 by default); attacks and every
counterexample check run the network as given. A domain is closed when its bound clears the rounding tolerance
of :mod:`.verdict`; a counterexample needs a strictly negative margin.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional, Tuple

import torch
from torch import nn

from torchcert import bounds
from torchcert.bounds import Box

from .attack import margin_pgd, min_margins, random_points
from .branching import get_branching
from .domain_bounds import OptimSettings, bound_minimisers, initial_alphas, optimise_domains
from .domains import DomainQueue, NeuronIndex, split_relu_bounds
from torchcert.bounds import relu_form
from torchcert.bounds.layers import BoundGraph

from .lp import leaf_layers, solve_leaf
from .verdict import bound_copy, model_dtype, tolerance

STATUSES = ("verified", "falsified", "timeout", "unknown")
#: candidate points of a batch re-checked one by one (the lowest margins first)
RECHECKED = 8


@dataclass(frozen=True)
class BabSettings:
    """Knobs of the search. ``batch_size``: domains split per iteration (each gives two children);
    ``branching``: the split heuristic, a name of :data:`.branching.BRANCHING`. ``timeout`` is checked between
    iterations, between the gradient steps of the root bound and of each batch of domains, and between exact
    leaves."""

    timeout: float = 60.0
    batch_size: int = 32
    dive: int = 4
    root_iterations: int = 40
    optim: OptimSettings = field(default_factory=OptimSettings)
    candidates: int = 3
    attacks: bool = True
    attack_restarts: int = 32
    attack_steps: int = 20
    max_domains: int = 100_000
    exact_leaves: bool = True
    lp_tolerance: float = 1e-9
    bound_mode: bool = False  # tighten the lower bound until timeout instead of stopping at a verdict
    branching: str = "fsb"


# In bound mode (the original's BaB "with return_bounds_if_timeout", used for tuning statistics) a counterexample
# does not stop the search, and a domain is dropped once its bound reaches the best concrete margin found.


@dataclass
class BabResult:
    """Outcome: ``status`` in verified / falsified / timeout / unknown (search ended on an undecidable
    numerically borderline leaf, or ``max_domains`` reached). ``lower_bound`` is a valid lower bound of the
    minimum margin over the box in real arithmetic (verified means it clears the rounding tolerance of
    :mod:`.verdict`); ``upper_bound`` the smallest margin seen at a concrete point; a falsified result carries
    ``counterexample`` (1, *in) whose plain forward pass has a margin < 0."""

    status: str
    lower_bound: float
    upper_bound: float
    counterexample: Optional[torch.Tensor]
    domains: int
    seconds: float


class _Search:
    """State of one branch-and-bound run (kept out of module globals)."""

    def __init__(self, model: nn.Module, box: Box, C: torch.Tensor, settings: BabSettings,
                 generator: Optional[torch.Generator], bound_model: nn.Module) -> None:
        self.model, self.box, self.C, self.settings, self.generator = model, box, C, settings, generator
        dtype = model_dtype(bound_model)
        self.bound_model = bound_model
        self.bound_box = Box(box.lower.detach().to(dtype), box.upper.detach().to(dtype))
        self.bound_C = C.detach().to(dtype)
        self.tau: Optional[torch.Tensor] = None  # (M,) rounding tolerance, set from the root's bounds
        self.start = time.perf_counter()
        self.domains = 0
        self.closed_min = float("inf")  # min bound over the leaves proved positive / solved exactly
        self.undecided = 0
        self.best_margin, self.best_point = float("inf"), None
        self.leaf_layers: Optional[list] = None

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    @property
    def deadline(self) -> float:
        """The ``time.perf_counter()`` value at which the search times out."""
        return self.start + self.settings.timeout

    def threshold(self) -> torch.Tensor:
        """``(M,)``: a domain whose bounds all exceed these is closed: the rounding tolerance when deciding, the
        best concrete margin in bound mode."""
        if self.settings.bound_mode:
            return torch.full_like(self.tau, self.best_margin)
        return self.tau

    def closes(self, lbs: torch.Tensor) -> torch.Tensor:
        """``(D,)``: which domains with bounds ``lbs (D, M)`` are closed."""
        return (lbs > self.threshold()).all(dim=1)

    def offer(self, points: torch.Tensor) -> bool:
        """Record the best concrete margin among ``points`` (N, *in); True when one is a counterexample and the
        search should stop on it (never in bound mode)."""
        if points.numel() == 0:
            return False
        points = self.clip(points)
        margins = min_margins(self.model, points, self.C)
        for i in torch.argsort(margins)[:RECHECKED].tolist():  # alone, as a user runs one input: a float
            alone = float(min_margins(self.model, points[i:i + 1], self.C)[0])  # forward may depend on the batch
            if alone < self.best_margin:
                self.best_margin, self.best_point = alone, points[i:i + 1].detach().clone()
            if alone < 0:
                break
        return self.best_margin < 0 and not self.settings.bound_mode

    def clip(self, points: torch.Tensor) -> torch.Tensor:
        """``points`` in the network's dtype, inside the box (rounding to nearest keeps a point between two
        representable ends of the box inside it; the clamp guards the rest)."""
        return torch.max(torch.min(points.to(self.box.lower.dtype), self.box.upper), self.box.lower)

    def attack(self, starts: torch.Tensor) -> bool:
        s = self.settings
        points, _ = margin_pgd(self.model, starts, self.box.lower, self.box.upper, self.C, s.attack_steps)
        return self.offer(points)

    def result(self, status: str, open_min: float) -> BabResult:
        lower = min(self.closed_min, open_min)
        if status == "verified" and self.best_margin < 0:  # bound mode: the search went on past a counterexample
            status = "falsified"
        elif status == "verified" and lower <= float(self.tau.max()):  # bound mode: a borderline leaf
            status = "unknown"
        cex = self.best_point if status == "falsified" else None
        return BabResult(status, lower, self.best_margin, cex, self.domains, self.elapsed())


def bab_refusal(bound_model: nn.Module, box: Box) -> Optional[str]:
    """Why branch and bound cannot decide this network (None when it can: ReLUs, and max pooling that
    :func:`~torchcert.bounds.relu_form.relu_form` rewrites as ReLUs)."""
    return relu_form.refusal(bound_model.net if isinstance(bound_model, BoundGraph) else bound_model)


def branch_and_bound(model: nn.Module, box: Box, C: torch.Tensor, settings: BabSettings = BabSettings(),
                     generator: Optional[torch.Generator] = None,
                     bound_model: Optional[nn.Module] = None) -> BabResult:
    """Decide whether every margin ``(C f(x))_j`` is positive for all x in ``box`` (or, with
    ``settings.bound_mode``, bound ``min_j (C f(x))_j`` from below as tightly as the time allows).

    model: ``nn.Sequential`` of supported layers in eval mode, as the user runs it; box: Box (1, *in); C: (1, M, K);
    bound_model: its copy in the bound dtype (default: a float64 copy, see :func:`.verdict.bound_copy`).
    """
    if box.lower.shape[0] != 1 or C.dim() != 3 or C.shape[0] != 1:
        raise ValueError(f"branch_and_bound takes one box (1, *in) and C (1, M, K); got box "
                         f"{tuple(box.lower.shape)} and C {tuple(C.shape)}")
    branch = get_branching(settings.branching)  # an unknown name fails before any work
    bound_model = bound_copy(model) if bound_model is None else bound_model
    reason = bab_refusal(bound_model, box)
    if reason:
        raise ValueError(reason)
    # splits are of ReLUs: max pooling is searched in its exact ReLU form (the user's model is still the one run)
    search = _Search(model, box, C, settings, generator, relu_form.relu_form(bound_model, tuple(box.lower.shape[1:])))
    with torch.no_grad():
        root = [Box(b.lower.detach(), b.upper.detach())
                for b in bounds.crown_relu_bounds(search.bound_model, search.bound_box)]
    search.tau = tolerance(search.bound_model, box, C, model_dtype(model), root)[0].to(search.bound_box.lower.dtype)
    if settings.attacks and search.attack(random_points(box.lower, box.upper, settings.attack_restarts, generator)):
        return search.result("falsified", -float("inf"))
    index = NeuronIndex.from_bounds(root)
    splits = torch.zeros(1, index.size, dtype=torch.int8, device=box.lower.device)
    root_optim = OptimSettings(settings.root_iterations, settings.optim.lr_alpha, settings.optim.lr_beta)
    alphas = initial_alphas(root, C.shape[1])
    lbs, alphas = optimise_domains(search.bound_model, search.bound_box, search.bound_C, root, index, splits,
                                   alphas, root_optim, deadline=search.deadline)
    search.domains = 1
    queue = DomainQueue(index.size, C.shape[1], box.lower.device, search.bound_box.lower.dtype)
    if bool(search.closes(lbs)[0]):
        search.closed_min = float(lbs.min())
        return search.result("verified", float("inf"))
    queue.push(splits, lbs)
    return _loop(search, queue, root, index, alphas, branch)


def _loop(search: _Search, queue: DomainQueue, root: list, index: NeuronIndex, alphas: list,
          branch) -> BabResult:
    s = search.settings
    while len(queue):
        if search.elapsed() > s.timeout:
            return search.result("timeout", queue.min_bound())
        if search.domains >= s.max_domains:
            return search.result("unknown", queue.min_bound())
        splits, lbs = queue.pop(s.batch_size, s.dive)
        full = (splits != 0).all(dim=1)
        if bool(full.any()):
            found, unsolved = _solve_leaves(search, root, index, splits[full], lbs[full])
            if found:
                queue.push(splits, lbs)
                return search.result("falsified", queue.min_bound())
            queue.push(splits[full][unsolved], lbs[full][unsolved])  # left by the deadline: they stay open
        splits, lbs = splits[~full], lbs[~full]
        if splits.shape[0] == 0:
            continue
        chosen = branch(search.bound_model, search.bound_box, search.bound_C, root, index, splits, alphas,
                        s.candidates)
        kids = torch.cat([splits, splits]).clone()
        rows = torch.arange(splits.shape[0])
        kids[rows, chosen] = 1
        kids[rows + splits.shape[0], chosen] = -1
        kid_lbs, kid_alphas = optimise_domains(search.bound_model, search.bound_box, search.bound_C, root, index,
                                               kids, alphas, s.optim, floor=torch.cat([lbs, lbs]),
                                               deadline=search.deadline)
        search.domains += kids.shape[0]
        done = search.closes(kid_lbs)
        if bool(done.any()):
            search.closed_min = min(search.closed_min, float(kid_lbs[done].min()))
        queue.push(kids[~done], kid_lbs[~done])
        if s.attacks and _attack_children(search, root, index, kids[~done], [a[~done] for a in kid_alphas]):
            return search.result("falsified", queue.min_bound())
    status = "verified" if search.undecided == 0 else "unknown"
    return search.result(status, float("inf"))


def _attack_children(search: _Search, root: list, index: NeuronIndex, kids: torch.Tensor, alphas: list) -> bool:
    """Try the minimisers of the open children's linear bounds, then a short PGD from the most promising ones."""
    if kids.shape[0] == 0:
        return False
    with torch.no_grad():
        relu_bounds = split_relu_bounds(root, index, kids)
    points = search.clip(bound_minimisers(search.bound_model, search.bound_box, search.bound_C, relu_bounds,
                                          alphas))
    if search.offer(points):
        return True
    margins = min_margins(search.model, points, search.C)
    top = torch.topk(-margins, min(4, points.shape[0])).indices
    return search.attack(points[top])


def _solve_leaves(search: _Search, root: list, index: NeuronIndex, splits: torch.Tensor,
                  lbs: torch.Tensor) -> Tuple[bool, torch.Tensor]:
    """Exact LP on fully split domains ``splits (D, U)``: (True when one yields a counterexample, checked by a
    forward pass; mask (D,) of the leaves not solved because the deadline passed). Without exact leaves the domains
    stay undecided and their bounds ``lbs (D, M)`` still count in the lower bound."""
    unsolved = torch.zeros(splits.shape[0], dtype=torch.bool, device=splits.device)
    if not search.settings.exact_leaves:
        search.undecided += splits.shape[0]
        search.closed_min = min(search.closed_min, float(lbs.min()))
        return False, unsolved
    if search.leaf_layers is None:
        search.leaf_layers = leaf_layers(search.bound_model, search.box)
    for i, row in enumerate(splits):
        if search.elapsed() > search.settings.timeout:
            unsolved[i:] = True
            break
        leaf = solve_leaf(search.leaf_layers, search.box, search.C, root, index, row)
        search.domains += 1
        clear = float(search.tau.max()) + search.settings.lp_tolerance
        if leaf.value > clear or search.settings.bound_mode:
            search.closed_min = min(search.closed_min, leaf.value)
            if leaf.point is not None:
                search.offer(leaf.point.to(search.box.lower.device))
            continue
        if leaf.point is not None and search.offer(leaf.point.to(search.box.lower.device)):
            return True, unsolved
        search.closed_min = min(search.closed_min, leaf.value)
        search.undecided += 1
    return False, unsolved
