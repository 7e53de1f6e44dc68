"""Verified accuracy reached by each verifier on the small CNN of the CC-IBP MNIST preset.

    python benchmarks/verify.py --checkpoint runs/mnist-small/ckpt_last.pt [--samples 200] [--eps 0.1 0.15]
    python benchmarks/verify.py --train-out runs/mnist-small   # trains mnist-0.1/cc-ibp-small first (slow on CPU)
    python benchmarks/verify.py --checkpoint ... --quick        # 20 samples, eps 0.1, BaB 10 s only
    python benchmarks/verify.py --throughput [--samples 1000]   # batched vs per-sample cascade, 2 shards vs 1

For each ε, on the first N MNIST test samples: natural and PGD accuracy, then the verified accuracy of IBP,
CROWN (max with IBP), α-CROWN, and branch and bound with 10 s and 60 s per sample, with the mean seconds per
sample of each cascade. BaB is deterministic for a seed, so the 60 s run re-runs only the samples that timed
out at 10 s (the others would follow the same search and finish at the same point).

``--throughput``: samples per second of ``torchcert verify --methods ibp,crown`` (clean check, PGD-40, IBP,
CROWN) on the first N MNIST test images with the small CNN and with CNN7 (untrained: seeded initialisation),
per sample (``--batch-size 1``) against batched, in one run; then the same verify as 2 torchrun processes (gloo,
one thread each) against 1 process. See :mod:`benchmarks.verify_throughput`.
"""
from __future__ import annotations

import argparse
import sys
import time

import torch

from torchcert.verify import verify_sample
from torchcert.verify.setup import build_setup

CASCADES = (("IBP", ("ibp",), None), ("CROWN", ("ibp", "crown"), None),
            ("alpha-CROWN", ("ibp", "crown", "alpha"), None),
            ("BaB 10 s", ("ibp", "crown", "alpha", "bab"), 10.0),
            ("BaB 60 s", ("ibp", "crown", "alpha", "bab"), 60.0))


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="checkpoint of mnist-0.1/cc-ibp-small (cnn_small on MNIST)")
    parser.add_argument("--train-out", help="train the preset into this folder first (when no --checkpoint)")
    parser.add_argument("--preset", default="mnist-0.1/cc-ibp-small")
    parser.add_argument("--data-dir", help="MNIST folder (default ./data/mnist)")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--eps", type=float, nargs="+", default=[0.1, 0.15])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--skip-60", action="store_true", help="leave out the 60 s BaB column")
    parser.add_argument("--quick", action="store_true", help="20 samples, eps 0.1, no 60 s BaB column")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    parser.add_argument("--throughput", action="store_true", help="batched vs per-sample, 2 shards vs 1 (no BaB)")
    parser.add_argument("--batch-size", type=int, default=250, help="--throughput: samples per batch")
    parser.add_argument("--cnn7-samples", type=int,
                        help="--throughput: samples for CNN7 (default --samples; 0 leaves CNN7 out)")
    args = parser.parse_args()
    if args.quick:
        args.samples, args.eps, args.skip_60 = min(args.samples, 20), [0.1], True
    torch.set_num_threads(args.threads)
    return args


def _checkpoint(args: argparse.Namespace) -> str:
    if args.checkpoint:
        return args.checkpoint
    if not args.train_out:
        sys.exit("pass --checkpoint PATH (a run of mnist-0.1/cc-ibp-small) or --train-out DIR to train one")
    from torchcert.config import load_config
    from torchcert.train.config import TrainConfig
    from torchcert.train.run import train

    result = train(load_config(TrainConfig, args.preset), args.train_out, data_dir=args.data_dir, device=args.device)
    return str(result.checkpoint)


def _run_cascade(setup, methods, timeout, indices, previous=None):
    """Verify each sample; with ``previous`` (the 10 s results) only the timed-out samples are re-run."""
    from torchcert.verify.verdict import bound_copy

    out, bound_model = {}, bound_copy(setup.model)
    for idx in indices:
        if previous is not None and previous[idx].status != "timeout":
            out[idx] = previous[idx]
            continue
        x, lower, upper, label = setup.sample(idx)
        gen = torch.Generator(setup.device).manual_seed(idx)
        out[idx] = verify_sample(setup.model, lower, upper, label, methods, timeout or 0.0, x=x, generator=gen,
                                 bound_model=bound_model)
    return out


def main() -> None:
    args = _arguments()
    if args.throughput:
        from verify_throughput import throughput

        cnn7 = args.samples if args.cnn7_samples is None else args.cnn7_samples
        throughput(args.data_dir or "data/mnist", args.samples, cnn7, args.batch_size, args.eps[0], args.threads,
                   args.device)
        return
    checkpoint = _checkpoint(args)
    torch.set_grad_enabled(True)
    print(f"checkpoint {checkpoint}, first {args.samples} MNIST test samples, device {args.device}")
    header = f"{'eps':>5} | {'verifier':<12} | {'verified %':>10} | {'timeouts':>8} | {'s / sample':>10}"
    rows = []
    for eps in args.eps:
        ns = argparse.Namespace(checkpoint=checkpoint, preset=args.preset, dataset=None, model=None, model_params="",
                                eps=eps, data_dir=args.data_dir, device=args.device, dtype="float32")
        setup = build_setup(ns)
        indices = range(min(args.samples, len(setup.split)))
        _run_cascade(setup, CASCADES[3][1], 1.0, range(1))  # warm-up: one-time imports and allocations
        previous = None
        for name, methods, timeout in CASCADES:
            if name == "BaB 60 s" and args.skip_60:
                continue
            start = time.perf_counter()
            results = _run_cascade(setup, methods, timeout, indices, previous if name == "BaB 60 s" else None)
            wall = time.perf_counter() - start
            if name == "BaB 10 s":
                previous = results
            values = list(results.values())
            if name == "IBP":
                nat = 100 * sum(r.clean_ok for r in values) / len(values)
                adv = 100 * sum(r.pgd_ok for r in values) / len(values)
                rows.append(f"{eps:>5g} | {'natural':<12} | {nat:>10.2f} | {'':>8} | {'':>10}")
                rows.append(f"{eps:>5g} | {'PGD-40':<12} | {adv:>10.2f} | {'':>8} | {'':>10}")
            verified = 100 * sum(r.verified for r in values) / len(values)
            timeouts = sum(r.status == "timeout" for r in values)
            seconds = sum(r.seconds for r in values) / len(values)
            rows.append(f"{eps:>5g} | {name:<12} | {verified:>10.2f} | {timeouts:>8} | {seconds:>10.3f}")
            print(rows[-1], f"(wall {wall:.1f} s)", flush=True)
    print()
    print(header)
    print("-" * len(header))
    print("\n".join(rows))


if __name__ == "__main__":
    main()
