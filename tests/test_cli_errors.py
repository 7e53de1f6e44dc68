"""Every expected failure of the command line is one line on stderr with exit code 2; Ctrl-C is a message."""
from __future__ import annotations

import argparse

import pytest
import torch

from torchcert import cli


def _error(capsys, argv) -> str:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"torchcert {argv[0]}: error: "), err
    return err


def test_yaml_syntax_errors_name_line_and_column(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  dataset: digits\n  bad: [1, 2\n")
    assert "line 4, column 1" in _error(capsys, ["train", str(bad), "--out", str(tmp_path / "r")])
    assert not (tmp_path / "r").exists()


def test_missing_yaml_path_says_no_such_file(tmp_path, capsys):
    assert "no such file" in _error(capsys, ["train", str(tmp_path / "none.yaml"), "--out", str(tmp_path / "r")])
    assert "unknown preset" in _error(capsys, ["train", "no/such-preset", "--out", str(tmp_path / "r")])


def test_bad_override_value(tmp_path, capsys):
    assert "not valid YAML" in _error(capsys, ["train", "digits/cc-ibp", "optim.lr=[1,", "--out", str(tmp_path)])


def test_corrupt_checkpoint_message_is_whole(tmp_path, capsys):
    good = tmp_path / "good.pt"
    torch.save({"state_dict": {"w": torch.zeros(3)}}, good)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(good.read_bytes()[:200])
    err = _error(capsys, ["verify", "--checkpoint", str(bad), "--dataset", "digits", "--model", "mlp",
                          "--eps", "0.1"])
    assert "corrupt or not a PyTorch checkpoint" in err and err.endswith(")") and len(err) < 400


def test_os_errors_and_interrupts_are_one_line(capsys):
    def disk_full(args):
        raise OSError(28, "No space left on device", "/data/run/metrics.jsonl")

    def interrupted(args):
        raise KeyboardInterrupt

    assert cli._run(argparse.Namespace(command="train", run=disk_full)) == 2
    assert capsys.readouterr().err.strip() == \
        "torchcert train: error: /data/run/metrics.jsonl: No space left on device"
    assert cli._run(argparse.Namespace(command="train", run=interrupted)) == 130
    assert capsys.readouterr().err.strip() == "torchcert train: interrupted; continue with --resume"


def test_every_command_takes_threads(capsys, monkeypatch):
    from torchcert import threads

    parser = cli.build_parser()
    for name, sub in parser._subparsers._group_actions[0].choices.items():
        assert any("--threads" in a.option_strings for a in sub._actions), name
    previous = torch.get_num_threads()
    try:
        monkeypatch.setattr(threads, "default_threads", lambda: 1)
        torch.set_num_threads(2)
        assert cli.main(["presets"]) == 0 and torch.get_num_threads() == 1
        assert cli.main(["presets", "--threads", "2"]) == 0 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["preset", "dataset", "model", "loss", "eps", "epochs"]
    assert any(line.split()[:3] == ["digits/cc-ibp", "digits", "cnn_small"] for line in table)
    with pytest.raises(SystemExit):
        cli.main(["presets", "--threads", "0"])


def test_progress_logs_lines_off_a_terminal(caplog):
    import logging

    from torchcert.progress import Progress

    with caplog.at_level(logging.INFO, logger="torchcert.progress"):
        bar = Progress(range(3), 3, "work", every=0.0, terminal=False)
        for i in bar:
            bar.update(loss=f"{i:.1f}")
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("work: 1/3 (33%)") and lines[-1].endswith("loss=2.0")


def test_default_threads_count_idle_cores():
    from torchcert.threads import busy_cores, default_threads

    assert default_threads(cores=2, busy=0.05) == 2
    assert default_threads(cores=2, busy=1.0) == 1 and default_threads(cores=2, busy=0.6) == 1
    assert default_threads(cores=16, busy=3.0) == 13 and default_threads(cores=1, busy=5.0) == 1
    assert 0.0 <= busy_cores(sample=0.05) <= 64
