"""Training on several processes (``torchrun``): who this process is, its rows of each batch, global BatchNorm.

Every rank draws the same permutation, augmentation and PGD starts (same seeds) for the *global* batch and keeps
its rows (:func:`rows`: contiguous, ``tensor_split`` sizes) for the forward passes, attacks and bounds; the
per-sample outputs are gathered (:func:`gatherer`) and every loss is computed on the whole batch, exactly as one
process computes it (so losses that are not means over samples, like the Shi regulariser or Exp-IBP's product of
means, need no special case); DistributedDataParallel's gradient average then equals one process's gradient.

BatchNorm with ``run.sync_bn`` (the default): the statistics of the global batch, in the forward pass and in the
bounds, combined from the ranks' local statistics (differentiable all-reduce) by the parallel-variance formula::

    mean = Σ_r n_r·mean_r / N        var = Σ_r n_r·(var_r + (mean_r - mean)²) / N      (biased, as BatchNorm)

so one process and N processes compute the same thing (to float rounding): the original code's semantics (the
statistics of the latest forward over the batch). Without it each rank normalises by its own rows' statistics
(no communication per layer; the running statistics are rank 0's, broadcast by DDP).
"""
from __future__ import annotations

import types
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, Optional, Tuple

import torch
from torch import Tensor, nn

from torchcert.bounds.bn import _BN_TYPES, _reduce_dims


@dataclass(frozen=True)
class World:
    """This process's ``rank`` among ``size`` processes (``local_rank`` on its node)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes logs, checkpoints and summaries."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def rows(t: Tensor, world: World) -> Tensor:
    """This rank's contiguous rows of a global batch ``t (N, ...)`` (``tensor_split`` into ``world.size``)."""
    return t if not world.distributed else t.tensor_split(world.size)[world.rank]


def gatherer(world: World, total: int) -> Callable[[Tensor], Tensor]:
    """A function mapping this rank's rows ``(n_r, ...)`` of a ``total``-row batch to the whole batch
    ``(total, ...)`` in rank order, differentiably (the identity in one process). Its backward sums over the ranks
    the gradients every rank's loss sends to each row: W identical losses give W times a row's gradient, which
    DistributedDataParallel's average over the W ranks divides back."""
    if not world.distributed:
        return lambda t: t
    from torch.distributed.nn.functional import all_gather

    sizes = [len(part) for part in torch.arange(total).tensor_split(world.size)]
    widest = max(sizes)

    def gather(t: Tensor) -> Tensor:
        pad = widest - t.shape[0]
        padded = torch.cat([t, t.new_zeros((pad, *t.shape[1:]))]) if pad else t
        return torch.cat([part[:n] for part, n in zip(all_gather(padded.contiguous()), sizes)])
    return gather


def _all_reduce(t: Tensor) -> Tensor:
    """Differentiable sum over ranks (the backward sums the gradients too)."""
    from torch.distributed.nn.functional import all_reduce

    return all_reduce(t)


def global_stats(mean: Tensor, var: Tensor, count: int) -> Tuple[Tensor, Tensor, float]:
    """Combine this rank's per-channel ``mean`` and biased ``var`` (C,) over ``count`` values into the global
    ones; returns ``(mean, var, N)`` (N: the values over all ranks)."""
    n = torch.tensor(float(count), dtype=mean.dtype, device=mean.device)
    total = _all_reduce(n.detach().clone())
    g_mean = _all_reduce(mean * n) / total
    g_var = _all_reduce(n * (var + (mean - g_mean) ** 2)) / total
    return g_mean, g_var, float(total)


#: module -> (global batch mean, biased global variance) of its latest training forward, autograd graph kept
GlobalStats = Dict[nn.Module, Tuple[Tensor, Tensor]]


@contextmanager
def global_batchnorm(model: nn.Module) -> Iterator[GlobalStats]:
    """Inside the block, every BatchNorm of ``model`` in training mode normalises by the global batch statistics
    (module docstring) and records them in the yielded dict (the bounds use them as ``bn_stats``). Each
    module's ``forward`` is replaced on the instance (its type, which the bounds' rule table matches, is kept)
    and restored on exit."""
    latest: GlobalStats = {}
    modules = [m for m in model.modules() if isinstance(m, _BN_TYPES)]
    for m in modules:
        m.forward = types.MethodType(_global_forward(type(m).forward, latest), m)
    try:
        yield latest
    finally:
        for m in modules:
            del m.forward


