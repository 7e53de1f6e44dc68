"""The ``train`` and ``quickstart`` subcommands, driven through their own argparse parsers."""
import argparse
import json

import pytest

pytest.importorskip("sklearn")

from torchcert.commands import quickstart, train  # noqa: E402

TINY = ["data.train_limit=64", "data.test_limit=32", "data.batch_size=32", "run.epochs=2", "eps.start=1",
        "eps.length=1", "run.progress=false", "optim.lr_milestones=[2]", "attack.test_steps=1", "run.test_interval=1"]


def _run(module, argv):
    parser = argparse.ArgumentParser()
    module.add_parser(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.run(args)


def test_train_command_writes_run_folder_and_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    assert _run(train, ["train", "digits/cc-ibp", *TINY, "--out", str(out), "--device", "cpu"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["epochs"] == 2 and {"nat_acc", "pgd_acc", "ibp_verified_acc", "wall_seconds"} <= set(summary)
    assert (out / "ckpt_last.pt").exists() and (out / "config.yaml").exists()
    assert _run(train, ["train", "digits/cc-ibp", *TINY, "--out", str(out), "--device", "cpu", "--resume"]) == 0
    assert json.loads(capsys.readouterr().out)["ibp_verified_acc"] == pytest.approx(summary["ibp_verified_acc"])


def test_quickstart_prints_verified_accuracy_table(tmp_path, capsys):
    assert _run(quickstart, ["quickstart", *TINY, "--out", str(tmp_path / "qs")]) == 0
    text = capsys.readouterr().out
    for row in ("clean", "PGD", "verified (IBP)", "verified (CROWN)", "test split"):
        assert row in text
    assert _run(quickstart, ["quickstart", *TINY, "--out", str(tmp_path / "qs")]) == 0  # run twice: reused
    again = capsys.readouterr().out
    assert [ln for ln in again.splitlines() if "verified" in ln and "%" in ln] == \
        [ln for ln in text.splitlines() if "verified" in ln and "%" in ln]


def test_download_flag_reaches_the_dataset_loader(monkeypatch, tmp_path):
    """`torchcert train --download` asks load_dataset to fetch missing files (the fetch itself is tested in
    tests/data against a loopback server)."""
    from torchcert.train import run as run_module
    from torchcert.cli import main

    seen = []

    def fake_load_dataset(name, split, data_dir=None, device="cpu", download=False):
        seen.append((name, split, download))
        raise FileNotFoundError("stop here")

    monkeypatch.setattr(run_module, "load_dataset", fake_load_dataset)
    assert main(["train", "mnist-0.1/cc-ibp-small", "--out", str(tmp_path / "run"), "--download"]) == 2
    assert seen == [("mnist", "train", True)]


def test_residual_preset_trains_and_verifies_with_the_full_cascade(tmp_path, capsys):
    """digits/cc-ibp-resnet end to end: training (IBP init, regulariser, CC-IBP through the residual graph), then
    every stage of `torchcert verify`, branch and bound included."""
    from torchcert.cli import main

    out = tmp_path / "res"
    assert _run(train, ["train", "digits/cc-ibp-resnet", *TINY, "--out", str(out), "--device", "cpu"]) == 0
    capsys.readouterr()
    results = tmp_path / "res.jsonl"
    assert main(["verify", "--checkpoint", str(out / "ckpt_last.pt"), "--end", "20", "--timeout", "5", "--eps",
                 "0.001", "--no-progress", "--out", str(results)]) == 0
    records = [json.loads(line) for line in results.read_text().splitlines()[1:]]
    assert len(records) == 20 and {r["status"] for r in records} <= {"verified", "falsified", "timeout", "unknown"}
    assert all(r["verified"] <= r["pgd_ok"] <= r["clean_ok"] for r in records)
    assert any(r["method"] in ("ibp", "crown", "alpha", "bab") for r in records)
