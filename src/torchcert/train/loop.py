"""One training step and one evaluation pass, written top to bottom in the original code's order.

Training micro-batch (network in train mode unless stated):

    1. clean forward                      -> natural logits, CE          (BatchNorm: clean batch statistics)
    2. PGD on the attack box, eval mode   -> x_adv                        (BatchNorm: running statistics)
    3. adversarial forward                -> adversarial logits, CE       (BatchNorm: adversarial statistics)
    4. bounds over the box (or SABR's small box) with the BatchNorm statistics of the latest forward (3, or 1
       without attack), gradients flowing through them  -> margin lower bounds, IBP loss
    5. loss = [Shi regulariser] + [L1] + method loss (natural CE while ε is 0)

then backward (divided by the accumulation count), gradient-norm clipping and one optimiser step.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torchcert.attacks import eval_mode, per_example_ce, pgd
from torchcert.bounds import Box, capture_bn_stats, ibp, ibp_with_relu_inputs, input_box, margin_matrix
from torchcert.losses import LossTerms, TrainingLoss, ibp_loss, l1_penalty, margins, sabr_box
from torchcert.train.distributed import World, gatherer, global_batchnorm, maybe, rows
from torchcert.train.regularisers import reg_intensity, shi_regulariser

NATURAL_EPS = 1e-50  # below this training ε a batch is trained naturally (the original's rule)
#: maps this rank's rows (n_r, ...) to the whole micro-batch's (N, ...); the identity in one process
Gather = Callable[[Tensor], Tensor]


def _same(t: Tensor) -> Tensor:
    return t


@dataclass(frozen=True)
class StepSettings:
    """Everything a step needs besides the batch; built once from the config (see ``run.py``)."""

    loss: TrainingLoss
    coeff: float
    l1_coeff: float
    bounding: str
    num_class: int
    std: Tensor
    data_min: Tensor
    data_max: Tensor
    attack_steps: int
    attack_step_size: Optional[float]
    reg_weight: float = 0.0
    reg_tol: float = 0.5
    reg_objectives: Tuple[str, ...] = ("relu", "tightness")
    reg_min_eps: float = 1e-6
    reg_decay: bool = True
    grad_acc_steps: int = 1
    grad_clip: float = 10.0


@dataclass(frozen=True)
class BatchEps:
    """ε of one batch: ``eps`` of the bound box and ``attack_eps`` of the attack box (pixel units),
    ``scheduled`` (the ramp value, before train_mul) and ``max_eps`` for the regulariser, ``reg`` (on/off)."""

    eps: float
    attack_eps: float
    scheduled: float
    max_eps: float
    reg: bool = False

    @property
    def robust(self) -> bool:
        return self.eps >= NATURAL_EPS


class Meter:
    """Batch-size weighted running means of detached scalars (synchronises only when read)."""

    def __init__(self) -> None:
        self.sums: Dict[str, Tensor] = {}
        self.counts: Dict[str, int] = {}

    def update(self, name: str, value: Tensor | float, n: int) -> None:
        value = value.detach().float() if isinstance(value, Tensor) else torch.tensor(float(value))
        self.sums[name] = self.sums.get(name, 0.0) + value * n
        self.counts[name] = self.counts.get(name, 0) + n

    def mean(self, name: str) -> float:
        return float(self.sums[name] / self.counts[name]) if name in self.counts else float("nan")

    def means(self) -> Dict[str, float]:
        return {name: self.mean(name) for name in self.sums}


def _box(x: Tensor, eps: float, s: StepSettings) -> Box:
    return input_box(x, eps, None, s.std, s.data_min, s.data_max)


def _eps_with_floor(eps: float, b: BatchEps, s: StepSettings) -> float:
    """The original's ``eps_handling``: a natural batch with the regulariser on uses at least ``min_eps_reg``."""
    return eps if (b.robust or not b.reg) else max(eps, s.reg_min_eps)


def _bounds(model: nn.Module, box: Box, C: Tensor, bn_stats: Optional[dict], s: StepSettings,
            with_relu_inputs: bool) -> Tuple[Tensor, Optional[List[Box]]]:
    """Margin lower bounds (B, K-1) by IBP or CROWN-IBP, and the ReLU input boxes when asked."""
    relu_inputs = None
    if with_relu_inputs:
        out, relu_inputs = ibp_with_relu_inputs(model, box, C, bn_stats=bn_stats)
    if s.bounding == "crown-ibp":  # intermediate bounds by IBP, the last layer by back-substitution
        from torchcert.bounds.crown import crown
        return crown(model, box, C, intermediate="ibp", bn_stats=bn_stats).lower, relu_inputs
    if not with_relu_inputs:
        out = ibp(model, box, C, bn_stats=bn_stats)
    return out.lower, relu_inputs


