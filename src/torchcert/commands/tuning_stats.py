"""``torchcert tuning-stats``: per-sample branch-and-bound lower bounds of every margin with a short timeout,
the resulting "BaB loss" and the error of a training loss against it, on a validation split (original
get_tuning_stats.py; use --valid-share as in training)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from torchcert.commands.losses import add_loss_arguments
    from torchcert.verify.setup import add_model_arguments

    parser = subparsers.add_parser("tuning-stats", help="BaB loss and loss errors on a validation split "
                                                        "(original get_tuning_stats.py)")
    add_model_arguments(parser)
    add_loss_arguments(parser)
    parser.add_argument("--loss", choices=("cc-ibp", "mtl-ibp", "exp-ibp", "sabr"),
                        help="training loss compared with the BaB loss (default: the preset's)")
    parser.add_argument("--timeout", type=float, default=15.0, help="BaB seconds per margin (original "
                                                                    "--oval_bab_timeout)")
    parser.set_defaults(run=run, end=100)


def run(args: argparse.Namespace) -> int:
    from torchcert.commands.losses import loss_settings, split_name
    from torchcert.verify.setup import build_setup
    from torchcert.verify.tuning import tuning_stats

    split = split_name(args)
    setup = build_setup(args, split, args.valid_share)
    loss = args.loss or getattr(getattr(setup.config, "method", None), "loss", None)
    if loss is None:
        raise ValueError("no loss to compare: pass --loss (cc-ibp, mtl-ibp, exp-ibp or sabr) or --preset")
    stats = tuning_stats(setup, loss_settings(args, setup.config), loss, args.start, args.end, args.timeout,
                         args.seed, args.batch_size)
    ckpt = Path(args.checkpoint)
    out = Path(args.out) if args.out else ckpt.parent / f"{ckpt.stem}_tuning_{split}_eps{setup.eps:g}.json"
    out.write_text(json.dumps({"eps": setup.eps, "split": split, "loss": loss, **stats}, indent=2) + "\n")
    width = max(len(k) for k in stats)
    for key, value in stats.items():
        print(f"{key.ljust(width)}  {value:.6f}" if isinstance(value, float) else f"{key.ljust(width)}  {value}")
    return 0