def _global_forward(original, latest: GlobalStats):
    def forward(module: nn.modules.batchnorm._BatchNorm, x: Tensor) -> Tensor:
        if not module.training:
            return original(module, x)
        dims = _reduce_dims(x)
        mean, var, total = global_stats(x.mean(dims), x.var(dims, unbiased=False), x.numel() // x.shape[1])
        latest[module] = (mean, var)
        if module.track_running_stats and module.running_mean is not None:
            _update_running(module, mean.detach(), var.detach(), total)
        return normalise(x, mean, var, module)
    return forward


def normalise(x: Tensor, mean: Tensor, var: Tensor, module: nn.modules.batchnorm._BatchNorm) -> Tensor:
    """``(x - mean)/sqrt(var + eps)·weight + bias`` per channel (dimension 1)."""
    shape = (1, -1) + (1,) * (x.dim() - 2)
    scale = torch.rsqrt(var + module.eps)
    if module.affine:
        scale = scale * module.weight
    y = (x - mean.view(shape)) * scale.view(shape)
    return y + module.bias.view(shape) if module.affine else y


def _update_running(module: nn.modules.batchnorm._BatchNorm, mean: Tensor, var: Tensor, total: float) -> None:
    """As ``nn.BatchNorm`` in training: ``running = (1 - m)·running + m·batch`` with the unbiased variance
    (``m = 1/num_batches`` when ``momentum`` is None)."""
    with torch.no_grad():
        module.num_batches_tracked.add_(1)
        momentum = module.momentum if module.momentum is not None else 1.0 / float(module.num_batches_tracked)
        module.running_mean.mul_(1 - momentum).add_(momentum * mean)
        module.running_var.mul_(1 - momentum).add_(momentum * var * total / max(total - 1, 1))


@contextmanager
def maybe(condition: bool, manager) -> Iterator[Optional[object]]:
    """``with manager`` when ``condition``, else a block that yields None."""
    if condition:
        with manager as value:
            yield value
    else:
        yield None


def reduce_meter(sums: Dict[str, Tensor], counts: Dict[str, int], world: World) -> Tuple[Dict[str, Tensor],
                                                                                        Dict[str, int]]:
    """Sum a metric meter's weighted sums and counts over the ranks (same keys on every rank)."""
    if not world.distributed:
        return sums, counts
    import torch.distributed as dist

    keys = sorted(sums)
    packed = torch.tensor([float(sums[k]) for k in keys] + [float(counts[k]) for k in keys], dtype=torch.float64)
    device = next(iter(sums.values())).device if sums and isinstance(next(iter(sums.values())), Tensor) else "cpu"
    packed = packed.to(device)
    dist.all_reduce(packed)
    n = len(keys)
    return ({k: packed[i].float() for i, k in enumerate(keys)},
            {k: int(round(float(packed[n + i]))) for i, k in enumerate(keys)})


def share_buffers(model: nn.Module, world: World) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank: with per-rank statistics they drift
    apart after the last forward of an epoch, and evaluation and the checkpoint must see rank 0's."""
    if not world.distributed:
        return
    import torch.distributed as dist

    for buffer in model.buffers():
        dist.broadcast(buffer, src=0)


def init_world(launch, device_type: str) -> World:
    """Join the process group of a torchrun launch (``launch``: rank, world, local_rank; see
    :func:`torchcert.verify.shards.launcher`): NCCL on GPUs, gloo on CPUs."""
    import torch.distributed as dist

    if device_type == "cuda":
        torch.cuda.set_device(launch.local_rank)
    dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return World(launch.rank, launch.world, launch.local_rank)


def wrap(model: nn.Module, world: World, device: torch.device) -> nn.Module:
    """``model`` in DistributedDataParallel when there are several ranks (itself otherwise)."""
    if not world.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index if device.index is not None else world.local_rank] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)
