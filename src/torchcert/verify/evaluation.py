"""Per-sample losses of a trained network, as the original log_losses.py and get_tuning_stats.py compute them.

For a batch with margin matrix C (B, K-1, K), boxes at ε and attack boxes at ``ε·eps_factor``:
``nat``/``adv``: cross-entropy at x / at the test-PGD point; ``ibp``/``crown``: ``ibp_loss`` of the IBP / max(IBP,
CROWN) margin lower bounds; with x_adv from the *training* attack: ``ccibp = ibp_loss(α·lb_IBP + (1-α)·C f(x_adv))``,
``mtlibp = α·L_IBP + (1-α)·CE(x_adv)``, ``expibp = L_IBP^α·CE(x_adv)^(1-α)``, ``sabr = ibp_loss`` of the IBP bounds
on SABR's small box around x_adv (radius ``α_sabr·ε·factor``). Each loss has its own α, as in the original.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import nn

from torchcert import bounds, losses
from torchcert.attacks import per_example_ce, pgd
from torchcert.bounds import Box

from .cascade import spec_bounds


@dataclass(frozen=True)
class LossSettings:
    """Coefficients of each expressive loss and the test/train attacks (steps, step size relative to ε)."""

    ccibp_coeff: float = 0.0
    mtlibp_coeff: float = 0.0
    expibp_coeff: float = 0.0
    sabr_coeff: float = 0.0
    test_steps: int = 40
    test_step_size: float = 0.035
    train_steps: int = 1
    train_step_size: float = 10.0
    eps_factor: float = 1.0
    spec_chunk: Optional[int] = None


def rowwise(fn, *tensors: torch.Tensor) -> torch.Tensor:
    """Apply a batch-mean loss of ``torchcert.losses`` to each sample alone: (B, ...) -> (B,)."""
    return torch.stack([fn(*(t[i:i + 1] for t in tensors)) for i in range(tensors[0].shape[0])])


def ibp_lower(model: nn.Module, box: Box, C: torch.Tensor, chunk: Optional[int] = None) -> torch.Tensor:
    with torch.no_grad():
        return spec_bounds(bounds.ibp, model, box, C, chunk)


def crown_lower(model: nn.Module, box: Box, C: torch.Tensor, chunk: Optional[int] = None) -> torch.Tensor:
    """max(IBP, CROWN) margin lower bounds (B, K-1), the original's combination."""
    with torch.no_grad():
        return torch.maximum(spec_bounds(bounds.crown, model, box, C, chunk), ibp_lower(model, box, C, chunk))


