"""``torchcert report``: the files of a report, from a finished run and one still in progress."""
from __future__ import annotations

import json
import sys

import pytest

from torchcert.cli import main
from torchcert.report import build_report, default_out

PER_RUN = ("accuracy", "losses", "schedules")


def test_report_files_of_finished_and_running_runs(finished_run, run_copy, tmp_path):
    pytest.importorskip("matplotlib")
    (run_copy / "summary.json").unlink()
    with (run_copy / "metrics.jsonl").open("a") as handle:
        handle.write('{"epoch": 4, "train')  # a torn line being written
    report = build_report([finished_run, run_copy], tmp_path / "out", progress=False)
    out = report.out
    (stem,) = [p.stem for p in finished_run.glob("*_verify/*.jsonl")]
    for name in ("tiny", "copy"):
        for figure in PER_RUN + (f"{stem}-cascade", f"{stem}-seconds"):
            for fmt in ("png", "svg"):
                path = out / name / f"{figure}.{fmt}"
                assert path.stat().st_size > 1000 and path in report.files, path
    assert (out / name / "accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (out / "table.md").read_text()
    assert table.count("\n") == 2 + 4 and "unfinished (running or stopped): epoch 3 of 3" in table
    assert (out / "table.csv").read_text().count("\n") == 1 + 4
    assert "![accuracy](tiny/accuracy.png)" in (out / "report.md").read_text()


def test_run_without_metrics_yet(tmp_path):
    pytest.importorskip("matplotlib")
    run = tmp_path / "starting"
    run.mkdir()
    (run / "config.yaml").write_text("run:\n  epochs: 5\n")
    report = build_report([run], tmp_path / "out", formats=("png",), progress=False)
    assert report.files == [tmp_path / "out" / n for n in ("table.md", "table.csv", "report.md")]
    assert "training (no test yet)" in (tmp_path / "out" / "table.md").read_text()


def test_cli_report_prints_the_table(finished_run, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    assert main(["report", str(finished_run), "--out", str(tmp_path / "r"), "--formats", "png",
                 "--no-progress", "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((finished_run / "summary.json").read_text())
    assert f"{100 * summary['nat_acc']:.2f}" in printed and not list((tmp_path / "r" / "tiny").glob("*.svg"))


def test_cli_errors(finished_run, tmp_path, capsys, monkeypatch):
    assert main(["report", str(finished_run), str(finished_run), "--threads", "1"]) == 2
    assert "pass --out DIR" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "nope"), "--threads", "1"]) == 2
    assert "no such run folder" in capsys.readouterr().err
    assert main(["report", str(finished_run), "--out", str(tmp_path / "r"), "--formats", "pdf", "--threads", "1"]) == 2
    assert "valid: png, svg" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["report", str(finished_run), "--out", str(tmp_path / "r"), "--threads", "1"]) == 2
    assert "pip install matplotlib" in capsys.readouterr().err
    assert default_out([finished_run]) == finished_run / "report"


def test_results_written_elsewhere_join_their_run(finished_run, run_copy, tmp_path):
    pytest.importorskip("matplotlib")
    from torchcert.verify.run import verify

    elsewhere = tmp_path / "elsewhere.jsonl"
    summary = verify(finished_run / "ckpt_last.pt", end=3, timeout=1.0, methods="ibp,crown", out=elsewhere,
                     progress=False)
    (run_copy / "ckpt_last.pt").write_bytes((run_copy / "ckpt_last.pt").read_bytes() + b"\0")  # the run went on
    report = build_report([run_copy, finished_run], tmp_path / "out", ("png",), False, results=[elsewhere])
    rows = [r for r in report.rows if r.run == "tiny"]
    assert len(rows) == 3 and rows[2].evaluation == "verify ibp,crown" and rows[2].samples == 3
    assert rows[2].verified == summary["verified"] and (tmp_path / "out" / "tiny" / "elsewhere-cascade.png").exists()
    copy_rows = [r for r in report.rows if r.run == "copy"]
    assert copy_rows[1].status.endswith("verified an earlier checkpoint") and "earlier" not in rows[1].status
    with pytest.raises(ValueError, match="none of the runs' current checkpoints"):
        build_report([run_copy], tmp_path / "out2", ("png",), False, results=[elsewhere])
