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
    "torchcert.commands.report",
    "torchcert.commands.vnnlib",
    "torchcert.commands.export",
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
    for sub in subparsers.choices.values():
        sub.add_argument("--threads", type=_positive_int, metavar="N",
                         help="CPU threads for PyTorch (default: the cores idle at start, at least 1; see the "
                              "README)")
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


#: what to tell a user who pressed Ctrl-C, per command
RESUME_HINT = {"train": "continue with --resume", "quickstart": "run it again to continue",
               "verify": "run the same command again to continue (finished samples are kept)"}


def _run(args: argparse.Namespace) -> int:
    """The command, with every expected failure as one line on stderr and exit code 2 (130 for Ctrl-C)."""
    name = args.command
    try:
        return int(args.run(args) or 0)
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        print(f"torchcert {name}: error: {exc}", file=sys.stderr)
    except OSError as exc:  # a full disk, a read-only file system, a vanished folder
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"torchcert {name}: error: {where}{exc.strerror or exc}", file=sys.stderr)
    except KeyboardInterrupt:
        hint = RESUME_HINT.get(name)
        print(f"torchcert {name}: interrupted" + (f"; {hint}" if hint else ""), file=sys.stderr)
        return 130
    return 2


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    _merge_late_overrides(parser, args, extra)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    from torchcert.threads import apply_threads

    apply_threads(args.threads)
    return _run(args)


def _merge_late_overrides(parser: argparse.ArgumentParser, args: argparse.Namespace, extra: list) -> None:
    """Accept ``key=value`` overrides after options too (``train P --out D a.b=1``), which argparse alone rejects."""
    late = [item for item in extra if "=" in item and not item.startswith("-")]
    if len(late) != len(extra) or (late and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if late:
        args.overrides = [*(args.overrides or []), *late]


if __name__ == "__main__":
    sys.exit(main())
