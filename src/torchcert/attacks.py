"""Projected gradient descent (PGD) on an L∞ box, with the semantics of the original code's ``pgd_attack``.

    x_0     ~ U[lower, upper]                                   (one uniform draw per coordinate)
    x_{t+1} = clip(x_t + step_size · (upper - lower)/2 · sign(∇_x Σ_b loss_b(x_t)), lower, upper)

The best iterate per example is kept, an iterate replacing the current best when its loss is ``>=`` the best
loss so far. With more than one step the last iterate is evaluated once more and kept under the same rule; with
exactly one step the last iterate is returned without being evaluated (FGSM from a random start).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LossFn = Callable[[Tensor], Tensor]


def pgd(model: nn.Module, lower: Tensor, upper: Tensor, loss_fn: LossFn, steps: int, step_size: float,
        generator: Optional[torch.Generator] = None, noise: Optional[Tensor] = None) -> Tensor:
    """Maximise ``loss_fn(model(x))`` (per example, shape (B,)) over ``lower <= x <= upper`` (B, ...).

    ``step_size`` is relative to the half-width of the box; the model's mode is left as the caller set it
    (training attacks run in eval mode, see :func:`eval_mode`). ``noise`` (B, ...): the uniform draw ``u`` in
    [0, 1) of the start ``x_0 = lower + u·(upper - lower)``, made by the caller (e.g. each example's from its own
    generator); default: drawn here from ``generator``. Returns the detached adversarial input.
    """
    if steps < 1:
        raise ValueError(f"PGD needs at least one step, got steps={steps}")
    scale = (upper - lower) / 2
    best = lower.clone()
    best_loss = torch.full((lower.shape[0],), float("-inf"), dtype=torch.float32, device=lower.device)
    with torch.enable_grad():
        u = torch.zeros_like(lower).uniform_(generator=generator) if noise is None else noise
        x = (u * (upper - lower) + lower).detach_()
        for _ in range(steps):
            x.requires_grad_(True)
            loss = loss_fn(model(x))
            best, best_loss = _keep_best(x.detach(), loss.detach(), best, best_loss)
            grad = torch.autograd.grad(loss.sum(), x)[0]
            x = x.detach() + step_size * scale * grad.sign()
            x = torch.max(torch.min(x, upper), lower).detach_()
    if steps == 1:
        return x.detach().clone()
    with torch.no_grad():
        best, _ = _keep_best(x, loss_fn(model(x)), best, best_loss)
    return best


def _keep_best(x: Tensor, loss: Tensor, best: Tensor, best_loss: Tensor) -> tuple[Tensor, Tensor]:
    """Per example, take ``x`` where ``loss >= best_loss``."""
    better = loss >= best_loss
    shape = (-1,) + (1,) * (x.dim() - 1)
    return torch.where(better.view(shape), x.clone(), best), torch.where(better, loss.clone(), best_loss)


def per_example_ce(labels: Tensor) -> LossFn:
    """Loss function for :func:`pgd`: cross-entropy per example, logits (B, K) -> (B,)."""
    return lambda logits: F.cross_entropy(logits, labels, reduction="none")


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode inside the block and restore its previous mode after."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)
