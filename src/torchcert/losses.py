"""Training losses of certified training as pure functions of tensors, plus a registry by method name.

Notation: ``margin_lb`` (B, K-1) are lower bounds on the margins ``C·f(x) = z_y - z_j`` (j ≠ y) over a box,
``adv_margin`` (B, K-1) the margins ``C·f(x_adv)`` at an adversarial point, ``robust_loss = ibp_loss(margin_lb)``
and ``adv_loss = CE(f(x_adv), y)`` (both scalars). Every loss is a mean over the batch.

    IBP      L(lb)        = mean_b log(1 + Σ_j exp(-lb_bj))            (cross-entropy of [0, -lb] with label 0)
    CC-IBP   L_IBP(α·lb + (1-α)·C·f(x_adv))
    MTL-IBP  α·L_IBP + (1-α)·L_adv
    Exp-IBP  L_IBP^α · L_adv^(1-α)
    SABR     L_IBP over a small box of radius λ·ε around the (projected) attack point
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Dict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

if TYPE_CHECKING:  # pragma: no cover
    from torchcert.bounds import Box


def ibp_loss(margin_lb: Tensor) -> Tensor:
    """Cross-entropy of the zero-padded negated margin bounds with label 0; (B, K-1) -> scalar.

    Equals ``mean_b log(1 + Σ_j exp(-lb_bj))``: the cross-entropy of the worst-case logits the bounds allow.
    """
    padded = torch.cat([torch.zeros_like(margin_lb[:, :1]), margin_lb], dim=1)
    target = torch.zeros(margin_lb.shape[0], dtype=torch.long, device=margin_lb.device)
    return F.cross_entropy(-padded, target)


def cc_ibp_loss(margin_lb: Tensor, adv_margin: Tensor, alpha: float) -> Tensor:
    """CC-IBP: ``ibp_loss(α·lb + (1-α)·C·f(x_adv))``; both (B, K-1) -> scalar."""
    return ibp_loss(alpha * margin_lb + (1 - alpha) * adv_margin)


def mtl_ibp_loss(robust_loss: Tensor, adv_loss: Tensor, alpha: float) -> Tensor:
    """MTL-IBP: ``α·L_IBP + (1-α)·L_adv`` (scalars)."""
    return alpha * robust_loss + (1 - alpha) * adv_loss


def exp_ibp_loss(robust_loss: Tensor, adv_loss: Tensor, alpha: float) -> Tensor:
    """Exp-IBP: ``L_IBP^α · L_adv^(1-α)`` (scalars; a convex combination of the logarithms)."""
    return robust_loss ** alpha * adv_loss ** (1 - alpha)


def sabr_box(x_adv: Tensor, attack_box: "Box", radius: Tensor, data_min: Tensor, data_max: Tensor) -> "Box":
    """SABR's small box: centre = x_adv projected so that the box of ``radius`` fits in ``attack_box``.

    ``centre = min(max(x_adv, lower + r), upper - r)`` (where ``lower + r > upper - r`` the upper end wins),
    box = ``[max(centre - r, data_min), min(centre + r, data_max)]``. ``x_adv`` (B, C, H, W); ``radius``,
    ``data_min``, ``data_max`` broadcast, e.g. (1, C, 1, 1), in normalised units.
    """
    from torchcert.bounds import Box

    centre = torch.clamp(x_adv, attack_box.lower + radius, attack_box.upper - radius)
    return Box(torch.max(centre - radius, data_min), torch.min(centre + radius, data_max))


def margins(C: Tensor, logits: Tensor) -> Tensor:
    """Margins ``C·z``: C (B, M, K), logits (B, K) -> (B, M)."""
    return torch.bmm(C, logits.unsqueeze(-1)).squeeze(-1)


def l1_penalty(model: nn.Module) -> Tensor:
    """``Σ |W|`` over the weights of every Linear and Conv2d module (biases and BatchNorm excluded)."""
    device = next(model.parameters()).device
    total = torch.zeros((), device=device)
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            total = total + module.weight.abs().sum()
    return total


@dataclass(frozen=True)
class LossTerms:
    """The quantities a training loss combines (see the module docstring for the notation)."""

    margin_lb: Tensor
    adv_margin: Tensor
    robust_loss: Tensor
    adv_loss: Tensor


@dataclass(frozen=True)
class TrainingLoss:
    """A registered training loss: ``combine(terms, coeff) -> scalar``; ``small_box``: bounds over SABR's box."""

    name: str
    combine: Callable[[LossTerms, float], Tensor]
    small_box: bool = False
    uses_coeff: bool = True


LOSSES: Dict[str, TrainingLoss] = {
    "ibp": TrainingLoss("ibp", lambda t, a: t.robust_loss, uses_coeff=False),
    "cc-ibp": TrainingLoss("cc-ibp", lambda t, a: cc_ibp_loss(t.margin_lb, t.adv_margin, a)),
    "mtl-ibp": TrainingLoss("mtl-ibp", lambda t, a: mtl_ibp_loss(t.robust_loss, t.adv_loss, a)),
    "exp-ibp": TrainingLoss("exp-ibp", lambda t, a: exp_ibp_loss(t.robust_loss, t.adv_loss, a)),
    "sabr": TrainingLoss("sabr", lambda t, a: t.robust_loss, small_box=True),
}


def get_loss(name: str) -> TrainingLoss:
    """The registered loss ``name``; ValueError listing the valid names otherwise."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; valid names: {', '.join(LOSSES)}")
    return LOSSES[name]
