"""``torchcert verify``: the verification cascade of the original verify.py on a trained checkpoint.

One JSON line per sample is appended (and flushed) to ``<checkpoint stem>_verify/eps<ε>_<methods>.jsonl``
beside the checkpoint, so an interrupted run resumes where it stopped; a summary JSON and table follow.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from torchcert.verify.setup import add_model_arguments

    parser = subparsers.add_parser(
        "verify", help="verify a trained network sample by sample (PGD, IBP, CROWN, alpha-CROWN, branch and bound)",
        description="Per sample: natural prediction, PGD, IBP/CROWN bounds, alpha-CROWN, then branch and bound "
                    "until verified, falsified or timed out. `--methods ibp,crown` is the original --crown_ver.")
    add_model_arguments(parser)
    parser.add_argument("--methods", default="ibp,crown,alpha,bab",
                        help="bounding stages, a comma-separated subset of ibp,crown,alpha,bab (default: all; "
                             "ibp,crown is the original --crown_ver); PGD always runs first unless --pgd-steps 0")
    parser.add_argument("--timeout", type=float, default=60.0, help="branch-and-bound seconds per sample")
    parser.add_argument("--start", type=int, default=0, help="first sample index")
    parser.add_argument("--end", type=int, default=-1, help="one past the last sample index (-1: all)")
    parser.add_argument("--no-resume", action="store_true", help="redo the samples already in the results file")
    parser.add_argument("--pgd-steps", type=int, default=40, help="PGD steps (original --test_att_n_steps; 0: none)")
    parser.add_argument("--pgd-step-size", type=float, default=0.035, help="PGD step relative to eps")
    parser.add_argument("--spec-batch", type=int, help="margins bounded per call (original --lirpa_crown_batch)")
    parser.add_argument("--out", metavar="FILE", help="results JSONL (default: beside the checkpoint)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the attacks' random starts (per sample)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def results_path(checkpoint: str, eps: float, methods: tuple) -> Path:
    """Default results file: ``<dir>/<stem>_verify/eps<eps>_<m1-m2-...>.jsonl``."""
    ckpt = Path(checkpoint)
    return ckpt.parent / f"{ckpt.stem}_verify" / f"eps{eps:g}_{'-'.join(methods)}.jsonl"


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from torchcert.verify.cascade import parse_methods, verify_sample
    from torchcert.verify.results import ResultStore, format_table, record_of, summarise
    from torchcert.verify.setup import build_setup

    methods = parse_methods(args.methods)
    setup = build_setup(args)
    end = len(setup.split) if args.end < 0 else min(args.end, len(setup.split))
    if not 0 <= args.start <= end:
        raise ValueError(f"--start {args.start} must lie in [0, {end}] (the split has {len(setup.split)} samples)")
    path = Path(args.out) if args.out else results_path(args.checkpoint, setup.eps, methods)
    store = ResultStore(path, resume=not args.no_resume)
    generator = torch.Generator(setup.device).manual_seed(args.seed)
    indices = range(args.start, end)
    bar = tqdm(indices, disable=args.no_progress, dynamic_ncols=True)
    for idx in bar:
        if idx in store:
            continue
        x, lower, upper, label = setup.sample(idx)
        generator.manual_seed(args.seed * 1_000_003 + idx)  # per-sample seed: resumed runs give the same answers
        result = verify_sample(setup.model, lower, upper, label, methods, args.timeout, x=x,
                               pgd_steps=args.pgd_steps, pgd_step_size=args.pgd_step_size,
                               spec_chunk=args.spec_batch, generator=generator)
        store.add(record_of(idx, label, result))
        done = store.select(range(args.start, idx + 1))
        bar.set_description(f"verified {sum(r['verified'] for r in done)}/{len(done)}")
    summary = summarise(store.select(indices))
    summary.update({"eps": setup.eps, "methods": list(methods), "timeout": args.timeout, "start": args.start,
                    "end": end, "results": str(path)})
    path.with_name(path.stem + "_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(format_table(summary, methods))
    return 0
