"""What "verified" and "falsified" mean, in one place.

* **Falsified**: a point of the box at which the network, run as the user runs it (its dtype, its device, eval
  mode), violates the specification: some margin ``(C f(x))_j`` is strictly negative. For the margin
  specification ``e_y - e_j`` that is: some other logit is strictly greater than the label's. A tie is not a
  counterexample (and is never verified either). The margins are taken in float64 from the network's logits,
  so their sign is that of the comparison the network makes.
* **Verified**: every margin's lower bound clears a tolerance ``tau_j`` that covers floating-point error.
  Bounds are computed in ``bound_dtype`` (float64 by default; float32 is an option for speed) on a copy of the
  network and are bounds for real arithmetic; the network as run rounds. ``tau = |C| e_run + 4 |C| e_bound`` where ``e_run`` bounds the
  rounding error of the network's forward pass in its own dtype over the box (:mod:`torchcert.bounds.rounding`)
  and ``e_bound`` the same in the bound dtype, an allowance for the rounding of the bound computation itself
  (an estimate: the back-substitution rounds about as often as the forward pass). A bound that does not clear
  ``tau`` leaves the sample undecided (timeout/unknown), never verified.
"""
from __future__ import annotations

import copy
from typing import Optional

import torch
from torch import Tensor, nn

from torchcert.bounds import Box
from torchcert.bounds.layers import BoundGraph
from torchcert.bounds.rounding import arithmetic, forward_error

#: the bound-computation allowance counts this many forward passes' worth of rounding
BOUND_ROUNDING_FACTOR = 4.0
#: names this policy in results files: records made under another policy are not reused
VERDICT_POLICY = "float64 bounds, forward rounding tolerance, strict counterexamples (v1)"


def model_dtype(model: nn.Module) -> torch.dtype:
    """The floating dtype the network runs in (that of its first floating parameter or buffer)."""
    for t in list(model.parameters()) + list(model.buffers()):
        if t.is_floating_point():
            return t.dtype
    return torch.get_default_dtype()


def bound_copy(model: nn.Module, dtype: torch.dtype = torch.float64) -> BoundGraph:
    """The network in ``dtype`` for bounding, traced once (a :class:`BoundGraph`): ``model`` itself when it
    already is in ``dtype``, else an eval-mode copy."""
    if model_dtype(model) != dtype:
        model = copy.deepcopy(model).to(dtype).eval()
    return model if isinstance(model, BoundGraph) else BoundGraph(model)


def spec_values(logits: Tensor, C: Tensor) -> Tensor:
    """``C f`` in float64 from the network's logits ``(N, K)`` and ``C (1 or N, M, K)``: ``(N, M)``."""
    spec = C.to(torch.float64)
    spec = spec[0] if spec.shape[0] == 1 else spec
    eq = "mk,nk->nm" if spec.dim() == 2 else "nmk,nk->nm"
    return torch.einsum(eq, spec, logits.detach().to(torch.float64))


def misclassified(logits: Tensor, label: int) -> Tensor:
    """``(N,)``: some other class's logit strictly exceeds the label's (a tie is not a misclassification)."""
    others = torch.cat([logits[:, :label], logits[:, label + 1:]], dim=1)
    return (others > logits[:, label:label + 1]).any(dim=1)


def tolerance(bound_model: nn.Module, box: Box, C: Tensor, run_dtype: torch.dtype,
              relu_bounds=None) -> Tensor:
    """``tau (B, M)`` float64: a margin bound verifies spec j only when it exceeds ``tau_j`` (module docstring).

    ``bound_model``: the network in the bound dtype (its structure and weights; :func:`bound_copy`);
    ``run_dtype``: the dtype the user's network runs in; ``box (B, *in)``; ``C (B, M, K)``; ``relu_bounds``
    (optional): pre-activation boxes of its ReLUs (e.g. CROWN's), which make the bound tighter."""
    device = box.lower.device
    run = forward_error(bound_model, box, arithmetic(run_dtype, device), C, relu_bounds)
    bound = forward_error(bound_model, box, arithmetic(model_dtype(bound_model), device), C, relu_bounds)
    return run + BOUND_ROUNDING_FACTOR * bound


def certified(model: nn.Module, box: Box, C: Tensor, method: str = "crown",
              bound_model: Optional[nn.Module] = None) -> Tensor:
    """Batched verdict ``(B,)``: every margin's lower bound by ``method``, computed on the float64 copy
    ``bound_model``, clears the tolerance of ``model``. "crown" takes the elementwise max of the IBP and CROWN
    bounds, as the verification cascade's CROWN stage does (CROWN's pre-activation bounds tighten the tolerance)."""
    from torchcert.bounds import crown, crown_relu_bounds, ibp

    if method not in ("ibp", "crown"):
        raise ValueError(f"method must be 'ibp' or 'crown', got {method!r}")
    bound_model = bound_copy(model) if bound_model is None else bound_model
    dtype = model_dtype(bound_model)
    box_b, C_b = Box(box.lower.to(dtype), box.upper.to(dtype)), C.to(dtype)
    with torch.no_grad():
        if method == "ibp":
            lower, tau = ibp(bound_model, box_b, C_b).lower, tolerance(bound_model, box, C, model_dtype(model))
        else:
            relu_bounds = crown_relu_bounds(bound_model, box_b)
            lower = torch.maximum(crown(bound_model, box_b, C_b, "given", relu_bounds=relu_bounds).lower,
                                  ibp(bound_model, box_b, C_b).lower)
            tau = tolerance(bound_model, box, C, model_dtype(model), relu_bounds)
        return (lower > tau.to(dtype)).all(dim=1)
