"""Chunks on worker threads: same results as in order, the caller's thread count and grad mode kept."""
from __future__ import annotations

import torch

from nets import conv_net, random_box
from torchcert.bounds import crown
from torchcert.bounds.workers import map_chunks, worker_count


def test_map_chunks_keeps_order_grad_mode_and_thread_count():
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen = []

        def work(i: int):
            seen.append((torch.get_num_threads(), torch.is_grad_enabled()))
            return i * i

        with torch.no_grad():
            assert map_chunks(work, list(range(7)), torch.device("cpu")) == [i * i for i in range(7)]
        assert all(s == (1, False) for s in seen), seen  # one intra-op thread each, caller's grad mode
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)


def test_worker_count_cpu_only_and_capped_by_tasks():
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert worker_count(torch.device("cpu"), 5) == 2
        assert worker_count(torch.device("cpu"), 1) == 1
        assert worker_count(torch.device("cuda"), 5) == 1
        torch.set_num_threads(1)
        assert worker_count(torch.device("cpu"), 5) == 1
    finally:
        torch.set_num_threads(previous)


def test_crown_same_bounds_with_worker_threads():
    model, box = conv_net(5, bn=True), random_box(5, (3, 2, 6, 6), 0.3)
    C = torch.randn(3, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    previous = torch.get_num_threads()
    try:
        out = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            with torch.no_grad():
                out.append(crown(model, box, C, neurons="all", bound_upper=True, chunk=2))
    finally:
        torch.set_num_threads(previous)
    torch.testing.assert_close(out[0].lower, out[1].lower, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out[0].upper, out[1].upper, rtol=1e-12, atol=1e-12)
