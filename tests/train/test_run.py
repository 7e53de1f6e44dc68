"""Training runs on a tiny digits config: run folder contents, exact resumption, refusal to overwrite."""
import json

import pytest
import torch

pytest.importorskip("sklearn")

from torchcert.config import load_config  # noqa: E402
from torchcert.models import load_checkpoint  # noqa: E402
from torchcert.train import run as run_module  # noqa: E402
from torchcert.train.config import TrainConfig  # noqa: E402
from torchcert.train.run import batch_eps, train  # noqa: E402

TINY = ["data.train_limit=96", "data.test_limit=40", "data.batch_size=32", "run.epochs=3", "eps.start=1",
        "eps.length=2", "run.progress=false", "optim.lr_milestones=[2]", "attack.test_steps=2", "run.test_interval=2"]


def _config(*extra):
    return load_config(TrainConfig, "digits/cc-ibp", TINY + list(extra))


def test_run_folder_contents(tmp_path):
    result = train(_config(), tmp_path / "run", device="cpu")
    out = result.out_dir
    assert (out / "config.yaml").read_text().startswith("model:")
    lines = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    assert [ln["epoch"] for ln in lines] == [1, 2, 3] and "test" in lines[1] and "test" not in lines[0]
    assert lines[0]["lr"] == pytest.approx(2e-3) and lines[2]["lr"] == pytest.approx(4e-4)
    summary = json.loads((out / "summary.json").read_text())
    assert summary == result.summary and summary["test_samples"] == 40
    for key in ("nat_acc", "pgd_acc", "ibp_verified_acc"):
        assert 0.0 <= summary[key] <= 1.0
    assert summary["ibp_verified_acc"] <= summary["pgd_acc"] <= summary["nat_acc"] + 1e-9
    checkpoint = load_checkpoint(result.checkpoint)
    assert checkpoint["epoch"] == 3 and checkpoint["step"] == 9 and "optimizer" in checkpoint
    assert set(checkpoint["state_dict"]) == set(result.model.state_dict())


def test_existing_run_is_not_overwritten(tmp_path):
    train(_config("run.epochs=1"), tmp_path, device="cpu")
    with pytest.raises(ValueError, match="--resume"):
        train(_config("run.epochs=1"), tmp_path, device="cpu")
    with pytest.raises(ValueError, match="differs"):
        train(_config("run.epochs=2"), tmp_path, device="cpu", resume=True)


def test_killed_run_resumes_to_identical_weights(tmp_path, monkeypatch):
    cfg = _config()
    reference = train(cfg, tmp_path / "full", device="cpu").model.state_dict()

    calls, original_step = {"n": 0}, run_module.train_step

    def dying_step(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 8:  # killed in the middle of epoch 3 (3 batches per epoch)
            raise KeyboardInterrupt
        return original_step(*args, **kwargs)

    monkeypatch.setattr(run_module, "train_step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "killed", device="cpu")
    monkeypatch.setattr(run_module, "train_step", original_step)
    assert load_checkpoint(tmp_path / "killed" / "ckpt_last.pt")["epoch"] == 2
    resumed = train(cfg, tmp_path / "killed", device="cpu", resume=True)
    for name, value in reference.items():
        assert torch.equal(resumed.model.state_dict()[name], value), name
    epochs = [json.loads(ln)["epoch"] for ln in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3]


def test_batch_eps_ramp_train_mul_and_attack_factor():
    cfg = load_config(TrainConfig, "mnist-0.1/cc-ibp", ["attack.eps_factor=2.0"])
    first = batch_eps(cfg, 0, 1, 100)
    assert first.eps == 0.0 and not first.robust and first.reg  # start=1: only step 0 is natural
    late = batch_eps(cfg, 100 * 30, 31, 100)
    assert late.scheduled == pytest.approx(0.1) and late.eps == pytest.approx(0.2)  # train_mul 2
    assert late.attack_eps == pytest.approx(0.4) and not late.reg  # regulariser only in epochs 1..20
    fixed = batch_eps(load_config(TrainConfig, "mnist-0.1/cc-ibp", ["eps.fixed=true"]), 0, 1, 100)
    assert fixed.eps == pytest.approx(0.1) and fixed.robust


def test_run_folders_are_explicit_and_safe(tmp_path):
    """Another run's leftovers are refused, --resume needs a checkpoint, a failed start leaves no folder."""
    stale = tmp_path / "stale"
    stale.mkdir()
    (stale / "metrics.jsonl").write_text('{"epoch": 1}\n')
    with pytest.raises(ValueError, match="metrics.jsonl of another run"):
        train(_config("run.epochs=1"), stale, device="cpu")
    with pytest.raises(ValueError, match="nothing to resume"):
        train(_config("run.epochs=1"), tmp_path / "empty", device="cpu", resume=True)
    assert not (tmp_path / "empty").exists()
    with pytest.raises(FileNotFoundError):  # the dataset cannot load: no folder is left behind
        train(load_config(TrainConfig, "mnist-0.1/cc-ibp-small", ["run.epochs=1"]), tmp_path / "failed",
              data_dir=tmp_path / "no-mnist-here", device="cpu")
    assert not (tmp_path / "failed").exists()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        train(_config("run.epochs=1"), blocker / "run", device="cpu")
    only_config = tmp_path / "config-only"  # what an earlier failed start used to leave: reused
    only_config.mkdir()
    (only_config / "config.yaml").write_text("old")
    train(_config("run.epochs=1"), only_config, device="cpu")
    assert (only_config / "ckpt_last.pt").exists()


def test_epoch_log_labels_the_training_eps_and_skips_empty_tests(tmp_path, caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="torchcert"):
        train(_config("run.test_interval=5", "run.epochs=2"), tmp_path / "log", device="cpu")
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch ")]
    assert "train_eps" in lines[0] and "test" not in lines[0].split("train {")[1]
    assert "test {" in lines[1]
    record = json.loads((tmp_path / "log" / "metrics.jsonl").read_text().splitlines()[0])
    assert "train_eps" in record and "eps" not in record
