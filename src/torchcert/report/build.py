"""Writing a report folder: per run, its curves; per verification results file, the cascade and the time per
sample; across runs, the Table-1 layout as Markdown and CSV, and ``report.md`` showing it all.

Layout of ``out``: ``table.md``, ``table.csv``, ``report.md``, and a folder per run (named after the run folder)
with ``accuracy``, ``losses``, ``schedules`` and, per results file ``F.jsonl``, ``F-cascade`` and ``F-seconds``
(``.png`` and ``.svg`` each).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Sequence, Union

from . import plots
from .runs import RunFolder, VerifyFile, attach_results, read_run
from .table import Row, table_rows, to_csv, to_markdown

LOG = logging.getLogger(__name__)
PathLike = Union[str, Path]
FORMATS = ("png", "svg")


@dataclass
class Report:
    """What :func:`build_report` wrote: the table rows and every file, plots by run name."""

    out: Path
    rows: List[Row]
    files: List[Path] = field(default_factory=list)


def run_names(runs: Sequence[RunFolder]) -> List[str]:
    """Folder names of the runs, made unique with ``-2``, ``-3``, ... where two runs share a name."""
    names: List[str] = []
    for run in runs:
        name, n = run.name, 2
        while name in names:
            name, n = f"{run.name}-{n}", n + 1
        names.append(name)
    return names


def default_out(run_dirs: Sequence[PathLike]) -> Path:
    """``RUN_DIR/report`` for one run; several runs need ``--out`` (ValueError saying so)."""
    if len(run_dirs) != 1:
        raise ValueError(f"{len(run_dirs)} run folders given: pass --out DIR to say where their joint report goes")
    return Path(run_dirs[0]) / "report"


def run_plots(run: RunFolder, folder: Path, formats: Sequence[str] = FORMATS) -> List[Path]:
    """The curves of one run (none while its metrics.jsonl is empty) and the figures of its results files."""
    written: List[Path] = []
    if run.metrics:
        eps = run.config.get("eps", {}).get("value")
        figures = {"accuracy": plots.plot_accuracy(run.metrics, f"{run.name}: accuracy"),
                   "losses": plots.plot_losses(run.metrics, f"{run.name}: losses"),
                   "schedules": plots.plot_schedules(run.metrics, eps, f"{run.name}: ε and learning rate")}
        for stem, figure in figures.items():
            written += plots.save_figure(figure, folder / stem, formats)
    for results in run.verifications:
        written += verify_plots(results, folder, formats)
    return written


def verify_plots(results: VerifyFile, folder: Path, formats: Sequence[str] = FORMATS) -> List[Path]:
    """Cascade bar chart and time per sample of one results file (named after it)."""
    timeout = (results.settings or {}).get("timeout") if "bab" in (results.settings or {}).get("methods", []) \
        else None
    stem = results.path.stem
    cascade = plots.plot_cascade(results.records, f"{stem}: decided by ({len(results.records)} samples)")
    seconds = plots.plot_seconds(results.records, timeout, f"{stem}: time per sample")
    return plots.save_figure(cascade, folder / f"{stem}-cascade", formats) + \
        plots.save_figure(seconds, folder / f"{stem}-seconds", formats)


def build_report(run_dirs: Sequence[PathLike], out: PathLike, formats: Sequence[str] = FORMATS,
                 progress: bool = True, results: Sequence[PathLike] = ()) -> Report:
    """Read every run folder (finished or in progress) and the extra verification ``results`` files (each goes
    with the run whose checkpoint it verified), then write the report into ``out`` (created)."""
    from torchcert.progress import Progress

    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise ValueError(f"unknown figure format(s) {unknown or list(formats)}; valid: {', '.join(FORMATS)}")
    plots.require_matplotlib()
    runs = attach_results([read_run(path) for path in run_dirs], list(results))
    names = run_names(runs)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = Report(out, table_rows(runs, names))
    for run, name in Progress(list(zip(runs, names)), len(runs), "report", progress, every=10.0):
        (out / name).mkdir(exist_ok=True)
        report.files += run_plots(run, out / name, formats)
        LOG.info("report: %s (%d epochs, %d results files)", name, len(run.metrics), len(run.verifications))
    report.files += _write_tables(report, names, runs)
    return report


def _write_tables(report: Report, names: Sequence[str], runs: Sequence[RunFolder]) -> List[Path]:
    """``table.md``, ``table.csv`` and ``report.md`` (the table, then every run's PNGs)."""
    out, markdown = report.out, to_markdown(report.rows)
    (out / "table.md").write_text(markdown)
    (out / "table.csv").write_text(to_csv(report.rows))
    lines = ["# torchcert report", "", markdown]
    for name in names:
        pngs = sorted(p for p in report.files if p.parent == out / name and p.suffix == ".png")
        lines += [f"## {name}", ""] + [f"![{p.stem}]({name}/{p.name})" for p in pngs] + [""]
    (out / "report.md").write_text("\n".join(lines))
    return [out / "table.md", out / "table.csv", out / "report.md"]
