"""Capturing BatchNorm batch statistics of a forward pass (train-mode bound semantics)."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Dict, Iterator, Tuple

from torch import Tensor, nn

#: module -> (batch mean, biased batch variance), each of shape ``(channels,)``
BNStats = Dict[nn.Module, Tuple[Tensor, Tensor]]

_BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d)


def _reduce_dims(x: Tensor) -> Tuple[int, ...]:
    """All dimensions but the channel dimension 1."""
    return (0,) + tuple(range(2, x.dim()))


@contextmanager
def capture_bn_stats(model: nn.Module) -> Iterator[BNStats]:
    """Record, for every BatchNorm in train mode, the statistics of its input during forwards.

    ``with capture_bn_stats(model) as stats: model(x_adv)`` fills ``stats[bn] = (mean, var)`` with the
    batch mean and BIASED variance over ``(N, H, W)`` (``N`` for BatchNorm1d) of the latest forward,
    keeping the autograd graph, so that ``ibp(model, box, C, bn_stats=stats)`` normalises exactly as
    that forward did and gradients flow through the statistics.
    """
    stats: BNStats = {}

    def hook(module: nn.Module, inputs: Tuple[Tensor, ...]) -> None:
        if module.training:
            x = inputs[0]
            dims = _reduce_dims(x)
            stats[module] = (x.mean(dims), x.var(dims, unbiased=False))

    handles = [m.register_forward_pre_hook(hook) for m in model.modules() if isinstance(m, _BN_TYPES)]
    try:
        yield stats
    finally:
        for handle in handles:
            handle.remove()
