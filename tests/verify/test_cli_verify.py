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
    """The per-sample records (the header line holds the settings)."""
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert "settings" in rows[0]
    return rows[1:]


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


def test_results_are_reused_only_under_the_same_settings(digits_checkpoint, tmp_path, capsys):
    out = tmp_path / "keyed.jsonl"
    assert _run(_base(digits_checkpoint, out) + ["--end", "4"]) == 0
    before = out.read_text()
    with pytest.raises(ValueError, match="other settings.*pgd_steps: 40 -> 100"):
        _run(_base(digits_checkpoint, out) + ["--end", "4", "--pgd-steps", "100"])
    assert out.read_text() == before
    summary = json.loads(out.with_name("keyed_summary.json").read_text())
    assert summary["settings"]["timeout"] == 2.0 and summary["settings"]["pgd_steps"] == 40
    assert len(summary["settings"]["checkpoint_sha256"]) == 64
    # a larger timeout reuses the decided verdicts and re-tries only the timeouts
    assert _run(_base(digits_checkpoint, out)[:-1] + ["--end", "4", "--timeout", "3", "--no-progress"]) == 0
    assert json.loads(out.read_text().splitlines()[0])["settings"]["timeout"] in (2.0, 3.0)


def test_default_results_file_is_keyed_on_the_settings(digits_checkpoint, tmp_path):
    import shutil

    ckpt = tmp_path / "run" / "ckpt_last.pt"
    ckpt.parent.mkdir()
    shutil.copy(digits_checkpoint, ckpt)
    base = _base(ckpt, tmp_path / "unused")[:-3] + ["--no-progress", "--end", "2"]
    assert _run(base) == 0
    assert _run(base + ["--pgd-steps", "5"]) == 0
    files = sorted(p.name for p in (tmp_path / "run" / "ckpt_last_verify").glob("*.jsonl"))
    assert len(files) == 2 and all(f.startswith("eps0.1_ibp-crown-alpha-bab_") for f in files), files


@pytest.mark.parametrize("flag,value,message", [("--eps", "-0.1", "--eps must lie in"), ("--eps", "5", "--eps must"),
                                               ("--timeout", "0", "--timeout"), ("--start", "-1", "--start"),
                                               ("--pgd-step-size", "0", "--pgd-step-size")])
def test_nonsense_numbers_are_refused(digits_checkpoint, tmp_path, flag, value, message):
    args = [a for a in _base(digits_checkpoint, tmp_path / "n.jsonl")]
    if flag in args:
        args[args.index(flag) + 1] = value
    else:
        args += [flag, value]
    with pytest.raises(ValueError, match=message):
        _run(args)
    assert not (tmp_path / "n.jsonl").exists()


def test_no_resume_with_a_bad_range_leaves_the_file_as_it_was(digits_checkpoint, tmp_path):
    out = tmp_path / "keep.jsonl"
    assert _run(_base(digits_checkpoint, out) + ["--end", "5"]) == 0
    before = out.read_text()
    with pytest.raises(ValueError, match="past the split"):
        _run(_base(digits_checkpoint, out) + ["--no-resume", "--start", "2", "--end", "100000"])
    assert out.read_text() == before
    assert _run(_base(digits_checkpoint, out) + ["--no-resume", "--start", "2", "--end", "3"]) == 0
    assert sorted({r["idx"] for r in _lines(out)}) == list(range(5))  # the others were kept


def test_unwritable_output_fails_before_computing(digits_checkpoint, tmp_path):
    """A folder that cannot exist (its parent is a file) and a read-only file system (/proc), as root too."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="cannot create the results folder"):
        _run(_base(digits_checkpoint, blocker / "r.jsonl"))
    with pytest.raises(ValueError, match="cannot (write results|create the results folder)"):
        _run(_base(digits_checkpoint, "/proc/r.jsonl"))


def test_a_model_of_ones_own_by_module_reference(digits_checkpoint, tmp_path, monkeypatch):
    """``--model package.module:function`` builds the network (here the registry's mlp, wrapped)."""
    (tmp_path / "my_nets.py").write_text(
        "from torchcert.models import build_model\n"
        "def small_mlp(in_ch, in_dim, num_class, **options):\n"
        "    return build_model('mlp', in_ch, in_dim, num_class, **options)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "own.jsonl"
    args = _base(digits_checkpoint, out) + ["--end", "3", "--methods", "ibp,crown"]
    args[args.index("mlp")] = "my_nets:small_mlp"
    assert _run(args) == 0 and len(_lines(out)) == 3
    args[args.index("my_nets:small_mlp")] = "my_nets:missing"
    with pytest.raises(ValueError, match="has no function missing"):
        _run(args)


def test_float32_bounds_are_an_option_recorded_in_the_settings(digits_checkpoint, tmp_path):
    out = tmp_path / "f32.jsonl"
    assert _run(_base(digits_checkpoint, out) + ["--end", "3", "--bound-dtype", "float32"]) == 0
    summary = json.loads(out.with_name("f32_summary.json").read_text())
    assert summary["settings"]["bound_dtype"] == "float32" and summary["samples"] == 3
    with pytest.raises(ValueError, match="other settings.*bound_dtype"):
        _run(_base(digits_checkpoint, out) + ["--end", "3"])