def _attack(model: nn.Module, box: Box, labels: Tensor, steps: int, step_size: float,
            generator: Optional[torch.Generator], noise: Optional[Tensor] = None) -> Tensor:
    """PGD with the network in eval mode (BatchNorm running statistics), no parameter gradients; ``noise``: the
    start's uniform draw when the caller made it (distributed runs draw it for the global batch)."""
    with eval_mode(model), torch.no_grad():
        return pgd(model, box.lower, box.upper, per_example_ce(labels), steps, step_size, generator, noise=noise)


def _bound_terms(model: nn.Module, x: Tensor, x_adv: Optional[Tensor], attack_box: Optional[Box], C: Tensor,
                 bn_stats: dict, b: BatchEps, s: StepSettings, gather: Gather = _same
                 ) -> Tuple[Tensor, Tensor, Tensor]:
    """Margin lower bounds over the ε box (SABR: its small box) of this rank's rows, the IBP loss of the whole
    batch's bounds, and the Shi regulariser of the whole batch's boxes (or 0)."""
    box = _box(x, _eps_with_floor(b.eps, b, s), s)
    if s.loss.small_box:
        radius = _eps_with_floor(b.attack_eps * s.coeff, b, s) / s.std.view(1, -1, 1, 1)
        box = sabr_box(x_adv, attack_box, radius, s.data_min, s.data_max)
    lb, relu_inputs = _bounds(model, box, C, bn_stats, s, with_relu_inputs=b.reg)
    reg_loss = torch.zeros((), device=x.device)
    if b.reg and (s.reg_weight > 0 or s.loss.name == "ibp"):  # the original skips a zero weight except for IBP
        intensity = reg_intensity(b.scheduled, b.max_eps, s.reg_weight, s.reg_decay)
        boxes = [Box(gather(r.lower), gather(r.upper)) for r in [box, *relu_inputs]]
        reg_loss = shi_regulariser(boxes[0], boxes[1:], s.reg_tol, s.reg_objectives, intensity)
    lb_all = gather(lb)
    return lb_all, ibp_loss(lb_all), reg_loss


def micro_step(model: nn.Module, x: Tensor, labels: Tensor, b: BatchEps, s: StepSettings, meter: Meter,
               generator: Optional[torch.Generator] = None, noise: Optional[Tensor] = None,
               inner: Optional[nn.Module] = None, bn_sync: Optional[dict] = None, gather: Gather = _same,
               all_labels: Optional[Tensor] = None) -> Tensor:
    """Forward part of a training step on one micro-batch (model in train mode); returns the loss.

    Distributed runs (see :mod:`.distributed`): ``x``/``labels`` are this rank's rows and ``all_labels`` the
    micro-batch's; ``model`` is the DistributedDataParallel wrapper of ``inner``, which the attack and the bounds
    use directly (their gradients reach the same parameters within the wrapped forward/backward); ``noise`` is
    this rank's rows of PGD's start draw; ``bn_sync`` holds the global BatchNorm statistics of the latest
    forward, which then replace the captured local ones. Per-sample outputs (logits, margin bounds, the
    regulariser's boxes) are gathered by ``gather`` and every loss is computed on the whole micro-batch, as one
    process computes it: each rank returns that same loss."""
    inner = model if inner is None else inner
    all_labels = labels if all_labels is None else all_labels
    n = x.shape[0]
    # The clean logits enter the loss only in natural batches or, without attack, as the adversarial stand-in
    # (then the bounds also use the clean forward's BatchNorm statistics).
    with torch.set_grad_enabled(not b.robust or s.attack_steps == 0):
        if s.attack_steps > 0:
            logits = model(x)
        else:
            with capture_bn_stats(model) as bn_stats:
                logits = model(x)
    logits = gather(logits)
    nat_loss = F.cross_entropy(logits, all_labels)
    adv_logits, x_adv, attack_box = logits, None, None
    if s.attack_steps > 0:
        attack_box = _box(x, _eps_with_floor(b.attack_eps, b, s), s)
        x_adv = _attack(inner, attack_box, labels, s.attack_steps, s.attack_step_size, generator, noise)
        with capture_bn_stats(model) as bn_stats:
            adv_logits = gather(model(x_adv))
    if bn_sync is not None:  # the latest forward's global statistics instead of this rank's
        bn_stats = {m: bn_sync[m] for m in bn_stats}
    adv_loss = F.cross_entropy(adv_logits, all_labels)
    _log_outputs(meter, n, all_labels, nat_loss, logits, adv_loss, adv_logits)

    loss = torch.zeros((), device=x.device)
    C_all = margin_matrix(all_labels, s.num_class).to(x.dtype)
    if b.robust or b.reg:
        C = C_all if all_labels is labels else margin_matrix(labels, s.num_class).to(x.dtype)
        lb, robust_loss, reg_loss = _bound_terms(inner, x, x_adv, attack_box, C, bn_stats, b, s, gather)
        _log_bounds(meter, n, lb, robust_loss)
        loss = loss + reg_loss
    if s.loss.name != "ibp":  # the original adds no L1 term to plain IBP training
        loss = loss + s.l1_coeff * l1_penalty(inner)
    if b.robust:
        terms = LossTerms(lb, margins(C_all, adv_logits), robust_loss, adv_loss)
        loss = loss + s.loss.combine(terms, s.coeff)
    else:
        loss = loss + nat_loss
    meter.update("loss", loss, n)
    return loss


