"""Figures of a run and of a verification results file, drawn with matplotlib's object-oriented API on the
Agg canvas (no pyplot, no display, no global backend switch).

matplotlib is the optional ``plot`` extra and is imported only here, when a figure is drawn:
:func:`require_matplotlib` raises an ImportError saying how to install it. Every function returns the Figure;
the plotted data are those of :mod:`.series` and :mod:`.cascade`, so tests read them back from the lines.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

from .cascade import CATEGORIES, decided_by, seconds_by_category, shares
from .series import ACCURACIES, LOSSES, Series, labelled_series, top_level_series

INSTALL_HINT = "pip install matplotlib (or pip install 'torchcert[plot]')"
#: figure size in inches and resolution of the PNGs (small files for READMEs)
SIZE, DPI = (6.4, 4.0), 90
_KIND_COLOURS = {"falsified": "#c44e52", "verified": "#55a868", "undecided": "#8c8c8c"}


def require_matplotlib() -> None:
    """ImportError with the install command when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError(f"plots need matplotlib, which is not installed: {INSTALL_HINT}") from None


def plots_available() -> bool:
    """Whether matplotlib can be imported (the quickstart reports only then)."""
    try:
        require_matplotlib()
    except ImportError:
        return False
    return True


def new_figure(rows: int = 1, size: Tuple[float, float] = SIZE) -> Tuple[Any, List[Any]]:
    """A Figure on an Agg canvas with ``rows`` axes stacked (sharing x)."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    return figure, list(axes)


def _draw_series(ax: Any, series: Dict[str, Series], scale: float = 1.0) -> None:
    """Train series as solid lines, test series dashed with markers, one colour per metric."""
    colours: Dict[str, str] = {}
    for label, (x, y) in series.items():
        split, metric = label.split(" ", 1)
        colour = colours.setdefault(metric, f"C{len(colours)}")
        style = {"linestyle": "-"} if split == "train" else {"linestyle": "--", "marker": "o", "markersize": 4}
        ax.plot(x, [scale * v for v in y], color=colour, label=label, **style)
    ax.grid(alpha=0.3)
    if series:
        ax.legend(fontsize="small")


def plot_accuracy(records: Sequence[Dict[str, Any]], title: str = "") -> Any:
    """Standard, PGD and IBP-verified accuracy (%) per epoch, training (solid) and test (dashed)."""
    figure, (ax,) = new_figure()
    _draw_series(ax, labelled_series(records, ACCURACIES), scale=100.0)
    ax.set(xlabel="epoch", ylabel="accuracy (%)", title=title or "accuracy")
    return figure


def plot_losses(records: Sequence[Dict[str, Any]], title: str = "") -> Any:
    """Losses per epoch (log scale when all are positive): the training objective and the cross-entropies."""
    figure, (ax,) = new_figure()
    series = labelled_series(records, LOSSES)
    _draw_series(ax, series)
    values = [v for _, y in series.values() for v in y if math.isfinite(v)]
    if values and min(values) > 0:
        ax.set_yscale("log")
    ax.set(xlabel="epoch", ylabel="loss", title=title or "losses")
    return figure


def plot_schedules(records: Sequence[Dict[str, Any]], target_eps: Any = None, title: str = "") -> Any:
    """Training ε (scheduled ε × ``eps.train_mul``, at the epoch's last batch) and learning rate per epoch."""
    figure, (ax_eps, ax_lr) = new_figure(2)
    ax_eps.plot(*top_level_series(records, "train_eps"), color="C0", marker=".", label="training ε")
    if target_eps is not None:
        ax_eps.axhline(float(target_eps), color="C3", linestyle=":", label=f"target ε = {float(target_eps):g}")
    ax_eps.set(ylabel="ε", title=title or "schedules")
    ax_eps.legend(fontsize="small")
    x, lr = top_level_series(records, "lr")
    ax_lr.plot(x, lr, color="C1", marker=".", label="learning rate")
    if lr and min(lr) > 0:
        ax_lr.set_yscale("log")
    ax_lr.set(xlabel="epoch", ylabel="learning rate")
    for ax in (ax_eps, ax_lr):
        ax.grid(alpha=0.3)
    return figure


def plot_cascade(records: Sequence[Dict[str, Any]], title: str = "") -> Any:
    """Share of samples (%) decided by each stage of the cascade, coloured by outcome; counts on the bars."""
    figure, (ax,) = new_figure()
    counts = decided_by(records)
    share = shares(counts)
    names = [name for name, _ in CATEGORIES]
    colours = [_KIND_COLOURS[kind] for _, kind in CATEGORIES]
    bars = ax.bar(names, [100 * share[n] for n in names], color=colours)
    ax.bar_label(bars, labels=[str(counts[n]) for n in names], fontsize="small")
    ax.set(ylabel="samples (%)", title=title or f"decided by ({len(records)} samples)")
    ax.tick_params(axis="x", labelrotation=30, labelsize="small")
    ax.grid(axis="y", alpha=0.3)
    return figure


def plot_seconds(records: Sequence[Dict[str, Any]], timeout: Any = None, title: str = "") -> Any:
    """Seconds per sample against the sample index (log scale), one colour per deciding stage."""
    figure, (ax,) = new_figure()
    by_category = seconds_by_category(records)
    for index, (name, kind) in enumerate(CATEGORIES):  # cascade order, one fixed colour per category
        if name in by_category:
            marker = {"verified": "o", "falsified": "x"}.get(kind, "s")
            ax.scatter(*by_category[name], s=12, marker=marker, color=f"C{index}", label=name)
    if timeout is not None:
        ax.axhline(float(timeout), color="k", linestyle=":", label=f"BaB timeout {float(timeout):g} s")
    if records and min(float(r["seconds"]) for r in records) > 0:
        ax.set_yscale("log")
    ax.set(xlabel="sample index", ylabel="seconds", title=title or "time per sample")
    ax.grid(alpha=0.3)
    if records:
        ax.legend(fontsize="small")
    return figure


def save_figure(figure: Any, stem: Path, formats: Sequence[str] = ("png", "svg")) -> List[Path]:
    """Write ``stem.<format>`` for each format; returns the paths."""
    paths = []
    for fmt in formats:
        path = stem.with_name(f"{stem.name}.{fmt}")
        figure.savefig(path, format=fmt)
        paths.append(path)
    return paths
