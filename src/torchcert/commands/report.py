"""``torchcert report RUN_DIR [RUN_DIR ...] [--out DIR]``: plots of each run (accuracy, losses, ε and learning
rate per epoch; per verification results file the cascade and the time per sample) and a table across runs in
the layout of the paper's Table 1 (Markdown and CSV). Runs still in progress are reported as far as they got."""
from __future__ import annotations

import argparse
import sys


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report", help="plots and a Table-1 style table from run folders (needs matplotlib)",
        description="Reads each run folder (config.yaml, metrics.jsonl, summary.json, and the results files "
                    "`torchcert verify` wrote beside its checkpoint) and writes PNG and SVG plots, table.md, "
                    "table.csv and report.md. Needs matplotlib: pip install 'torchcert[plot]'.")
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders (the --out of train or quickstart)")
    parser.add_argument("--out", metavar="DIR", help="report folder (default RUN_DIR/report; required for several "
                                                     "runs)")
    parser.add_argument("--results", nargs="+", default=[], metavar="FILE",
                        help="verification results written elsewhere (`verify --out FILE`); each goes with the run "
                             "whose checkpoint it verified. Those beside the checkpoints are found without this")
    parser.add_argument("--formats", default="png,svg", help="figure formats, a subset of png,svg (default both)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from torchcert.report import build_report, default_out

    out = args.out or default_out(args.runs)
    formats = tuple(f.strip() for f in args.formats.split(",") if f.strip())
    try:
        report = build_report(args.runs, out, formats, progress=not args.no_progress, results=args.results)
    except ImportError as exc:  # matplotlib missing: one line with the install command
        print(f"torchcert report: error: {exc}", file=sys.stderr)
        return 2
    print(f"report of {len(args.runs)} run(s) in {report.out}: {len(report.files)} files, "
          f"table {report.out / 'table.md'}\n")
    print((report.out / "table.md").read_text(), end="")
    return 0
