"""The verification cascade over a batch of samples: the cheap stages batched, the expensive ones per sample.

For B samples (boxes ``(B, *in)``, labels ``(B,)``)::

    clean forward (B rows) ─► PGD on the rows still open (each row's random start drawn from its own generator,
    as :func:`.cascade.verify_sample` draws it) ─► IBP ─► CROWN (each stage on the rows the previous left open)
    ─► per sample: α-CROWN ─► branch and bound (with that sample's generator)

Per sample this computes what :func:`.cascade.verify_sample` computes, with the same stage functions; only the
rows of a batched forward pass or bound may round differently from a forward of one row. Verdicts never rest on a
batched forward: every candidate counterexample, and every row within a small slack of a tie, is re-decided by a
plain forward pass of the network on that one input (:mod:`.verdict`), and the bound stages compare against the
rounding tolerance ``tau`` of each sample as the per-sample cascade does.
"""
from __future__ import annotations

import time
import traceback
from typing import List, Optional, Sequence

import torch
from torch import nn

from torchcert.attacks import per_example_ce, pgd
from torchcert.bounds import Box

from .bab import BabSettings
from .cascade import (ALPHA_ITERATIONS, METHODS, VerifyResult, _is_counterexample, bab_stage, bound_stage,
                      record_stage, start_bounds)
from .verdict import bound_copy

#: a batched forward whose label margin lies within this share of the logits' scale of a tie is re-decided alone
TIE_SLACK = 1e-3


