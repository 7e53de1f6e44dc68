"""Floating-point error of a network's forward pass over a box (a priori, Higham-style).

Bounds from this package are bounds of the network in real arithmetic (its weights taken as exact). The
network as a user runs it rounds every operation, so its logits differ from the real ones. For an affine map
of fan-in ``n`` computed in floating point with unit roundoff ``u`` (any summation order, FMA or not),
``|fl(W x' + b) - (W x + b)| <= |W| |x' - x| + gamma_(n+1) (|W| |x'| + |b|)`` with ``gamma_n = n u / (1 - n u)``;
ReLU and reshapes are exact. Propagating this layer by layer over the interval (IBP) box gives ``e (B, K)``
with ``|f_float(x) - f_real(x)| <= e`` for every x of the box. Each rule states its own term
(``rule.rounding_error``). Not covered: Winograd or FFT convolutions (cuDNN may choose them), and TF32
unless :func:`unit_roundoff` is told the device allows it.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from .box import Box
from .layers import build_layers

UNIT_ROUNDOFF = {torch.float64: 2.0 ** -53, torch.float32: 2.0 ** -24, torch.float16: 2.0 ** -11,
                 torch.bfloat16: 2.0 ** -8}


def unit_roundoff(dtype: torch.dtype, device: Optional[torch.device] = None) -> float:
    """Unit roundoff of arithmetic in ``dtype`` on ``device``: float32 on CUDA counts as TF32 (``2^-11``)
    when PyTorch allows TF32 for matrix products or cuDNN convolutions."""
    if dtype not in UNIT_ROUNDOFF:
        raise ValueError(f"no rounding model for {dtype}; supported: {', '.join(map(str, UNIT_ROUNDOFF))}")
    tf32 = torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32
    if dtype == torch.float32 and device is not None and torch.device(device).type == "cuda" and tf32:
        return 2.0 ** -11
    return UNIT_ROUNDOFF[dtype]


def forward_error(model: nn.Module, box: Box, unit: float) -> Tensor:
    """``e (B, K)``: bound on ``|f_float(x) - f_real(x)|`` of every output over ``box`` (``(B, *in)``) when
    every operation of ``model`` (eval mode) rounds with unit roundoff ``unit``. Computed in float64."""
    low, up = box.lower.detach().to(torch.float64), box.upper.detach().to(torch.float64)
    layers = build_layers(model, tuple(low.shape[1:]), torch.float64, fold_bn=False)
    center, radius = (up + low) / 2, (up - low) / 2
    error = torch.zeros_like(center)
    with torch.no_grad():
        for layer in layers:
            pre = Box(center - radius, center + radius)
            error = layer.rule.rounding_error(layer.op, pre, error, unit)
            center, radius = layer.rule.ibp(layer.op, center, radius)
    return error.flatten(1) * (1 + 1e-6)  # the bound's own float64 evaluation, generously
