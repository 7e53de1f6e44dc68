"""``torchcert losses`` and ``torchcert tuning-stats`` on the small trained digits network."""
from __future__ import annotations

import argparse
import json
import math

import pytest

from torchcert.commands import losses as losses_cmd
from torchcert.commands import tuning_stats as tuning_cmd


def _run(module, name, argv) -> int:
    parser = argparse.ArgumentParser()
    module.add_parser(parser.add_subparsers())
    args = parser.parse_args([name, *argv])
    return args.run(args)


def _base(checkpoint):
    return ["--checkpoint", str(checkpoint), "--dataset", "digits", "--model", "mlp", "--model-params",
            "width=32,depth=2", "--eps", "0.05", "--train-att-steps", "1", "--train-att-step-size", "10",
            "--attack-eps-factor", "2.0"]


def _losses(checkpoint, tmp_path, name, coeff, extra=()):
    out = tmp_path / f"{name}.json"
    argv = _base(checkpoint) + ["--end", "40", "--out", str(out)]
    for loss in ("ccibp", "mtlibp", "expibp", "sabr"):
        argv += [f"--{loss}-coeff", str(coeff)]
    assert _run(losses_cmd, "losses", [*argv, *extra]) == 0
    return json.loads(out.read_text())


def test_losses_identities(digits_checkpoint, tmp_path):
    at0 = _losses(digits_checkpoint, tmp_path, "zero", 0.0)
    at1 = _losses(digits_checkpoint, tmp_path, "one", 1.0)
    for values in (at0, at1):
        assert all(math.isfinite(v) for k, v in values.items() if k.endswith("_loss"))
        assert values["crown_loss"] <= values["ibp_loss"] + 1e-6  # max(IBP, CROWN) bounds are tighter
    # alpha = 1: every expressive loss is the IBP loss; alpha = 0: MTL and Exp are the training-attack loss
    for key in ("ccibp_loss", "mtlibp_loss", "expibp_loss"):
        assert at1[key] == pytest.approx(at1["ibp_loss"], rel=1e-5)
    assert at0["mtlibp_loss"] == pytest.approx(at0["expibp_loss"], rel=1e-5)
    # SABR with a full-size box (coeff 1) around the attack point is the IBP loss at eps * factor >= at eps
    assert at1["sabr_loss"] >= at1["ibp_loss"] - 1e-6
    assert at0["sabr_loss"] <= at1["sabr_loss"] + 1e-6


def test_tuning_stats_bab_loss_below_crown_loss(digits_checkpoint, tmp_path):
    out = tmp_path / "tuning.json"
    argv = _base(digits_checkpoint) + ["--end", "4", "--timeout", "0.2", "--loss", "cc-ibp", "--ccibp-coeff", "0.5",
                                       "--out", str(out), "--valid-share", "0.96"]
    assert _run(tuning_cmd, "tuning-stats", argv) == 0
    stats = json.loads(out.read_text())
    assert stats["bab_samples"] == 4 and stats["val_samples"] > 4 and 0.0 <= stats["val_bab_ok"] <= 1.0
    crown = _losses(digits_checkpoint, tmp_path, "crown", 0.5, ["--end", "4", "--valid-share", "0.96"])
    assert stats["val_bab_loss"] <= crown["crown_loss"] + 1e-6
    assert stats["val_bab_err_loss"] == pytest.approx(stats["val_ccibp_loss"] - stats["val_bab_loss"], abs=1e-6)


@pytest.mark.parametrize("module,name", [(losses_cmd, "losses"), (tuning_cmd, "tuning-stats")])
def test_bad_numbers_and_unwritable_outputs_fail_first(digits_checkpoint, tmp_path, module, name, capsys):
    base = _base(digits_checkpoint) + ["--end", "2"] + (["--loss", "cc-ibp"] if name == "tuning-stats" else [])
    eps = base.index("--eps") + 1
    with pytest.raises(ValueError, match="--eps must lie in"):
        _run(module, name, base[:eps] + ["-0.1"] + base[eps + 1:])
    with pytest.raises(ValueError, match="--batch-size"):
        _run(module, name, base + ["--batch-size", "0"])
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="cannot create the results folder"):
        _run(module, name, base + ["--out", str(blocker / "out.json")])
    assert capsys.readouterr().out == ""  # refused before computing anything


def test_losses_create_a_missing_output_folder_and_print_first(digits_checkpoint, tmp_path, capsys):
    out = tmp_path / "new" / "deeper" / "losses.json"
    assert _run(losses_cmd, "losses", _base(digits_checkpoint) + ["--end", "4", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "nat_loss" in printed and f"saved to {out}" in printed
    assert json.loads(out.read_text())["split"] == "test"
