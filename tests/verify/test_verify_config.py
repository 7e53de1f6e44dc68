"""The verification config: YAML + overrides, validation, the library ``verify(config=...)``, and BaB's deadline."""
from __future__ import annotations

import json
import time

import pytest
import torch

from torchcert.config import ConfigError, load_config
from torchcert.verify.config import VerifyConfig


def test_yaml_and_overrides_build_a_frozen_config(tmp_path):
    path = tmp_path / "v.yaml"
    path.write_text("methods: [ibp, crown]\nbatch_size: 500\npgd: {steps: 10}\nbab: {branching: widest}\n")
    cfg = load_config(VerifyConfig, path, ["alpha.iterations=7", "timeout=5"])
    assert cfg.methods == ("ibp", "crown") and cfg.batch_size == 500 and cfg.pgd.steps == 10
    assert cfg.pgd.step_size == 0.035 and cfg.alpha.iterations == 7 and cfg.bab.branching == "widest"
    assert cfg.bab_settings().timeout == 5.0
    with pytest.raises(Exception):
        cfg.timeout = 1.0  # frozen


@pytest.mark.parametrize("override,message", [("methods=[ibp,milp]", "methods: unknown"),
                                              ("bab.branching=random", "valid: fsb, sensitivity, widest"),
                                              ("batch_size=0", "batch_size"), ("bab.timeout=5", "top-level timeout"),
                                              ("pgd.stepz=1", "valid keys of pgd: steps, step_size")])
def test_bad_settings_name_the_valid_choices(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(VerifyConfig, {}, [override])


def test_show_config_prints_the_verification_config(capsys):
    from torchcert.cli import main

    assert main(["show-config", "--verify", "batch_size=3", "bab.branching=sensitivity"]) == 0
    text = capsys.readouterr().out
    assert "batch_size: 3" in text and "branching: sensitivity" in text and "methods:" in text


def test_library_verify_takes_the_config_and_arguments_win(digits_checkpoint, tmp_path):
    from torchcert import verify

    cfg = load_config(VerifyConfig, {}, ["methods=[ibp]", "pgd.steps=0", "batch_size=8"])
    out = tmp_path / "lib.jsonl"
    summary = verify(digits_checkpoint, dataset="digits", model="mlp", model_params="width=32,depth=2", eps=0.1,
                     end=10, out=out, config=cfg, timeout=3.0, progress=False)
    settings = summary["settings"]
    assert settings["methods"] == ["ibp"] and settings["pgd_steps"] == 0 and settings["timeout"] == 3.0
    assert "batch_size" not in settings and settings["bab"]["batch_size"] == 32  # sample batching changes no verdict
    # another batch size reuses every record (same settings header, nothing recomputed)
    before = out.read_text()
    again = verify(digits_checkpoint, dataset="digits", model="mlp", model_params="width=32,depth=2", eps=0.1,
                   end=10, out=out, config=cfg, timeout=3.0, batch_size=1, progress=False)
    assert out.read_text() == before and again["verified"] == summary["verified"]


def test_bab_honours_its_deadline_inside_the_root_bound():
    """A root bound asked for 10^6 gradient steps stops at the deadline (it checks between steps). The box is
    wide (the margin is negative somewhere) and attacks are off, so only the deadline can end the root bound."""
    from torchcert.bounds import Box, margin_matrix
    from torchcert.verify import BabSettings, branch_and_bound

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 40), torch.nn.ReLU(), torch.nn.Linear(40, 40), torch.nn.ReLU(),
                                torch.nn.Linear(40, 3)).double()
    x = torch.randn(1, 6, dtype=torch.float64)
    label = int(model(x).argmax())
    box = Box(x - 3.0, x + 3.0)
    settings = BabSettings(timeout=0.5, root_iterations=1_000_000, attacks=False)
    began = time.perf_counter()
    out = branch_and_bound(model, box, margin_matrix(torch.tensor([label]), 3).double(), settings)
    assert 0.5 < time.perf_counter() - began < 10 and out.status == "timeout" and out.domains == 1
    with pytest.raises(ValueError, match="valid: fsb"):
        branch_and_bound(model, box, margin_matrix(torch.tensor([label]), 3).double(),
                         BabSettings(branching="nope"))


@pytest.mark.parametrize("name", ["sensitivity", "widest"])
def test_every_branching_heuristic_decides_a_small_network(name):
    from torchcert.bounds import Box, margin_matrix
    from torchcert.verify import BabSettings, branch_and_bound

    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(2, 12), torch.nn.ReLU(), torch.nn.Linear(12, 2)).double()
    x = torch.zeros(1, 2, dtype=torch.float64)
    label = int(model(x).argmax())
    C = margin_matrix(torch.tensor([label]), 2).double()
    out = branch_and_bound(model, Box(x - 0.3, x + 0.3), C, BabSettings(timeout=20, branching=name))
    grid = torch.cartesian_prod(torch.linspace(-0.3, 0.3, 101), torch.linspace(-0.3, 0.3, 101)).double()
    with torch.no_grad():
        margin = float((model(grid) @ C[0].T).min())
    assert out.status in ("verified", "falsified")
    assert (out.status == "verified") == (margin > 0) or abs(margin) < 1e-3
    assert out.lower_bound <= margin + 1e-6  # exact leaves report the LP solver's optimum (its own tolerance)


def test_download_reaches_the_data_loader(digits_checkpoint, tmp_path, monkeypatch):
    """``verify(download=True)`` (the CLI's --download) is passed to the dataset loader."""
    import importlib

    setup_module = importlib.import_module("torchcert.verify.setup")
    seen = []
    real = setup_module.load_dataset

    def spy(name, split, data_dir=None, download=False, **kwargs):
        seen.append(download)
        return real(name, split, data_dir, download=download, **kwargs)

    monkeypatch.setattr(setup_module, "load_dataset", spy)
    from torchcert import verify

    verify(digits_checkpoint, dataset="digits", model="mlp", model_params="width=32,depth=2", eps=0.1, end=2,
           out=tmp_path / "d.jsonl", methods="ibp", download=True, progress=False)
    assert seen == [True]


def test_cli_reads_the_config_file_and_overrides_and_flags_win(digits_checkpoint, tmp_path):
    from torchcert.cli import main

    config = tmp_path / "v.yaml"
    config.write_text("methods: [ibp]\ntimeout: 7\npgd: {steps: 3}\n")
    out = tmp_path / "c.jsonl"
    argv = ["verify", "--checkpoint", str(digits_checkpoint), "--dataset", "digits", "--model", "mlp",
            "--model-params", "width=32,depth=2", "--eps", "0.1", "--end", "3", "--out", str(out), "--no-progress",
            "--config", str(config), "--timeout", "4", "pgd.step_size=0.5", "bab.branching=widest"]
    assert main(argv) == 0
    settings = json.loads(out.read_text().splitlines()[0])["settings"]
    assert settings["methods"] == ["ibp"] and settings["timeout"] == 4.0 and settings["pgd_steps"] == 3
    assert settings["pgd_step_size"] == 0.5 and settings["bab"]["branching"] == "widest"
