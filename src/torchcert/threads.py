"""How many CPU threads PyTorch uses: ``--threads N``, else as many as the machine has idle cores (at least one).

Measured on this project's 2-core machine (README, "Threads"): on idle cores two threads train a small MNIST CNN
1.7x faster than one; with one core busy with another process, PyTorch's default of one thread per core made the
same epoch 4x slower than one thread (each parallel region waits for the thread that shares a core). So the
default counts the cores that are idle right now (``/proc/stat`` sampled for a fifth of a second; the load average
where that is missing) and uses that many threads, erring towards fewer.
"""
from __future__ import annotations

import logging
import math
import os
import time
from typing import Callable, List, Optional

import torch

LOG = logging.getLogger(__name__)


def _cpu_times() -> Optional[List[int]]:
    """Aggregate ``cpu`` line of ``/proc/stat`` (user, nice, system, idle, iowait, ...), or None."""
    try:
        with open("/proc/stat") as handle:
            fields = handle.readline().split()
    except OSError:
        return None
    return [int(v) for v in fields[1:]] if fields and fields[0] == "cpu" else None


def busy_cores(sample: float = 0.2, clock: Callable[[float], None] = time.sleep) -> float:
    """Cores kept busy by other processes: measured over ``sample`` seconds, else the 1-minute load average."""
    cores = len(os.sched_getaffinity(0))
    first = _cpu_times()
    if first is not None:
        clock(sample)
        second = _cpu_times()
        delta = [b - a for a, b in zip(first, second)] if second else []
        total = sum(delta)
        if total > 0:
            idle = delta[3] + (delta[4] if len(delta) > 4 else 0)
            return (1 - idle / total) * os.cpu_count() if os.cpu_count() else 0.0
    return min(os.getloadavg()[0], cores)


def default_threads(cores: Optional[int] = None, busy: Optional[float] = None) -> int:
    """``floor(cores - busy + 0.2)``, at least 1: all cores when idle, one fewer per (mostly) busy core."""
    cores = cores if cores is not None else len(os.sched_getaffinity(0))
    busy = busy if busy is not None else busy_cores()
    return max(1, min(cores, math.floor(cores - busy + 0.2)))


def apply_threads(threads: Optional[int]) -> int:
    """Set ``torch.set_num_threads`` to ``threads`` (or :func:`default_threads`); returns the number used."""
    chosen = threads if threads is not None else default_threads()
    if chosen < 1:
        raise ValueError(f"--threads must be >= 1, got {chosen}")
    if chosen != torch.get_num_threads():
        torch.set_num_threads(chosen)
    LOG.info("using %d CPU thread(s)%s", chosen, "" if threads is not None else
             " (idle cores now; --threads N to choose)")
    return chosen
