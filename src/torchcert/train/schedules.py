"""Schedules as pure functions of the step: ε (auto_LiRPA's SmoothedScheduler) and the learning rate (MultiStepLR).

Because they hold no state, resuming a run needs only the global batch step and the epoch.
"""
from __future__ import annotations

from typing import Sequence


def smoothed_eps(step: int, max_eps: float, epoch_length: int, start: int, length: int,
                 mid: float = 0.25, beta: float = 4.0) -> float:
    """ε at 0-based global batch ``step`` (never reset between epochs) of the smoothed ramp.

    With ``init = (start-1)·L``, ``final = (start+length-1)·L`` (L = batches per epoch), ``m = init +
    int((final-init)·mid)``, ``t = (m-init)^(β-1)``, ``α = ε_max / ((final-m)·β·t + (m-init)·t)``:
    ε = 0 for step <= init, ``α·(step-init)^β`` up to m, then linear to ε_max at ``final`` and constant after.
    The polynomial and the line meet at m with the same slope. The arithmetic follows auto_LiRPA's order, so the
    values are bit-identical. (When ``m == init``, where the original divides by zero, the ramp is linear.)
    """
    _check_schedule(max_eps, epoch_length, start, length, mid, beta)
    init = (start - 1) * epoch_length
    final = (start + length - 1) * epoch_length
    mid_step = int((final - init) * mid) + init
    if step <= init:
        return 0.0
    if mid_step == init:
        return min(max_eps * (step - init) / (final - init), max_eps)
    t = (mid_step - init) ** (beta - 1.0)
    alpha = max_eps / ((final - mid_step) * beta * t + (mid_step - init) * t)
    if step < mid_step:
        return 0.0 + alpha * float(step - init) ** beta
    mid_value = 0.0 + alpha * (mid_step - init) ** beta
    if final == mid_step:
        return max_eps
    return min(mid_value + (max_eps - mid_value) * (step - mid_step) / (final - mid_step), max_eps)


def _check_schedule(max_eps: float, epoch_length: int, start: int, length: int, mid: float, beta: float) -> None:
    if epoch_length < 1:
        raise ValueError(f"epoch_length must be >= 1, got {epoch_length}")
    if start < 1 or length < 1:
        raise ValueError(f"the ε ramp needs start >= 1 and length >= 1 (epochs), got start={start}, length={length}")
    if not 0.0 <= mid <= 1.0 or beta < 2.0:
        raise ValueError(f"the ε ramp needs 0 <= mid <= 1 and beta >= 2, got mid={mid}, beta={beta}")
    if max_eps < 0:
        raise ValueError(f"max_eps must be >= 0, got {max_eps}")


def multistep_lr(base_lr: float, epoch: int, milestones: Sequence[int], factor: float) -> float:
    """Learning rate of 1-based ``epoch`` under MultiStepLR stepped once after every epoch.

    Epoch ``t`` has seen ``t - 1`` scheduler steps, so the rate is multiplied by ``factor`` once for every
    milestone ``m <= t - 1`` (repeated multiplication, as PyTorch does).
    """
    lr = base_lr
    for milestone in sorted(milestones):
        if milestone <= epoch - 1:
            lr = lr * factor
    return lr


def is_reg_epoch(epoch: int, reg_epochs: int) -> bool:
    """Whether the Shi et al. warm-up regulariser is on in 1-based ``epoch`` (on for epochs 1..reg_epochs)."""
    return epoch <= reg_epochs
