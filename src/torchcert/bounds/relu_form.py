"""Max pooling rewritten as ReLUs, so that branch and bound (which splits ReLUs) is complete on max-pool networks.

``max(a, b) = a + relu(b - a)`` exactly, so the max of a window ``x_1 .. x_k`` is ``m_1 = x_1``,
``m_j = m_(j-1) + relu(x_j - m_(j-1))``: ``k - 1`` ReLUs per output. Each ``x_j`` is read by a depthwise
convolution with a one-hot kernel (tap ``j`` of the window, the pooling's stride), so the rewritten network is a
graph of convolutions, residual sums and ReLUs that every bound method and the exact LP leaves already handle.
In floating point the rewrite rounds where ``max`` does not; the rounding tolerance computed on the rewritten
network covers that, so it is conservative for the original (whose counterexamples are checked on the original).
"""
from __future__ import annotations

import copy
from typing import Dict, Optional, Tuple

import torch
from torch import nn

from .layers import BoundGraph


class ReluMax(nn.Module):
    """``nn.MaxPool2d(kernel, stride)`` (no padding) on ``channels`` channels as taps and ReLUs (module doc)."""

    def __init__(self, pool: nn.MaxPool2d, channels: int, dtype: torch.dtype) -> None:
        super().__init__()
        pair = nn.modules.utils._pair
        kh, kw = pair(pool.kernel_size)
        stride = pair(pool.stride if pool.stride is not None else pool.kernel_size)
        self.taps = nn.ModuleList()
        for i in range(kh):
            for j in range(kw):
                tap = nn.Conv2d(channels, channels, (kh, kw), stride, groups=channels, bias=False).to(dtype)
                with torch.no_grad():
                    tap.weight.zero_()
                    tap.weight[:, 0, i, j] = 1.0
                tap.weight.requires_grad_(False)
                self.taps.append(tap)
        self.relus = nn.ModuleList(nn.ReLU() for _ in range(kh * kw - 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.taps[0](x)
        for tap, relu in zip(self.taps[1:], self.relus):
            m = m + relu(tap(x) - m)
        return m


def refusal(model: nn.Module) -> Optional[str]:
    """Why :func:`relu_form` cannot rewrite ``model``'s max pooling (None when it can)."""
    pair = nn.modules.utils._pair
    for name, module in model.named_modules():
        if isinstance(module, nn.MaxPool2d) and (any(pair(module.padding)) or module.ceil_mode or
                                                 pair(module.dilation) != (1, 1)):
            return (f"branch and bound rewrites max pooling as ReLUs only without padding, ceil mode or dilation "
                    f"({name}: {module})")
    return None


def _pool_channels(model: nn.Module, in_shape: Tuple[int, ...], dtype: torch.dtype,
                   device: torch.device) -> Dict[nn.Module, int]:
    """Input channels of every max pooling module, read by hooks on one forward pass."""
    seen: Dict[nn.Module, int] = {}
    pools = {module for module in model.modules() if isinstance(module, nn.MaxPool2d)}

    def hook(module, inputs):
        channels = int(inputs[0].shape[1])
        if seen.setdefault(module, channels) != channels:
            raise ValueError(f"{module} pools maps of {seen[module]} and {channels} channels")

    handles = [module.register_forward_pre_hook(hook) for module in pools]
    try:
        with torch.no_grad():
            model(torch.zeros((1,) + tuple(in_shape), dtype=dtype, device=device))
    finally:
        for handle in handles:
            handle.remove()
    return seen


def relu_form(model: nn.Module, in_shape: Tuple[int, ...]) -> BoundGraph:
    """A copy of ``model`` (a module or BoundGraph) with every ``nn.MaxPool2d`` replaced by a :class:`ReluMax`
    wherever it is registered (a module may be registered under several names); ``model`` itself, as a
    BoundGraph, when it has none. ValueError if :func:`refusal` names a pooling, or if any max pooling is left
    in the rewritten graph (branch and bound's leaves would not be affine)."""
    net = model.net if isinstance(model, BoundGraph) else model
    if not any(isinstance(m, nn.MaxPool2d) for m in net.modules()):
        return model if isinstance(model, BoundGraph) else BoundGraph(model)
    reason = refusal(net)
    if reason:
        raise ValueError(reason)
    param = next(iter(net.parameters()), torch.zeros(()))
    channels = _pool_channels(net, in_shape, param.dtype, param.device)
    memo: Dict[int, nn.Module] = {}
    net = copy.deepcopy(net, memo)
    swap = {memo[id(pool)]: ReluMax(pool, count, param.dtype).to(param.device) for pool, count in channels.items()}
    for owner in list(net.modules()):
        for child_name, child in list(owner._modules.items()):
            if child in swap:
                owner._modules[child_name] = swap[child]
    graph = BoundGraph(net)
    left = [name for name, module, _ in graph.operations if isinstance(module, nn.MaxPool2d)]
    if left:
        raise ValueError(f"max pooling left after the ReLU rewrite ({', '.join(left)}): branch and bound refuses")
    return graph
