"""Independent chunks of a bound computation on worker threads, one intra-op thread each.

PyTorch splits one operation over its intra-op threads; the many small and elementwise operations of a
back-substitution chunk scale badly that way (CNN7 full CROWN: 1.74x on 2 cores). Whole chunks on
separate threads scale like independent jobs, and the GIL is released inside every tensor operation.
Used on the CPU only, and only when more than one intra-op thread is configured; the caller's
intra-op thread count and its grad mode (both thread-local state) are carried over and restored.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable, List, Sequence, TypeVar

import torch

T = TypeVar("T")
R = TypeVar("R")


def worker_count(device: torch.device, tasks: int) -> int:
    """Threads to use for ``tasks`` chunks on ``device``: the intra-op thread count on the CPU, else 1."""
    if device.type != "cpu" or tasks < 2:
        return 1
    return min(torch.get_num_threads(), tasks)


def map_chunks(fn: Callable[[T], R], items: Sequence[T], device: torch.device) -> List[R]:
    """``[fn(item) for item in items]``, on :func:`worker_count` threads of one intra-op thread each."""
    workers = worker_count(device, len(items))
    if workers <= 1:
        return [fn(item) for item in items]
    grad = torch.is_grad_enabled()
    previous = torch.get_num_threads()

    def run(item: T) -> R:
        torch.set_num_threads(1)  # this thread's OpenMP team; the caller's is restored below
        with torch.set_grad_enabled(grad):
            return fn(item)

    try:
        with ThreadPoolExecutor(workers, thread_name_prefix="torchcert-bounds") as pool:
            return list(pool.map(run, items))
    finally:
        torch.set_num_threads(previous)