def _log_outputs(meter: Meter, n: int, labels: Tensor, nat_loss: Tensor, logits: Tensor, adv_loss: Tensor,
                 adv_logits: Tensor) -> None:
    meter.update("nat_loss", nat_loss, n)
    meter.update("nat_acc", (logits.argmax(1) == labels).float().mean(), n)
    meter.update("adv_loss", adv_loss, n)
    meter.update("adv_acc", (adv_logits.argmax(1) == labels).float().mean(), n)


def _log_bounds(meter: Meter, n: int, lb: Tensor, robust_loss: Tensor) -> None:
    verified = (lb >= 0).all(dim=1).float().mean()
    meter.update("ver_loss", robust_loss, n)
    meter.update("ver_acc", torch.where(torch.isnan(robust_loss), torch.zeros_like(verified), verified), n)


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: Tensor, labels: Tensor, b: BatchEps,
               s: StepSettings, meter: Meter, generator: Optional[torch.Generator] = None,
               world: World = World(), ddp: Optional[nn.Module] = None, sync_bn: bool = False) -> None:
    """One optimiser step on a batch, split into ``grad_acc_steps`` micro-batches; metrics go to ``meter``.

    Distributed: ``x``/``labels`` are the global batch; each micro-batch is split over the ranks (:func:`rows`),
    ``ddp`` (the DistributedDataParallel wrapper of ``model``) runs the forwards, every rank computes the loss of
    the whole micro-batch from the gathered per-sample outputs (whose backward sums the ranks' gradients, W times
    the gradient of the rows each rank computed; DDP's average divides by W), and gradients are all-reduced once
    per step (``no_sync`` for the other micro-batches); ``sync_bn``: BatchNorm statistics of the global
    micro-batch. One process: ``world`` of size 1, as before.
    """
    parts = list(zip(x.tensor_split(s.grad_acc_steps), labels.tensor_split(s.grad_acc_steps)))
    for k, (x_part, y_part) in enumerate(parts):
        noise = None
        if world.distributed and s.attack_steps > 0:  # the start draw of the whole micro-batch, as one process
            noise = rows(torch.zeros_like(x_part).uniform_(generator=generator), world)
        skip_sync = ddp is not None and k < len(parts) - 1
        with (ddp.no_sync() if skip_sync else nullcontext()), \
                maybe(sync_bn and world.distributed, global_batchnorm(model)) as bn_sync:
            loss = micro_step(ddp or model, rows(x_part, world), rows(y_part, world), b, s, meter, generator, noise,
                              model, bn_sync, gatherer(world, y_part.shape[0]), y_part)
            (loss / s.grad_acc_steps).backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=s.grad_clip)
    meter.update("grad_norm", grad_norm, 1)
    optimizer.step()
    optimizer.zero_grad()


@torch.no_grad()
def eval_step(model: nn.Module, x: Tensor, labels: Tensor, eps: float, s: StepSettings, meter: Meter,
              attack_steps: int, attack_step_size: Optional[float],
              generator: Optional[torch.Generator] = None, noise: Optional[Tensor] = None) -> None:
    """Evaluation on a batch at ``eps`` (model in eval mode): natural, PGD and IBP-verified accuracy and loss
    (``noise``: PGD's start draw, when the caller made it)."""
    logits = model(x)
    box = _box(x, eps, s)
    adv_logits = logits
    if attack_steps > 0:
        adv_logits = model(_attack(model, box, labels, attack_steps, attack_step_size, generator, noise))
    n = x.shape[0]
    _log_outputs(meter, n, labels, F.cross_entropy(logits, labels), logits,
                 F.cross_entropy(adv_logits, labels), adv_logits)
    lb = ibp(model, box, margin_matrix(labels, s.num_class).to(x.dtype)).lower
    _log_bounds(meter, n, lb, ibp_loss(lb))


def summarise(meter: Meter, keys: Sequence[str] = ("nat_acc", "adv_acc", "ver_acc", "nat_loss", "adv_loss",
                                                   "ver_loss", "loss", "grad_norm")) -> Dict[str, float]:
    """Means of the standard metrics present in ``meter``."""
    return {k: meter.mean(k) for k in keys if k in meter.counts}
