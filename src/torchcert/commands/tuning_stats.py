"""``torchcert tuning-stats``: per-sample branch-and-bound lower bounds of every margin with a short timeout,
the resulting "BaB loss" and the error of a training loss against it, on a validation split (original
get_tuning_stats.py; use --valid-share as in training)."""
from __future__ import annotations

import argparse


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
    from torchcert.commands.losses import check_loss_arguments, loss_settings, output_path, print_and_save, split_name
    from torchcert.verify.setup import build_setup
    from torchcert.verify.tuning import tuning_stats

    check_loss_arguments(args)
    split = split_name(args)
    setup = build_setup(args, split, args.valid_share)
    loss = args.loss or getattr(getattr(setup.config, "method", None), "loss", None)
    if loss is None:
        raise ValueError("no loss to compare: pass --loss (cc-ibp, mtl-ibp, exp-ibp or sabr) or --preset")
    out = output_path(args, "tuning", split, setup.eps)
    stats = tuning_stats(setup, loss_settings(args, setup.config), loss, args.start, args.end, args.timeout,
                         args.seed, args.batch_size)
    print_and_save(stats, out, {"eps": setup.eps, "split": split, "loss": loss})
    return 0
