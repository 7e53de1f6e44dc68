"""The command line: help, preset listing, resolved configs and clear errors (run in-process)."""
from __future__ import annotations

import pytest
import yaml

from torchcert.cli import main

REQUIRED_PRESETS = [
    "mnist-0.1/cc-ibp", "mnist-0.1/mtl-ibp", "mnist-0.3/cc-ibp", "mnist-0.3/mtl-ibp",
    *(f"cifar10-{e}/{m}" for e in ("2_255", "8_255") for m in ("cc-ibp", "mtl-ibp", "exp-ibp", "sabr")),
    *(f"{d}-1_255/{m}" for d in ("tinyimagenet", "imagenet64") for m in ("cc-ibp", "mtl-ibp", "exp-ibp")),
    "digits/cc-ibp", "mnist-0.1/cc-ibp-small",
]


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("presets", "show-config", "vnnlib", "vnncomp", "export"):
        assert command in out


def test_presets_lists_every_original_command(capsys):
    assert main(["presets"]) == 0
    listed = capsys.readouterr().out.split()
    missing = [name for name in REQUIRED_PRESETS if name not in listed]
    assert not missing, f"presets missing: {missing}"


def test_show_config_applies_overrides(capsys):
    assert main(["show-config", "mnist-0.1/cc-ibp", "optim.lr=0.001", "run.seed=3"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["optim"]["lr"] == pytest.approx(1e-3)
    assert shown["run"]["seed"] == 3
    assert shown["method"]["loss"] == "cc-ibp"


def test_show_config_unknown_key_is_a_clear_error(capsys):
    assert main(["show-config", "mnist-0.1/cc-ibp", "optim.lrr=1"]) == 2
    err = capsys.readouterr().err
    assert "optim.lrr" in err and "lr" in err


def test_unknown_preset_names_the_choices(capsys):
    assert main(["show-config", "mnist-9/none"]) == 2
    assert "mnist-0.1/cc-ibp" in capsys.readouterr().err



def test_overrides_may_follow_options():
    from torchcert.cli import _merge_late_overrides, build_parser

    parser = build_parser()
    argv = ["train", "mnist-0.1/cc-ibp", "--out", "somewhere", "run.seed=4", "optim.lr=0.002"]
    args, extra = parser.parse_known_args(argv)
    _merge_late_overrides(parser, args, extra)
    assert args.out == "somewhere"
    assert "run.seed=4" in args.overrides and "optim.lr=0.002" in args.overrides


def test_unknown_flag_is_still_an_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["show-config", "mnist-0.1/cc-ibp", "--bogus"])
    assert exit_info.value.code == 2
    assert "--bogus" in capsys.readouterr().err
