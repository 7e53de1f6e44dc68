"""Elementwise affine maps by constants, ``y = x * scale + shift`` with scalar or per-channel constants: the rule
of ``x - mean``, ``x / std``, ``2 * x`` ... in a traced forward (``graph.ChannelAffine`` stands for each). The maths
is BatchNorm's (``batchnorm.ScaleOp``); only where the constants come from differs."""
from __future__ import annotations

from typing import Any, Optional, Tuple

import torch
from torch import nn

from . import batchnorm


def attribute(root: Any, target: str) -> Any:
    """The value at dotted path ``target`` of ``root`` (``"block.mean"``)."""
    value = root
    for part in target.split("."):
        value = getattr(value, part)
    return value


class ChannelAffine(nn.Module):
    """``x * scale + shift``; ``scale``/``shift`` scalars or per-channel (channel dimension 1).

    Fixed constants are buffers. A constant read from a module's attribute in a traced forward (``x - self.mean``)
    is a *live* source ``(root, target, kind)``: the tensor at dotted path ``target`` of ``root`` is read at each
    call (so a buffer moved by ``.to()``, reloaded by ``load_state_dict`` or a parameter trained by an optimiser is
    seen, with its gradient) and turned into ``(scale, shift)`` by ``kind``: ``add`` ``(1, c)``, ``sub`` ``(1, -c)``,
    ``rsub`` ``(-1, c)``, ``mul`` ``(c, 0)``, ``div`` ``(1 / c, 0)``.
    """

    def __init__(self, scale: torch.Tensor, shift: torch.Tensor,
                 source: Optional[Tuple[nn.Module, str, str]] = None) -> None:
        super().__init__()
        self.register_buffer("fixed_scale", torch.as_tensor(scale, dtype=torch.float64))
        self.register_buffer("fixed_shift", torch.as_tensor(shift, dtype=torch.float64))
        self.source = source  # a tuple: its module is not registered as a submodule (no second owner)

    def constants(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(scale, shift)`` now, float64."""
        if self.source is None:
            return self.fixed_scale, self.fixed_shift
        root, target, kind = self.source
        return self.by_kind(kind, attribute(root, target).to(torch.float64))

    @staticmethod
    def by_kind(kind: str, c: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(scale, shift)`` of ``x + c``, ``x - c``, ``c - x``, ``x * c``, ``x / c`` (kinds add, sub, rsub, mul, div)."""
        one, zero = torch.ones_like(c), torch.zeros_like(c)
        return {"add": (one, c), "sub": (one, -c), "rsub": (-one, c), "mul": (c, zero), "div": (1.0 / c, zero)}[kind]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale, shift = self.constants()
        return x * scale.to(x.dtype) + shift.to(x.dtype)  # as the traced forward broadcast them


def per_channel(t: torch.Tensor, in_shape: Tuple[int, ...]) -> torch.Tensor:
    """The constant of an elementwise op on features ``in_shape`` as one value per channel ``(C,)``, read as
    PyTorch broadcasts it: a scalar; on a vector ``(F,)`` a ``(F,)`` or ``(1, F)`` constant; on a map ``(C, H, W)``
    a ``(C, 1, 1)`` or ``(1, C, 1, 1)`` one (a 1-D constant would broadcast over the width: refused)."""
    channels = in_shape[0]
    if t.numel() == 1:
        return t.reshape(1).expand(channels).clone()
    dims = tuple(t.shape)
    per_feature = len(in_shape) == 1 and dims in ((channels,), (1, channels))
    per_map_channel = len(in_shape) == 3 and dims in ((channels, 1, 1), (1, channels, 1, 1))
    if not (per_feature or per_map_channel):
        raise ValueError(f"an elementwise constant of shape {dims} on features of shape {tuple(in_shape)} is "
                         "supported only as a scalar or one value per channel ((C, 1, 1) or (1, C, 1, 1) on maps)")
    return t.reshape(-1).clone()


def from_module(module: ChannelAffine, in_shape: Tuple[int, ...], dtype: torch.dtype) -> batchnorm.ScaleOp:
    scale, shift = module.constants()
    return batchnorm.ScaleOp(per_channel(scale, in_shape).to(dtype), per_channel(shift, in_shape).to(dtype))


output_shape = batchnorm.output_shape
forward = batchnorm.forward
ibp = batchnorm.ibp
backward = batchnorm.backward
rounding = batchnorm.rounding
error_backward = batchnorm.error_backward
