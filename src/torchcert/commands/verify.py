"""``torchcert verify``: the verification cascade of the original verify.py on a trained checkpoint.

One JSON line per sample is appended (and flushed) to ``<checkpoint stem>_verify/eps<ε>_<methods>_<key>.jsonl``
beside the checkpoint (``key`` hashes the settings), so an interrupted run resumes where it stopped; a summary JSON
(with the settings the records were computed with) and a table follow. How to verify is a
:class:`~torchcert.verify.config.VerifyConfig` (``--config FILE.yaml`` plus ``key=value`` overrides; the flags
below win). Under ``torchrun`` every process verifies its shard of the samples (``--shard I/N`` does the same
for one process of a job array); see :mod:`torchcert.verify.shards`.
"""
from __future__ import annotations

import argparse
import logging
import os

LOG = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from torchcert.verify.setup import add_model_arguments

    parser = subparsers.add_parser(
        "verify", help="verify a trained network sample by sample (PGD, IBP, CROWN, alpha-CROWN, branch and bound)",
        description="Per sample: natural prediction, PGD, IBP/CROWN bounds (batched over --batch-size samples), "
                    "alpha-CROWN, then branch and bound until verified, falsified or timed out. `--methods ibp,crown` "
                    "is the original --crown_ver. Launched by torchrun, each process verifies a shard of the samples "
                    "and the results are merged at the end.")
    add_model_arguments(parser)
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="verification config overrides, e.g. bab.branching=widest alpha.iterations=50 "
                             "(see `torchcert show-config --verify`)")
    parser.add_argument("--config", metavar="YAML", help="verification config file (default: the built-in defaults)")
    parser.add_argument("--methods", help="bounding stages, a comma-separated subset of ibp,crown,alpha,bab (default: "
                                          "all; ibp,crown is the original --crown_ver); PGD runs first unless "
                                          "--pgd-steps 0")
    parser.add_argument("--timeout", type=float, help="branch-and-bound seconds per sample (default 60)")
    parser.add_argument("--batch-size", type=int, help="samples per batch of the clean check, PGD, IBP and CROWN "
                                                       "(original --ib_batch_size; default 100; changes no verdict)")
    parser.add_argument("--start", type=int, default=0, help="first sample index")
    parser.add_argument("--end", type=int, default=-1, help="one past the last sample index (-1: all)")
    parser.add_argument("--shard", metavar="I/N", help="verify only shard I of N (samples start+I, start+I+N, ...) "
                                                       "into its own file; the last shard to finish merges them "
                                                       "(set by torchrun's RANK/WORLD_SIZE when launched by it)")
    parser.add_argument("--no-resume", action="store_true",
                        help="recompute the samples of --start:--end even if the results file has them (its other "
                             "records are kept)")
    parser.add_argument("--pgd-steps", type=int, help="PGD steps (original --test_att_n_steps; 0: none; default 40)")
    parser.add_argument("--pgd-step-size", type=float, help="PGD step relative to eps (default 0.035)")
    parser.add_argument("--spec-batch", type=int, help="margins bounded per call (original --lirpa_crown_batch)")
    parser.add_argument("--out", metavar="FILE", help="results JSONL (default: beside the checkpoint)")
    parser.add_argument("--seed", type=int, help="seed of the attacks' random starts (per sample; default 0)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--bound-dtype", choices=("float64", "float32"),
                        help="precision of the verdict bounds: float64 (default; sound against their own rounding) "
                             "or float32 (about 5x faster CROWN on CPUs for CNN7; their own rounding is covered by an "
                             "estimate, not a proof)")
    parser.set_defaults(run=run)


def _options(args: argparse.Namespace) -> dict:
    """The keyword arguments of :func:`torchcert.verify.run.verify` the command line gives."""
    from torchcert.config import load_config
    from torchcert.verify.config import VerifyConfig

    config = load_config(VerifyConfig, args.config if args.config else {}, args.overrides or [])
    return dict(preset=args.preset, dataset=args.dataset, model=args.model, model_params=args.model_params,
                eps=args.eps, methods=args.methods, timeout=args.timeout, start=args.start, end=args.end,
                resume=not args.no_resume, data_dir=args.data_dir, device=args.device, dtype=args.dtype,
                out=args.out, pgd_steps=args.pgd_steps, pgd_step_size=args.pgd_step_size,
                spec_batch=args.spec_batch, seed=args.seed, progress=not args.no_progress,
                bound_dtype=args.bound_dtype, config=config, batch_size=args.batch_size,
                download=getattr(args, "download", False))


def run(args: argparse.Namespace) -> int:
    from torchcert.verify.run import verify
    from torchcert.verify.shards import launcher, parse_shard

    options = _options(args)
    launch = launcher(os.environ)
    if launch is not None and launch.world > 1:
        if args.shard:
            raise ValueError("--shard is set by torchrun (RANK/WORLD_SIZE) when launched by it; leave it out")
        return _run_distributed(args.checkpoint, options, launch)
    shard = parse_shard(args.shard) if args.shard else None
    summary = verify(args.checkpoint, shard=shard, **options)
    _report(summary)
    return 0


def _report(summary: dict) -> None:
    if summary.get("merged", True):
        print(summary["table"])
    else:
        LOG.info("shard %s finished its %d samples; the last shard to finish merges the results into %s",
                 summary["shard"], summary["samples"], summary["results"].split(".shard")[0] + ".jsonl")


def _run_distributed(checkpoint: str, options: dict, launch) -> int:
    """One process of a torchrun launch: its shard, then (rank 0, after every rank is done) the merge.

    The process group (gloo: it only carries the barrier, whatever the device) waits as long as the slowest shard
    takes; a failed rank ends the launch (torchrun stops the others), and running the same command again resumes
    every shard."""
    from datetime import timedelta

    import torch.distributed as dist

    from torchcert.verify.run import verify
    from torchcert.verify.shards import Shard

    if options["device"] == "cuda":
        options["device"] = f"cuda:{launch.local_rank}"
    options["progress"] = options["progress"] and launch.rank == 0  # one progress bar (rank 0's shard)
    dist.init_process_group("gloo", timeout=timedelta(days=30))
    try:
        shard = Shard(launch.rank, launch.world)
        verify(checkpoint, shard=shard, merge=False, **options)
        dist.barrier()
        if launch.rank == 0:  # every shard is on disk: this finds nothing left to verify and merges
            _report(verify(checkpoint, shard=shard, merge=True, **(options | {"resume": True})))
    finally:
        dist.destroy_process_group()
    return 0
