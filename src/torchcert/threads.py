"""How many CPU threads PyTorch uses: ``--threads N``, else one.

Measured on this project's 2-core machines (README, "Threads"): with PyTorch's default of one thread per core,
training a small MNIST CNN for an epoch took 2.4x longer and verifying the digits network 36x longer than with one
thread, on an idle machine, and worse with another process busy. Only large convolutional networks (full CROWN on
CNN7) gain from more threads: there ``--threads 2`` is about 2x faster on two idle cores. So one thread is the
default and more threads are a choice.
"""
from __future__ import annotations

import logging
from typing import Optional

import torch

LOG = logging.getLogger(__name__)

#: threads used when the command line says nothing
DEFAULT_THREADS = 1


def apply_threads(threads: Optional[int]) -> int:
    """Set ``torch.set_num_threads`` to ``threads`` (or :data:`DEFAULT_THREADS`); returns the number used."""
    chosen = threads if threads is not None else DEFAULT_THREADS
    if chosen < 1:
        raise ValueError(f"--threads must be >= 1, got {chosen}")
    if chosen != torch.get_num_threads():
        torch.set_num_threads(chosen)
    LOG.debug("using %d CPU thread(s)", chosen)
    return chosen
