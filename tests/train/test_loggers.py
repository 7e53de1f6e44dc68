"""TensorBoard and Weights & Biases logging of a real (tiny) run: what they hold equals metrics.jsonl."""
from __future__ import annotations

import json
import math

import pytest

from torchcert.config import load_config
from torchcert.train.config import TrainConfig
from torchcert.train.loggers import scalars
from torchcert.train.run import train

pytest.importorskip("sklearn")
TINY = ["data.train_limit=96", "data.test_limit=40", "data.batch_size=32", "run.epochs=3", "eps.start=1",
        "eps.length=2", "run.progress=false", "optim.lr_milestones=[2]", "attack.test_steps=2", "run.test_interval=2"]


def _records(out):
    return [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]


def test_scalars_flatten_an_epoch_record():
    record = {"epoch": 2, "train_eps": 0.05, "lr": 1e-3, "epoch_seconds": 1.5, "time": 3.0,
              "train": {"nat_acc": 0.5, "ver_loss": float("nan")}, "test": {"adv_acc": 0.25}}
    assert scalars(record) == {"train/nat_acc": 0.5, "test/adv_acc": 0.25, "train_eps": 0.05, "lr": 1e-3,
                               "epoch_seconds": 1.5}


def test_tensorboard_scalars_equal_metrics_jsonl(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    train(load_config(TrainConfig, "digits/cc-ibp", TINY + ["run.tensorboard=true"]), out, device="cpu")
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    records = _records(out)
    expected = {}
    for record in records:
        for key, value in scalars(record).items():
            expected.setdefault(key, []).append((record["epoch"], value))
    assert set(events.Tags()["scalars"]) == set(expected) and "test/ver_acc" in expected
    for key, points in expected.items():
        got = [(e.step, e.value) for e in events.Scalars(key)]
        assert [s for s, _ in got] == [s for s, _ in points], key
        assert all(math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12) for (_, a), (_, b) in zip(got, points)), key


def test_wandb_offline_run_holds_every_epoch(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for name in ("WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):  # nothing written outside tmp_path
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    out = tmp_path / "run"
    overrides = ["run.wandb.project=torchcert-test", "run.wandb.mode=offline"]
    train(load_config(TrainConfig, "digits/cc-ibp", TINY + overrides), out, device="cpu")
    import wandb

    wandb.teardown()  # the run file is written by wandb's service process: stop it so that all is on disk
    run_id = (out / "wandb" / "run_id").read_text().strip()
    (run_file,) = (out / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb")
    data = run_file.read_bytes()  # protobuf records; keys and JSON-encoded values are stored as plain strings
    for record in _records(out):
        for key, value in scalars(record).items():
            assert key.encode() in data and json.dumps(value).encode() in data, (record["epoch"], key)
    assert b'"wandb":{"project":"torchcert-test","name":null,"mode":"offline"}' in data  # the config is logged
    train(load_config(TrainConfig, "digits/cc-ibp", TINY + overrides), out, device="cpu", resume=True)
    wandb.teardown()
    # offline-run-<time>-<id>, with "-<n>" appended when a second folder starts within the same second
    ids = {p.name.split("-")[3] for p in (out / "wandb").glob("offline-run-*")}
    assert ids == {run_id} and (out / "wandb" / "run_id").read_text().strip() == run_id  # the same W&B run


def test_wandb_asked_for_but_missing_is_an_error(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "wandb", None)
    config = load_config(TrainConfig, "digits/cc-ibp", TINY + ["run.wandb.project=p"])
    with pytest.raises(ValueError, match=r"pip install wandb"):
        train(config, tmp_path / "run", device="cpu")
