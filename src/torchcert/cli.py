"""The ``torchcert`` command line: argparse subcommands, each defined in ``torchcert.commands.*``."""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Optional, Sequence

from torchcert import __version__
from torchcert.config import ConfigError

# Each module exposes add_parser(subparsers); its parsers set `run` (a function of the parsed args -> exit code).
COMMAND_MODULES = (
    "torchcert.commands.quickstart",
    "torchcert.commands.train",
    "torchcert.commands.verify",
    "torchcert.commands.losses",
    "torchcert.commands.tuning_stats",
    "torchcert.commands.presets",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="torchcert",
        description="Certified training (IBP, CC-IBP, MTL-IBP, Exp-IBP, SABR) and verification "
        "(IBP, CROWN, alpha-CROWN, branch and bound) against L-infinity perturbations.",
    )
    parser.add_argument("--version", action="version", version=f"torchcert {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parser(subparsers)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        print(f"torchcert {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
