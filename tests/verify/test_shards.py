"""Sharded verification: ``--shard I/N`` and torchrun ranks give the records of one process; a killed shard resumes;
an exception on a sample is an ``error`` record."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from tests.verify.test_cli_verify import _base, _lines, _run
from torchcert.verify.shards import Shard, parse_shard

#: record keys that depend on the run, not on the verdict
TIMING = ("seconds",)


def _records(path):
    return {r["idx"]: {k: v for k, v in r.items() if k not in TIMING} for r in _lines(path)}


def _close(a, b) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and set(a) == set(b) and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return a == b


def _same(path_a, path_b) -> None:
    """The same records, but for timing and the last bits of the bounds: a batch of other samples rounds a
    float64 product differently (BLAS picks kernels by shape); verdicts and BaB domain counts are equal."""
    a, b = _records(path_a), _records(path_b)
    assert sorted(a) == sorted(b)
    for idx in a:
        assert _close(a[idx], b[idx]), (idx, a[idx], b[idx])


def test_shard_parsing_and_indices():
    assert parse_shard("1/3") == Shard(1, 3) and list(Shard(1, 3).indices(2, 12)) == [3, 6, 9]
    for bad in ("3/3", "-1/2", "1", "a/b", "0/0"):
        with pytest.raises(ValueError, match="I/N"):
            parse_shard(bad)


def test_shards_merge_into_the_records_of_one_process(digits_checkpoint, tmp_path):
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    assert _run(_base(digits_checkpoint, one) + ["--end", "20", "--batch-size", "6"]) == 0
    assert _run(_base(digits_checkpoint, two) + ["--end", "20", "--shard", "1/2", "--batch-size", "4"]) == 0
    shard1 = tmp_path / "two.shard1of2.jsonl"
    assert not two.exists() and sorted(_records(shard1)) == list(range(1, 20, 2))
    # shard 0 is killed after two samples: its file ends in a torn line
    assert _run(_base(digits_checkpoint, two) + ["--end", "20", "--shard", "0/2", "--batch-size", "3"]) == 0
    shard0 = tmp_path / "two.shard0of2.jsonl"
    assert not shard0.exists() and two.exists()  # the last shard to finish merged and removed the shard files
    _same(two, one)
    merged = json.loads(two.with_name("two_summary.json").read_text())
    single = json.loads(one.with_name("one_summary.json").read_text())
    assert merged["samples"] == 20 and merged["table"] == single["table"].replace(
        f"{single['mean_seconds']:.3f}", f"{merged['mean_seconds']:.3f}")


def test_a_killed_shard_resumes_without_redoing_samples(digits_checkpoint, tmp_path):
    out = tmp_path / "r.jsonl"
    shard0 = tmp_path / "r.shard0of2.jsonl"
    assert _run(_base(digits_checkpoint, out) + ["--end", "16", "--shard", "0/2"]) == 0
    lines = shard0.read_text().splitlines()
    shard0.write_text("\n".join(lines[:4]) + '\n{"idx": 6, "lab')  # header, 3 records, a torn line
    kept = [json.loads(line) for line in lines[1:4]]
    assert _run(_base(digits_checkpoint, out) + ["--end", "16", "--shard", "0/2"]) == 0
    again = _lines(shard0)
    assert again[:3] == kept and [r["idx"] for r in again] == list(range(0, 16, 2))  # seconds too: not redone
    assert _run(_base(digits_checkpoint, out) + ["--end", "16", "--shard", "1/2"]) == 0
    assert sorted(_records(out)) == list(range(16)) and not shard0.exists()


def test_an_exception_on_a_sample_is_an_error_record(digits_checkpoint, tmp_path, monkeypatch):
    import importlib

    from torchcert.verify.cascade import verify_sample

    run_module = importlib.import_module("torchcert.verify.run")  # torchcert.verify is also the function

    def failing(model, lower, upper, label, *args, **kwargs):
        if label == 3:  # a sample of the batch that is retried alone fails again
            raise RuntimeError("no luck with threes")
        return verify_sample(model, lower, upper, label, *args, **kwargs)

    def broken_batch(*args, **kwargs):
        raise RuntimeError("the batched stage broke")

    monkeypatch.setattr(run_module, "verify_batch", broken_batch)
    monkeypatch.setattr(run_module, "verify_sample", failing)
    out = tmp_path / "e.jsonl"
    assert _run(_base(digits_checkpoint, out) + ["--end", "12", "--methods", "ibp,crown"]) == 0
    records = _records(out)
    threes = [r for r in records.values() if r["label"] == 3]
    assert threes and all(r["status"] == "error" and not r["verified"] and "no luck" in r["error"] for r in threes)
    assert all(r["status"] != "error" for r in records.values() if r["label"] != 3)
    summary = json.loads(out.with_name("e_summary.json").read_text())
    assert summary["errors"] == len(threes) and summary["timeouts"] == 0 and "errors" in summary["table"]
    monkeypatch.undo()  # resuming re-tries the errors only
    assert _run(_base(digits_checkpoint, out) + ["--end", "12", "--methods", "ibp,crown"]) == 0
    again = _records(out)
    assert all(r["status"] != "error" for r in again.values())
    assert all(_close(again[i], r) for i, r in records.items() if r["label"] != 3)


def test_torchrun_two_processes_give_the_records_of_one(digits_checkpoint, tmp_path):
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    args = _base(digits_checkpoint, one)[:-3] + ["--end", "24", "--batch-size", "5", "--no-progress"]
    assert _run(args + ["--out", str(one)]) == 0
    env = dict(os.environ, OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
               "torchcert", "verify", *args, "--out", str(two)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    _same(two, one)
    assert "verified" in done.stdout and not list(tmp_path.glob("*.shard*"))
