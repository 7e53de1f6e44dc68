"""``torchcert presets`` and ``torchcert show-config``: list the shipped presets, print one resolved."""
from __future__ import annotations

import argparse

from torchcert.config import dump_config, list_presets, load_config


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    listing = subparsers.add_parser("presets", help="list the shipped training presets")
    listing.set_defaults(run=run_list)
    show = subparsers.add_parser("show-config", help="print a preset (or YAML file) resolved with overrides")
    show.add_argument("preset", help="preset name (see `torchcert presets`) or path to a YAML file")
    show.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. optim.lr=1e-3")
    show.set_defaults(run=run_show)


def run_list(args: argparse.Namespace) -> int:
    """One row per preset: name, dataset, model, loss, ε and epochs."""
    from torchcert.train.config import TrainConfig

    rows = [("preset", "dataset", "model", "loss", "eps", "epochs")]
    for name in list_presets():
        cfg = load_config(TrainConfig, name)
        rows.append((name, cfg.data.dataset, cfg.model.name, cfg.method.loss, f"{cfg.eps.value:g}",
                     str(cfg.run.epochs)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return 0


def run_show(args: argparse.Namespace) -> int:
    from torchcert.train.config import TrainConfig

    print(dump_config(load_config(TrainConfig, args.preset, args.overrides)), end="")
    return 0
