"""``torchcert verify``: the verification cascade of the original verify.py on a trained checkpoint.

One JSON line per sample is appended (and flushed) to ``<checkpoint stem>_verify/eps<ε>_<methods>_<key>.jsonl``
beside the checkpoint (``key`` hashes the settings), so an interrupted run resumes where it stopped; a summary JSON
(with the settings the records were computed with) and a table follow.
"""
from __future__ import annotations

import argparse


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
    parser.add_argument("--no-resume", action="store_true",
                        help="recompute the samples of --start:--end even if the results file has them (its other "
                             "records are kept)")
    parser.add_argument("--pgd-steps", type=int, default=40, help="PGD steps (original --test_att_n_steps; 0: none)")
    parser.add_argument("--pgd-step-size", type=float, default=0.035, help="PGD step relative to eps")
    parser.add_argument("--spec-batch", type=int, help="margins bounded per call (original --lirpa_crown_batch)")
    parser.add_argument("--out", metavar="FILE", help="results JSONL (default: beside the checkpoint)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the attacks' random starts (per sample)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--bound-dtype", choices=("float64", "float32"), default="float64",
                        help="precision of the verdict bounds: float64 (default; sound against their own rounding) "
                             "or float32 (about 5x faster CROWN on CPUs for CNN7; their own rounding is covered by an "
                             "estimate, not a proof)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from torchcert.verify.run import verify

    summary = verify(args.checkpoint, args.preset, dataset=args.dataset, model=args.model,
                     model_params=args.model_params, eps=args.eps, methods=args.methods, timeout=args.timeout,
                     start=args.start, end=args.end, resume=not args.no_resume, data_dir=args.data_dir,
                     device=args.device, dtype=args.dtype, out=args.out, pgd_steps=args.pgd_steps,
                     pgd_step_size=args.pgd_step_size, spec_batch=args.spec_batch, seed=args.seed,
                     progress=not args.no_progress, bound_dtype=args.bound_dtype)
    print(summary["table"])
    return 0
