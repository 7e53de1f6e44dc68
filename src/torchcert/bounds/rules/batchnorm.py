"""nn.BatchNorm1d / BatchNorm2d as a per-channel affine map ``y = scale * x + shift``.

Eval mode: ``scale = w / sqrt(running_var + eps)``, ``shift = b - running_mean * scale``.
Train mode: the same with the batch mean and BIASED batch variance captured from the latest forward
(:func:`torchcert.bounds.capture_bn_stats`), gradients flowing through them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import torch
from torch import Tensor, nn

from ..box import Box
from ._window import Arithmetic, Offset, channel_view, magnitude


@dataclass(frozen=True)
class ScaleOp:
    """Per-channel ``scale (C,)`` and ``shift (C,)`` (channel dimension 1 of the input); ``shift_size``
    ``|b| + |mean scale|``, the size of the terms the shift is computed from (for rounding-error bounds;
    ``|shift|`` when None)."""

    scale: Tensor
    shift: Tensor
    shift_size: Optional[Tensor] = None


def statistics(module: nn.modules.batchnorm._BatchNorm, bn_stats: Optional[dict]) -> Tuple[Tensor, Tensor]:
    """``(mean, var)`` the bounds must use for ``module`` (running or captured batch statistics)."""
    if not module.training:
        return module.running_mean, module.running_var
    if bn_stats is None or module not in bn_stats:
        raise ValueError(
            f"{module} is in training mode, so bounds need its batch statistics: run the forward inside "
            "`with capture_bn_stats(model) as stats:` and pass bn_stats=stats, or call model.eval()")
    return bn_stats[module]


def from_module(module: nn.Module, in_shape: Tuple[int, ...], dtype: torch.dtype,
                bn_stats: Optional[dict] = None) -> ScaleOp:
    if module.track_running_stats is False and not module.training:
        raise ValueError(f"{module} has no running statistics; bound it in training mode with bn_stats")
    mean, var = statistics(module, bn_stats)
    ones = torch.ones_like(mean)
    weight = module.weight if module.affine else ones
    bias = module.bias if module.affine else torch.zeros_like(mean)
    scale = weight / torch.sqrt(var + module.eps)
    size = (bias.abs() + (mean * scale).abs()).detach().to(dtype)
    return ScaleOp(scale.to(dtype), (bias - mean * scale).to(dtype), size)


def output_shape(op: ScaleOp, in_shape: Tuple[int, ...]) -> Tuple[int, ...]:
    return in_shape


def forward(op: ScaleOp, x: Tensor) -> Tensor:
    nd = x.dim() - 1
    return x * channel_view(op.scale, nd) + channel_view(op.shift, nd)


def ibp(op: ScaleOp, center: Tensor, radius: Tensor) -> Tuple[Tensor, Tensor]:
    """``c' = scale c + shift``, ``r' = |scale| r``."""
    return forward(op, center), radius * channel_view(op.scale.abs(), radius.dim() - 1)


def backward(op: ScaleOp, A: Tensor, offset: Offset, in_shape: Tuple[int, ...]) -> Tuple[Tensor, Tensor, Offset]:
    """``A -> A * scale``; bias ``sum A * shift`` over the feature dimensions."""
    nd = A.dim() - 2
    feature_dims = tuple(range(2, A.dim()))
    bias = (A * channel_view(op.shift, nd)).sum(feature_dims)
    return A * channel_view(op.scale, nd), bias, offset


def rounding(op: ScaleOp, pre: Box, error: Tensor, arith: Arithmetic) -> Tuple[Tensor, Tensor, Tensor]:
    """Carried error ``|s| e``, the rounding of ``x' * scale' + shift'`` with ``scale'``, ``shift'`` themselves
    rounded from the parameters and statistics (a few operations each), ``gamma_8 S + 8 tiny``, and the largest
    magnitude ``S = |s| (|x| + e) + |b| + |mean s|``."""
    nd = error.dim() - 1
    scale = channel_view(op.scale.abs(), nd)
    size = op.shift_size if op.shift_size is not None else op.shift.abs()
    peak = scale * (magnitude(pre) + error) + channel_view(size, nd)
    return scale * error, arith.gamma(8) * peak + 8 * arith.tiny, peak


def error_backward(op: ScaleOp, center: Tensor, radius: Tensor, pre: Box, error: Tensor) -> Tuple[Tensor, Tensor]:
    """``A scale``, ``R |scale|``."""
    nd = center.dim() - 2
    return center * channel_view(op.scale, nd), radius * channel_view(op.scale.abs(), nd)
