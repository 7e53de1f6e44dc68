"""Reading run folders as they are, finished or still being written."""
from __future__ import annotations

import json

import pytest

from torchcert.report.runs import read_metrics, read_run


def test_finished_run_is_read_whole(finished_run):
    run = read_run(finished_run)
    lines = [json.loads(ln) for ln in (finished_run / "metrics.jsonl").read_text().splitlines()]
    assert run.metrics == lines and [r["epoch"] for r in run.metrics] == [1, 2, 3]
    assert run.summary == json.loads((finished_run / "summary.json").read_text())
    assert run.config["data"]["dataset"] == "digits" and run.planned_epochs == 3
    (results,) = run.verifications
    assert [r["idx"] for r in results.records] == list(range(results.summary["samples"]))
    assert results.settings["methods"] == ["ibp", "crown", "alpha", "bab"] and results.summary is not None


def test_run_in_progress_torn_line_no_summary(run_copy):
    metrics = run_copy / "metrics.jsonl"
    lines = metrics.read_text().splitlines()
    metrics.write_text(lines[0] + "\n" + lines[1][: len(lines[1]) // 2])  # killed while writing epoch 2
    (run_copy / "summary.json").unlink()
    run = read_run(run_copy)
    assert [r["epoch"] for r in run.metrics] == [1] and run.summary is None


def test_later_line_of_an_epoch_supersedes(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"epoch": 2, "lr": 1}\n{"epoch": 1, "lr": 2}\n{"epoch": 2, "lr": 3}\n')
    assert read_metrics(path) == [{"epoch": 1, "lr": 2}, {"epoch": 2, "lr": 3}]
    assert read_metrics(tmp_path / "absent.jsonl") == []


def test_not_a_run_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such run folder"):
        read_run(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="neither config.yaml nor metrics.jsonl"):
        read_run(tmp_path)
