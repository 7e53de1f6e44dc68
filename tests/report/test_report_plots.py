"""The figures draw the data of metrics.jsonl and of the results file (read back from the matplotlib lines and
bars), and a missing matplotlib gives the install command."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from torchcert.report import plots  # noqa: E402
from torchcert.report.cascade import CATEGORIES, decided_by  # noqa: E402
from torchcert.report.runs import read_run  # noqa: E402


def _metrics(run_dir):
    return [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _close(got, expected):
    """Same shape and values (pytest.approx does not take nested lists)."""
    np.testing.assert_allclose(np.asarray(got, dtype=float), np.asarray(expected, dtype=float), rtol=1e-12)


def _lines(figure, axis=0):
    return {line.get_label(): line.get_xydata().tolist() for line in figure.axes[axis].get_lines()}


def test_accuracy_lines_are_metrics_jsonl(finished_run):
    records = _metrics(finished_run)
    lines = _lines(plots.plot_accuracy(read_run(finished_run).metrics))
    for split in ("train", "test"):
        for key, label in (("nat_acc", "standard"), ("adv_acc", "PGD"), ("ver_acc", "IBP-verified")):
            expected = [[r["epoch"], 100 * r[split][key]] for r in records if split in r]
            _close(lines[f"{split} {label}"], expected)
    assert [x for x, _ in lines["test standard"]] == [2, 3]  # test epochs only (test_interval 2, last epoch)


def test_loss_and_schedule_lines_are_metrics_jsonl(finished_run):
    records = _metrics(finished_run)
    losses = _lines(plots.plot_losses(records))
    _close(losses["train total (training objective)"], [[r["epoch"], r["train"]["loss"]] for r in records])
    _close(losses["test IBP-verified CE"], [[r["epoch"], r["test"]["ver_loss"]] for r in records if "test" in r])
    figure = plots.plot_schedules(records, target_eps=0.1)
    _close(_lines(figure, 0)["training ε"], [[r["epoch"], r["train_eps"]] for r in records])
    _close(_lines(figure, 1)["learning rate"], [[r["epoch"], r["lr"]] for r in records])
    assert records[-1]["lr"] < records[0]["lr"]  # the milestone at epoch 2 shows in the data drawn


def test_cascade_bars_are_the_record_counts(finished_run):
    (results,) = read_run(finished_run).verifications
    figure = plots.plot_cascade(results.records)
    heights = [bar.get_height() for bar in figure.axes[0].patches]
    counts = decided_by(results.records)
    n = len(results.records)
    assert heights == pytest.approx([100 * counts[name] / n for name, _ in CATEGORIES])
    assert sum(counts.values()) == n == results.summary["samples"]
    seconds = plots.plot_seconds(results.records, timeout=1.0)
    points = sorted(tuple(p) for c in seconds.axes[0].collections for p in c.get_offsets().tolist())
    _close(points, sorted((r["idx"], r["seconds"]) for r in results.records))


def test_missing_matplotlib_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what an absent package looks like to import
    assert not plots.plots_available()
    with pytest.raises(ImportError, match=r"pip install matplotlib"):
        plots.plot_accuracy([])