def counterexamples(model: nn.Module, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``(N,)`` bool: some other logit strictly exceeds the label's at ``x[i]`` (N, *in), as decided by a forward
    pass of that input alone. One batched forward settles the rows far from a tie; the others (candidates and
    near-ties, ``|margin| <= TIE_SLACK·(1 + max|logit|)``) are re-run one by one."""
    with torch.no_grad():
        logits = model(x).to(torch.float64)
    own = logits.gather(1, labels.view(-1, 1)).squeeze(1)
    others = logits.scatter(1, labels.view(-1, 1), -float("inf")).max(dim=1).values
    found = others > own
    near = (own - others).abs() <= TIE_SLACK * (1 + logits.abs().max(dim=1).values)
    for i in (found | near).nonzero().flatten().tolist():
        found[i] = _is_counterexample(model, x[i:i + 1], int(labels[i]))
    return found


def uniform_noise(shape: Sequence[int], generators: Sequence[torch.Generator], dtype: torch.dtype,
                  device: torch.device) -> torch.Tensor:
    """PGD's uniform start draws ``(N, *shape[1:])``: row i drawn from ``generators[i]`` exactly as a
    one-sample PGD draws it (``torch.zeros(1, ...).uniform_(generator)``)."""
    rows = [torch.zeros((1, *shape[1:]), dtype=dtype, device=device).uniform_(generator=g) for g in generators]
    return torch.cat(rows) if rows else torch.zeros((0, *shape[1:]), dtype=dtype, device=device)


def verify_batch(model: nn.Module, lower: torch.Tensor, upper: torch.Tensor, labels: torch.Tensor,
                 methods: Sequence[str] = METHODS, timeout: float = 60.0, x: Optional[torch.Tensor] = None,
                 pgd_steps: int = 40, pgd_step_size: float = 0.035, spec_chunk: Optional[int] = None,
                 bab: Optional[BabSettings] = None, generators: Optional[Sequence[torch.Generator]] = None,
                 bound_model: Optional[nn.Module] = None, alpha_iterations: int = ALPHA_ITERATIONS,
                 record_errors: bool = False) -> List[VerifyResult]:
    """:func:`.cascade.verify_sample` for B samples at once: boxes ``lower``/``upper`` (B, *in), ``labels`` (B,),
    clean inputs ``x`` (B, *in) (default: the box centres), one generator per sample (default: the global RNG,
    then PGD's draws differ from the per-sample cascade's). Returns one :class:`VerifyResult` per sample.

    ``seconds`` of a result: its share (1/B) of the batched stages plus its own α-CROWN and BaB time. With
    ``record_errors``, an exception in a sample's own stages makes that sample's result ``error`` (the others
    go on); an exception in a batched stage is raised either way (the caller may retry the samples alone).
    """
    start, count = time.perf_counter(), labels.shape[0]
    x = (lower + upper) / 2 if x is None else x
    results = [VerifyResult("falsified", -float("inf"), None, "clean", 0.0, clean_ok=False, pgd_ok=False)
               for _ in range(count)]
    open_rows = _clean_stage(model, x, labels, results)
    if pgd_steps > 0 and open_rows.numel():
        open_rows = _pgd_stage(model, lower, upper, labels, open_rows, results, pgd_steps, pgd_step_size,
                               generators)
    for i in open_rows.tolist():
        results[i].pgd_ok = True
    bound_model = bound_copy(model) if bound_model is None else bound_model
    tails = _batched_bounds(model, bound_model, Box(lower, upper), labels, open_rows, results, methods, spec_chunk)
    shared = (time.perf_counter() - start) / max(count, 1)
    for result in results:
        result.seconds = shared
    for i, state in tails:
        began = time.perf_counter()
        generator = None if generators is None else generators[i]
        try:
            _per_sample_stages(results[i], model, bound_model, state, methods, timeout, spec_chunk, bab, generator,
                               alpha_iterations)
        except Exception as exc:  # noqa: BLE001 -- recorded on the sample, never as a verdict
            if not record_errors:
                raise
            results[i] = error_result(exc)
        results[i].seconds = shared + time.perf_counter() - began
    return results


def error_result(exc: BaseException) -> VerifyResult:
    """The result of a sample whose verification raised ``exc``: status ``error``, never verified."""
    where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    place = f" (at {where.filename.rsplit('/', 1)[-1]}:{where.lineno})" if where else ""
    return VerifyResult("error", -float("inf"), None, "error", 0.0, clean_ok=False, pgd_ok=False,
                        error=f"{type(exc).__name__}: {exc}{place}")


def _clean_stage(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, results: List[VerifyResult]) -> torch.Tensor:
    """Mark misclassified samples falsified at x; returns the indices of the others."""
    wrong = counterexamples(model, x, labels)
    for i in wrong.nonzero().flatten().tolist():
        results[i].counterexample = x[i:i + 1].detach()
    for i in (~wrong).nonzero().flatten().tolist():
        results[i].clean_ok = True
    return (~wrong).nonzero().flatten()


def _pgd_stage(model: nn.Module, lower: torch.Tensor, upper: torch.Tensor, labels: torch.Tensor,
               rows: torch.Tensor, results: List[VerifyResult], steps: int, step_size: float,
               generators: Optional[Sequence[torch.Generator]]) -> torch.Tensor:
    """PGD on ``rows``; samples with a counterexample are falsified by "pgd"; returns the rows still open."""
    low, up, y = lower[rows], upper[rows], labels[rows]
    noise = None
    if generators is not None:
        noise = uniform_noise(low.shape, [generators[i] for i in rows.tolist()], low.dtype, low.device)
    adv = pgd(model, low, up, per_example_ce(y), steps, step_size, noise=noise)
    found = counterexamples(model, adv, y)
    for j in found.nonzero().flatten().tolist():
        result = results[int(rows[j])]
        result.method, result.counterexample = "pgd", adv[j:j + 1]
    return rows[~found]


def _batched_bounds(model: nn.Module, bound_model: nn.Module, box: Box, labels: torch.Tensor, rows: torch.Tensor,
                    results: List[VerifyResult], methods: Sequence[str], chunk: Optional[int]) -> list:
    """IBP and CROWN (those of ``methods``) on the open ``rows``, each stage on the rows the previous left open.
    Returns ``[(i, one-row BoundState)]`` of the samples left for α-CROWN / branch and bound."""
    if rows.numel() == 0:
        return []
    with torch.no_grad():
        num_class = model(box.lower[:1]).shape[1]
    state = start_bounds(model, bound_model, Box(box.lower[rows], box.upper[rows]), labels[rows], num_class)
    for i in rows.tolist():
        results[i].status, results[i].method = "unknown", "none"
    for name in ("ibp", "crown"):
        if name not in methods or rows.numel() == 0:
            continue
        stage = bound_stage(name, state, model, bound_model, chunk)
        done = torch.tensor([record_stage(results[i], name, stage[j], state.lb[j], state.tau[j], methods)
                             for j, i in enumerate(rows.tolist())], dtype=torch.bool)
        keep = (~done).nonzero().flatten()
        state, rows = state.rows(keep.to(state.lb.device)), rows[keep.to(rows.device)]
    later = ("alpha" in methods) or ("bab" in methods)
    return [(i, state.rows(torch.tensor([j], device=state.lb.device))) for j, i in enumerate(rows.tolist())] \
        if later else []


def _per_sample_stages(result: VerifyResult, model: nn.Module, bound_model: nn.Module, state, methods: Sequence[str],
                       timeout: float, chunk: Optional[int], bab: Optional[BabSettings],
                       generator: Optional[torch.Generator], alpha_iterations: int) -> None:
    """α-CROWN then branch and bound on one sample the batched stages left open."""
    if "alpha" in methods:
        stage = bound_stage("alpha", state, model, bound_model, chunk, alpha_iterations)
        if record_stage(result, "alpha", stage[0], state.lb[0], state.tau[0], methods):
            return
    if "bab" in methods:
        bab_stage(result, model, bound_model, state, timeout, bab, generator)

