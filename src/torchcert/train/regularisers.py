"""Warm-up regulariser of Shi et al. (2021) on IBP bound tightness and ReLU balance.

Inputs are the IBP input box and the boxes of the ReLU inputs (pre-activations), in layer order. With
``tol`` τ, ``t0 = mean((u0 - l0)/2)`` over the input box and, per ReLU layer with bounds [l, u]
(centre ``c = (u + l)/2``, all means over every element of the layer and batch):

    L_tightness = mean_layers relu(τ - t0 / max(mean((u - l)/2), 1e-12)) / τ
    L_relu      = mean_layers (relu(τ - min(r_m, 1/r_m)) + relu(τ - min(r_v, 1/r_v))) / τ
                  r_m = mean(c·[l > 0]) / -mean(c·[u < 0]),
                  r_v = Σ (c - mean c)²·[l > 0] / Σ (c - mean c)²·[u < 0]
                  (a layer whose term is NaN or inf adds nothing but still counts in the mean; 1/r uses r >= 1e-12)
    L_std       = mean_layers relu(τ - std(c)) / τ          (unbiased std)

The regulariser is the sum of the chosen objectives times ``weight · (1 - ε/ε_max)`` (or ``weight`` without decay).
"""
from __future__ import annotations

from typing import Dict, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from torchcert.bounds import Box


def shi_terms(input_box: Box, relu_inputs: Sequence[Box], tol: float) -> Dict[str, Tensor]:
    """``{"tightness", "relu", "std"}`` terms (scalars) of the regulariser, as defined in the module docstring."""
    if not relu_inputs:
        raise ValueError("the Shi et al. regulariser needs a network with at least one ReLU")
    t0 = ((input_box.upper - input_box.lower) / 2).mean()
    zero = torch.zeros((), device=t0.device, dtype=t0.dtype)
    tightness, relu, std = zero, zero, zero
    for box in relu_inputs:
        lower, upper = box.lower, box.upper
        centre = (upper + lower) / 2
        tightness = tightness + F.relu(tol - t0 / ((upper - lower) / 2).mean().clamp(min=1e-12)) / tol
        std = std + F.relu(tol - centre.std()) / tol
        relu_term = _relu_balance(centre, lower > 0, upper < 0, tol)
        if not torch.isnan(relu_term) and not torch.isinf(relu_term):
            relu = relu + relu_term
    count = len(relu_inputs)
    return {"tightness": tightness / count, "relu": relu / count, "std": std / count}


def _relu_balance(centre: Tensor, active: Tensor, inactive: Tensor, tol: float) -> Tensor:
    """Penalty pushing the mean and the spread of the active and inactive neurons to balance."""
    mean_ratio = (centre * active).mean() / -(centre * inactive).mean()
    delta = (centre - centre.mean()) ** 2
    var_ratio = (delta * active).sum() / (delta * inactive).sum()
    mean_ratio = torch.min(mean_ratio, 1 / mean_ratio.clamp(min=1e-12))
    var_ratio = torch.min(var_ratio, 1 / var_ratio.clamp(min=1e-12))
    return (F.relu(tol - mean_ratio) + F.relu(tol - var_ratio)) / tol


def reg_intensity(eps: float, max_eps: float, weight: float, decay: bool = True) -> float:
    """``weight · (1 - ε/ε_max)`` (ε the scheduled, un-multiplied ε), or ``weight`` without decay."""
    return weight * (1 - eps / max_eps) if decay else weight


def shi_regulariser(input_box: Box, relu_inputs: Sequence[Box], tol: float, objectives: Sequence[str],
                    intensity: float) -> Tensor:
    """``intensity · Σ_{o in objectives} L_o`` (scalar)."""
    terms = shi_terms(input_box, relu_inputs, tol)
    loss = torch.zeros_like(terms["relu"])
    for name in ("tightness", "relu", "std"):
        if name in objectives:
            loss = loss + terms[name]
    return loss * intensity
