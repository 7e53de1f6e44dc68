"""``torchcert verify``: resumable JSONL results, summary, and the same answers after an interruption."""
from __future__ import annotations

import argparse
import json

import pytest

from torchcert.commands import verify as verify_cmd


def _run(argv) -> int:
    parser = argparse.ArgumentParser()
    verify_cmd.add_parser(parser.add_subparsers())
    args = parser.parse_args(["verify", *argv])
    return args.run(args)


def _base(checkpoint, out):
    return ["--checkpoint", str(checkpoint), "--dataset", "digits", "--model", "mlp", "--model-params",
            "width=32,depth=2", "--eps", "0.1", "--timeout", "2", "--out", str(out), "--no-progress"]


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_verify_resumes_without_redoing_samples(digits_checkpoint, tmp_path, capsys):
    out = tmp_path / "res.jsonl"
    assert _run(_base(digits_checkpoint, out) + ["--end", "6"]) == 0
    first = _lines(out)
    assert [r["idx"] for r in first] == list(range(6))
    with out.open("a") as handle:  # a run killed while writing leaves a torn line
        handle.write('{"idx": 6, "label"')
    assert _run(_base(digits_checkpoint, out) + ["--end", "12"]) == 0
    records = _lines(out)
    assert [r["idx"] for r in records] == list(range(12))
    assert records[:6] == first  # finished samples were kept, not redone
    summary = json.loads(out.with_name("res_summary.json").read_text())
    fresh = tmp_path / "fresh.jsonl"
    assert _run(_base(digits_checkpoint, fresh) + ["--end", "12", "--no-resume"]) == 0
    again = json.loads(fresh.with_name("fresh_summary.json").read_text())
    for key in ("samples", "natural", "pgd", "ibp", "crown", "verified", "timeouts"):
        assert summary[key] == again[key], key
    assert summary["samples"] == 12 and 0 < summary["verified"] <= summary["pgd"] <= summary["natural"]
    table = capsys.readouterr().out
    assert "verified" in table and "natural" in table


def test_crown_only_methods_record_no_bab(digits_checkpoint, tmp_path):
    out = tmp_path / "crown.jsonl"
    assert _run(_base(digits_checkpoint, out) + ["--end", "8", "--methods", "ibp,crown"]) == 0
    records = _lines(out)
    assert all(r["method"] in ("clean", "pgd", "ibp", "crown", "none") for r in records)
    assert all(r["status"] in ("verified", "falsified", "unknown") for r in records)
    assert all(r["verified"] == (r["crown_ok"] and r["pgd_ok"]) for r in records)


def test_verify_errors_name_the_fix(digits_checkpoint, tmp_path):
    with pytest.raises(ValueError, match="--dataset"):
        _run(["--checkpoint", str(digits_checkpoint), "--model", "mlp", "--eps", "0.1"])
    with pytest.raises(ValueError, match="choose a comma-separated subset"):
        _run(_base(digits_checkpoint, tmp_path / "x.jsonl") + ["--methods", "ibp,milp"])
