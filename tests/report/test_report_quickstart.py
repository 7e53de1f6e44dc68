"""``torchcert quickstart`` ends by writing the report of its run (or says how to get one without matplotlib)."""
from __future__ import annotations

import json
import sys

import pytest

from torchcert.cli import main

pytest.importorskip("sklearn")
TINY = ["data.train_limit=64", "data.test_limit=32", "data.batch_size=32", "run.epochs=2", "eps.start=1",
        "eps.length=1", "run.progress=false", "optim.lr_milestones=[2]", "attack.test_steps=1", "run.test_interval=1"]


def test_quickstart_writes_its_report(tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    out = tmp_path / "qs"
    assert main(["quickstart", *TINY, "--out", str(out), "--threads", "1"]) == 0
    assert str(out / "report" / "report.md") in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    table = (out / "report" / "table.md").read_text()
    assert f"| {100 * summary['nat_acc']:.2f} | {100 * summary['pgd_acc']:.2f} |" in table
    assert (out / "report" / "qs" / "accuracy.png").exists()
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # a second quickstart (reusing the run) without it
    assert main(["quickstart", *TINY, "--out", str(out), "--threads", "1"]) == 0
    assert f"pip install matplotlib (or pip install 'torchcert[plot]'), then `torchcert report {out}`" in \
        capsys.readouterr().out
