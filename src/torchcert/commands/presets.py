"""``torchcert presets`` and ``torchcert show-config``: list the shipped presets, print one resolved."""
from __future__ import annotations

import argparse

from torchcert.config import dump_config, list_presets, load_config


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    listing = subparsers.add_parser("presets", help="list the shipped training presets")
    listing.set_defaults(run=run_list)
    show = subparsers.add_parser("show-config", help="print a training preset (or YAML file), or with --verify a "
                                                     "verification config, resolved with overrides")
    show.add_argument("preset", nargs="?", help="training preset name (see `torchcert presets`) or path to a YAML "
                                                "file; with --verify an optional verification YAML file")
    show.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. optim.lr=1e-3")
    show.add_argument("--verify", action="store_true",
                      help="the verification config (`torchcert verify --config`): its defaults, or the file given")
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
    from torchcert.verify.config import VerifyConfig

    preset, overrides = args.preset, list(args.overrides)
    if preset is not None and "=" in preset and not preset.endswith((".yaml", ".yml")):
        preset, overrides = None, [preset, *overrides]  # `show-config --verify a=1`: no file, only overrides
    if args.verify:
        print(dump_config(load_config(VerifyConfig, preset if preset is not None else {}, overrides)), end="")
        return 0
    if preset is None:
        raise ValueError("show-config needs a training preset or YAML file (or --verify for the verification "
                         "config); see `torchcert presets`")
    print(dump_config(load_config(TrainConfig, preset, overrides)), end="")
    return 0
