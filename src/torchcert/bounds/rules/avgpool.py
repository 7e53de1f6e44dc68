"""nn.AvgPool2d as a depthwise convolution with weights ``1 / (kh kw)`` (reuses the conv rule)."""
from __future__ import annotations

from typing import Tuple

import torch
from torch import nn

from . import conv


def from_module(module: nn.AvgPool2d, in_shape: Tuple[int, ...], dtype: torch.dtype) -> conv.ConvOp:
    pair = torch.nn.modules.utils._pair
    kh, kw = pair(module.kernel_size)
    padding = pair(module.padding)
    if module.ceil_mode or module.divisor_override is not None or (
            any(padding) and not module.count_include_pad) or len(in_shape) != 3:
        raise ValueError(f"{module}: supported are ceil_mode=False, no divisor_override, "
                         "count_include_pad=True when padded, and (C, H, W) inputs")
    channels = in_shape[0]
    weight = torch.full((channels, 1, kh, kw), 1.0 / (kh * kw), dtype=dtype)
    stride = module.stride if module.stride is not None else module.kernel_size
    return conv.make(weight, torch.zeros(channels, dtype=dtype), stride, padding, 1, channels)


output_shape = conv.output_shape
forward = conv.forward
ibp = conv.ibp
backward = conv.backward
rounding = conv.rounding  # sum then divide: within the same bound as the weights 1 / (kh kw)
error_backward = conv.error_backward
