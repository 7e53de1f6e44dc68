"""The Table-1 layout: its numbers are those of summary.json and of the verify summary, for finished runs, and
those of the last test epoch for runs in progress."""
from __future__ import annotations

import csv
import io
import json

import pytest
import yaml

from torchcert.report.presets import preset_of
from torchcert.report.runs import read_run
from torchcert.report.table import format_seconds, table_rows, to_csv, to_markdown


def _rows(path):
    return table_rows([read_run(path)], ["tiny"])


def _verify_summary(run_dir):
    (path,) = run_dir.glob("*_verify/*_summary.json")
    return json.loads(path.read_text())


def test_rows_equal_the_summaries(finished_run):
    summary = json.loads((finished_run / "summary.json").read_text())
    verified = _verify_summary(finished_run)
    train_row, verify_row = _rows(finished_run)
    assert (train_row.standard, train_row.pgd, train_row.ibp, train_row.verified) == \
        (summary["nat_acc"], summary["pgd_acc"], summary["ibp_verified_acc"], summary["ibp_verified_acc"])
    assert train_row.training_seconds == summary["wall_seconds"] and train_row.samples == summary["test_samples"]
    assert train_row.crown is None and train_row.status == "finished" and train_row.eps == summary["eps"]
    got = (verify_row.standard, verify_row.pgd, verify_row.ibp, verify_row.crown, verify_row.alpha_crown,
           verify_row.verified, verify_row.samples, verify_row.seconds_per_sample)
    assert got == tuple(verified[k] for k in ("natural", "pgd", "ibp", "crown", "alpha-crown", "verified",
                                              "samples", "mean_seconds"))
    assert verify_row.eps == verified["settings"]["eps"] and "BaB 1 s" in verify_row.evaluation
    assert {r.preset for r in (train_row, verify_row)} == {"digits/cc-ibp*"}  # the preset, with overrides


def test_markdown_and_csv_hold_the_summary_numbers(finished_run):
    summary = json.loads((finished_run / "summary.json").read_text())
    rows = _rows(finished_run)
    header, _, first, _ = to_markdown(rows).splitlines()
    split = lambda line: [c.strip() for c in line.strip("|").split("|")]  # noqa: E731
    cells = dict(zip(split(header), split(first)))
    assert cells["standard"] == f"{100 * summary['nat_acc']:.2f}" and cells["PGD"] == f"{100 * summary['pgd_acc']:.2f}"
    assert cells["IBP"] == f"{100 * summary['ibp_verified_acc']:.2f}" and cells["CROWN"] == "—"
    assert cells["training time"] == format_seconds(summary["wall_seconds"]) and cells["preset"] == "digits/cc-ibp*"
    parsed = list(csv.DictReader(io.StringIO(to_csv(rows))))
    assert len(parsed) == 2 and float(parsed[0]["standard"]) == pytest.approx(100 * summary["nat_acc"], abs=1e-9)
    assert float(parsed[1]["verified"]) == pytest.approx(100 * _verify_summary(finished_run)["verified"], abs=1e-9)
    assert parsed[0]["crown"] == "" and float(parsed[0]["training_seconds"]) == summary["wall_seconds"]


def test_run_in_progress_reports_its_last_test_epoch(run_copy):
    metrics = run_copy / "metrics.jsonl"
    lines = metrics.read_text().splitlines()
    metrics.write_text("\n".join(lines[:2]) + "\n" + lines[2][:10])  # epoch 3 half written
    (run_copy / "summary.json").unlink()
    for path in run_copy.glob("*_verify/*_summary.json"):
        path.unlink()  # a verify still running
    epoch2 = json.loads(lines[1])
    train_row, verify_row = _rows(run_copy)
    assert (train_row.standard, train_row.pgd, train_row.ibp) == \
        (epoch2["test"]["nat_acc"], epoch2["test"]["adv_acc"], epoch2["test"]["ver_acc"])
    assert train_row.training_seconds == epoch2["time"] and train_row.status == "unfinished (running or stopped): epoch 2 of 3"
    assert "epoch 2" in train_row.evaluation and verify_row.status.endswith("verify unfinished")


def test_verify_row_leaves_out_stages_not_run(run_copy):
    (results,) = run_copy.glob("*_verify/*.jsonl")
    rows = [json.loads(ln) for ln in results.read_text().splitlines()]
    rows[0]["settings"]["methods"] = ["ibp"]
    results.write_text("".join(json.dumps(r) + "\n" for r in rows))
    _, verify_row = _rows(run_copy)
    assert verify_row.crown is None and verify_row.alpha_crown is None and verify_row.ibp is not None


def test_preset_recognised_from_config_yaml(finished_run):
    config = yaml.safe_load((finished_run / "config.yaml").read_text())
    assert preset_of(config) == "digits/cc-ibp*"
    from torchcert.config import config_to_dict, load_config
    from torchcert.train.config import TrainConfig

    assert preset_of(config_to_dict(load_config(TrainConfig, "mnist-0.1/cc-ibp-small"))) == "mnist-0.1/cc-ibp-small"
    assert preset_of({**config, "source": "my own recipe"}) == "custom" and preset_of({}) == "?"
    preset = config_to_dict(load_config(TrainConfig, "digits/cc-ibp", ["run.threads=2", "run.tensorboard=true"]))
    assert preset_of(preset) == "digits/cc-ibp"  # threads and loggers do not change the recipe
    assert preset_of({**preset, "run": {**preset["run"], "seed": 1}}) == "digits/cc-ibp*"
