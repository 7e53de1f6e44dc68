"""Benchmark of torchcert.bounds: median time of forward, IBP, CROWN-IBP, CROWN and alpha-CROWN.

    PYTHONPATH=src python benchmarks/bounds.py            # full table (CNN7 CROWN takes minutes)
    PYTHONPATH=src python benchmarks/bounds.py --quick    # batch 1/32 only, no CNN7 CROWN / alpha

Models have random (untrained) weights, BatchNorm in eval mode; inputs uniform in [0, 1], normalised;
eps in pixel units (MNIST 0.1, CIFAR 2/255 by default).
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable, Dict, List

import torch
from torch import nn

from torchcert.bounds import Box, alpha_crown, crown, ibp, input_box, margin_matrix

CIFAR = ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))


def cnn_7layer_bn2(in_ch: int, in_dim: int, width: int = 64, linear_size: int = 512) -> nn.Sequential:
    w = width
    convs = [(in_ch, w, 1), (w, w, 1), (w, 2 * w, 2), (2 * w, 2 * w, 1), (2 * w, 2 * w, 1)]
    layers: List[nn.Module] = []
    for cin, cout, stride in convs:
        layers += [nn.Conv2d(cin, cout, 3, stride, 1), nn.BatchNorm2d(cout), nn.ReLU()]
    layers += [nn.Flatten(), nn.Linear(2 * w * (in_dim // 2) ** 2, linear_size), nn.BatchNorm1d(linear_size),
               nn.ReLU(), nn.Linear(linear_size, 10)]
    return nn.Sequential(*layers).eval()


def small_cnn() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(1, 16, 4, 2, 1), nn.ReLU(), nn.Conv2d(16, 32, 4, 2, 1), nn.ReLU(),
                         nn.Flatten(), nn.Linear(1568, 100), nn.ReLU(), nn.Linear(100, 10)).eval()


def median_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    if repeats > 1:
        fn()  # warm-up
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def make_box(shape, batch: int, eps: float) -> Box:
    channels = shape[0]
    mean, std = (torch.tensor(CIFAR[0]), torch.tensor(CIFAR[1])) if channels == 3 else (torch.zeros(1), torch.ones(1))
    x01 = torch.rand((batch,) + tuple(shape))
    x = (x01 - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)
    lo, hi = ((0 - mean) / std).view(1, -1, 1, 1), ((1 - mean) / std).view(1, -1, 1, 1)
    return input_box(x, eps, mean, std, lo, hi)


def run_case(name: str, model: nn.Module, shape, eps: float, batch: int, args) -> Dict[str, float]:
    box = make_box(shape, batch, eps)
    C = margin_matrix(torch.randint(0, 10, (batch,)), 10)
    heavy = batch in args.crown_batches and (name == "small" or not args.quick)
    row: Dict[str, float] = {}
    with torch.no_grad():
        row["forward"] = median_time(lambda: model(box.center), args.repeats)
        row["ibp"] = median_time(lambda: ibp(model, box, C), args.repeats)
        row["crown_ibp"] = median_time(lambda: crown(model, box, C, intermediate="ibp"), args.repeats)
        if heavy:
            reps = 1 if name.startswith("cnn7") else args.repeats
            row["crown"] = median_time(lambda: crown(model, box, C), reps)
            row["alpha"] = median_time(lambda: alpha_crown(model, box, C, iterations=args.alpha_iters), reps)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="batches 1 and 32; no CNN7 CROWN/alpha-CROWN")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32, 128])
    parser.add_argument("--crown-batches", type=int, nargs="+", default=[1])
    parser.add_argument("--models", nargs="+", default=["small", "cnn7-mnist", "cnn7-cifar"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--alpha-iters", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.batches = [b for b in args.batches if b <= 32]
    torch.manual_seed(0)
    specs = {"small": (small_cnn(), (1, 28, 28), 0.1), "cnn7-mnist": (cnn_7layer_bn2(1, 28), (1, 28, 28), 0.1),
             "cnn7-cifar": (cnn_7layer_bn2(3, 32), (3, 32, 32), 2 / 255)}
    cols = ["forward", "ibp", "crown_ibp", "crown", "alpha"]
    print(f"{'model':<11} {'batch':>5} " + " ".join(f"{c + ' s':>11}" for c in cols) + f" {'ibp/fwd':>8}")
    for name in args.models:
        model, shape, eps = specs[name]
        for batch in args.batches:
            row = run_case(name, model, shape, eps, batch, args)
            cells = " ".join(f"{row[c]:>11.4f}" if c in row else f"{'-':>11}" for c in cols)
            print(f"{name:<11} {batch:>5} {cells} {row['ibp'] / row['forward']:>8.2f}", flush=True)


if __name__ == "__main__":
    main()