def attack(model: nn.Module, box: Box, labels: torch.Tensor, steps: int, step_size: float,
           generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """The original PGD (cross-entropy, uniform start) on each box; returns x_adv (B, ...)."""
    if steps < 1:
        return box.center
    return pgd(model, box.lower, box.upper, per_example_ce(labels), steps, step_size, generator=generator)


def sample_losses(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, box: Box, attack_box: Box,
                  sabr_radius: torch.Tensor, data_min: torch.Tensor, data_max: torch.Tensor,
                  settings: LossSettings, generator: Optional[torch.Generator] = None) -> Dict[str, torch.Tensor]:
    """Every loss of the module docstring per sample, (B,) each; ``sabr_radius`` = α_sabr·ε·factor/std."""
    C = bounds.margin_matrix(labels, _classes(model, x)).to(x.dtype)
    with torch.no_grad():
        nat = F.cross_entropy(model(x), labels, reduction="none")
    x_test = attack(model, box, labels, settings.test_steps, settings.test_step_size, generator)
    x_train = attack(model, attack_box, labels, settings.train_steps, settings.train_step_size, generator)
    lb_ibp = ibp_lower(model, box, C, settings.spec_chunk)
    with torch.no_grad():
        adv = F.cross_entropy(model(x_test), labels, reduction="none")
        train_logits = model(x_train)
    train_adv = F.cross_entropy(train_logits, labels, reduction="none")
    ibp = rowwise(losses.ibp_loss, lb_ibp)
    small = losses.sabr_box(x_train, attack_box, sabr_radius, data_min, data_max)
    return {
        "nat_loss": nat, "adv_loss": adv, "ibp_loss": ibp,
        "crown_loss": rowwise(losses.ibp_loss, crown_lower(model, box, C, settings.spec_chunk)),
        "ccibp_loss": rowwise(lambda lb, m: losses.cc_ibp_loss(lb, m, settings.ccibp_coeff), lb_ibp,
                              losses.margins(C, train_logits)),
        "mtlibp_loss": losses.mtl_ibp_loss(ibp, train_adv, settings.mtlibp_coeff),
        "expibp_loss": losses.exp_ibp_loss(ibp, train_adv, settings.expibp_coeff),
        "sabr_loss": rowwise(losses.ibp_loss, ibp_lower(model, small, C, settings.spec_chunk)),
    }


def _classes(model: nn.Module, x: torch.Tensor) -> int:
    with torch.no_grad():
        return int(model(x[:1]).shape[1])


def bab_margin_bounds(model: nn.Module, box: Box, C: torch.Tensor, timeout: float,
                      start: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Branch-and-bound lower bound of every margin separately (one bound-mode run of ``timeout`` seconds per
    margin, the original's 1-vs-1 OVAL runs), combined by max with ``start`` (1, M) when given: (1, M)."""
    from .bab import BabSettings, branch_and_bound

    from .verdict import bound_copy

    settings = BabSettings(timeout=timeout, bound_mode=True)
    bound_model = bound_copy(model)
    out = torch.empty(1, C.shape[1], dtype=box.lower.dtype, device=box.lower.device)
    for j in range(C.shape[1]):
        out[0, j] = branch_and_bound(model, box, C[:, j:j + 1], settings, bound_model=bound_model).lower_bound
    return out if start is None else torch.maximum(out, start)


def mean_losses(setup, settings: LossSettings, start: int, end: int, batch_size: int, seed: int,
                bab_timeout: Optional[float] = None) -> Dict[str, float]:
    """Mean of every per-sample loss over samples [start, end) of ``setup.split`` (end -1: all), with a progress
    bar; adds ``bab_loss`` (bound-mode BaB per margin, ``bab_timeout`` s each) when a timeout is given."""
    from torchcert.data import data_range, normalize

    end = len(setup.split) if end < 0 else min(end, len(setup.split))
    low, high = data_range(setup.info, setup.device, setup.dtype)
    std = torch.tensor(setup.info.std, dtype=setup.dtype, device=setup.device).view(1, -1, 1, 1)
    gen = torch.Generator(setup.device).manual_seed(seed)
    sums: Dict[str, float] = {}
    from torchcert.progress import Progress

    for first in Progress(range(start, end, batch_size), math.ceil((end - start) / batch_size), "losses"):
        images = setup.split.images[first:min(first + batch_size, end)].to(setup.device)
        labels = setup.split.labels[first:first + images.shape[0]].to(setup.device)
        x = normalize(images, setup.info, setup.dtype)
        radius = setup.eps / std
        factor = settings.eps_factor
        box = Box(torch.max(x - radius, low), torch.min(x + radius, high))
        attack_box = Box(torch.max(x - radius * factor, low), torch.min(x + radius * factor, high))
        values = sample_losses(setup.model, x, labels, box, attack_box, radius * factor * settings.sabr_coeff,
                               low, high, settings, gen)
        if bab_timeout is not None:
            values["bab_loss"] = _bab_losses(setup.model, box, labels, bab_timeout, settings.spec_chunk)
        for key, value in values.items():
            sums[key] = sums.get(key, 0.0) + float(value.detach().sum())
    count = max(end - start, 1)
    return {key: total / count for key, total in sums.items()}


def _bab_losses(model: nn.Module, box: Box, labels: torch.Tensor, timeout: float,
                chunk: Optional[int]) -> torch.Tensor:
    values = []
    for i in range(labels.shape[0]):
        sample = Box(box.lower[i:i + 1], box.upper[i:i + 1])
        C = bounds.margin_matrix(labels[i:i + 1], _classes(model, sample.lower)).to(sample.lower.dtype)
        values.append(losses.ibp_loss(bab_margin_bounds(model, sample, C, timeout)))
    return torch.stack(values)
