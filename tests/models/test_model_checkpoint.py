"""Checkpoint I/O: tensor-only round trip, safe refusal of pickled objects, clear errors."""
from __future__ import annotations

import os
import pickle

import pytest
import torch

from torchcert.models import (
    CheckpointError,
    build_model,
    load_checkpoint,
    load_state_dict_strict,
    save_checkpoint,
)


class Payload:
    """A custom class: weights_only loading must refuse it."""

    def __reduce__(self):  # would run a command if unpickled unsafely
        return (os.system, ("echo unsafe",))


def _model(seed=0, **kw):
    torch.manual_seed(seed)
    return build_model("cnn_7layer_bn2", 1, 8, **({"width": 2, "linear_size": 4} | kw))


def test_round_trip_original_format(tmp_path):
    model = _model(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.rand(4, 1, 8, 8)).sum().backward()
    opt.step()
    path = save_checkpoint(tmp_path / "ckpt_last", model.state_dict(), opt.state_dict(), epoch=7, best=[1.5, 2.0, 3])
    ckpt = load_checkpoint(path)
    assert set(ckpt) == {"state_dict", "optimizer", "epoch", "best"} and ckpt["epoch"] == 7
    other = _model(1)
    load_state_dict_strict(other, ckpt["state_dict"])
    for key, value in model.state_dict().items():
        assert torch.equal(other.state_dict()[key], value), key
    fresh = torch.optim.Adam(other.parameters(), lr=1e-3)
    fresh.load_state_dict(ckpt["optimizer"])
    assert fresh.state_dict()["state"][0]["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt_last"]  # no temporary file left


def test_save_without_optimizer_omits_the_key(tmp_path):
    path = save_checkpoint(tmp_path / "sub" / "c.pt", _model().state_dict())
    assert set(load_checkpoint(path)) == {"state_dict", "epoch"}


def test_save_refuses_values_that_would_not_load(tmp_path):
    with pytest.raises(ValueError, match="Payload"):
        save_checkpoint(tmp_path / "c.pt", _model().state_dict(), extra=Payload())
    assert not list(tmp_path.iterdir())


def test_save_overwrites_atomically(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, _model(0).state_dict(), epoch=1)
    save_checkpoint(path, _model(1).state_dict(), epoch=2)
    assert load_checkpoint(path)["epoch"] == 2 and len(list(tmp_path.iterdir())) == 1


def test_bare_state_dict_and_dataparallel_prefix(tmp_path):
    model = _model()
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, tmp_path / "bare.pt")
    ckpt = load_checkpoint(tmp_path / "bare.pt")
    assert set(ckpt) == {"state_dict"} and list(ckpt["state_dict"]) == list(model.state_dict())
    load_state_dict_strict(_model(1), ckpt["state_dict"])


def test_pickled_object_is_refused_for_safety(tmp_path, capfd):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": _model().state_dict(), "epoch": 1, "note": Payload()}, path)
    with pytest.raises(CheckpointError, match="refused for safety.*weights_only=False.*save_checkpoint") as info:
        load_checkpoint(path)
    assert "system" in str(info.value)  # names the refused global
    assert "unsafe" not in capfd.readouterr().out


def test_corrupt_file(tmp_path):
    good = save_checkpoint(tmp_path / "good.pt", _model().state_dict())
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:200])
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all" * 10)
    for path in (truncated, garbage):
        with pytest.raises(CheckpointError, match="corrupt or not a PyTorch checkpoint"):
            load_checkpoint(path)


def test_not_a_checkpoint(tmp_path):
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="expected a dict with a 'state_dict'"):
        load_checkpoint(tmp_path / "list.pt")


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="not found") as info:
        load_checkpoint(tmp_path / "nope.pt")
    assert isinstance(info.value, FileNotFoundError)


def test_mismatch_names_missing_unexpected_and_shapes():
    state = _model().state_dict()
    state.pop("19.bias")
    state["20.weight"] = torch.zeros(3)
    state["16.weight"] = torch.zeros(4, 5)
    with pytest.raises(CheckpointError) as info:
        load_state_dict_strict(_model(), state)
    message = str(info.value)
    assert "missing keys ['19.bias']" in message
    assert "unexpected keys ['20.weight']" in message
    assert "16.weight: expected (4, 64), got (4, 5)" in message


def test_width_mismatch_is_reported_as_shapes():
    with pytest.raises(CheckpointError, match=r"0.weight: expected \(2, 1, 3, 3\), got \(3, 1, 3, 3\)"):
        load_state_dict_strict(_model(), _model(width=3).state_dict())


def test_missing_num_batches_tracked_is_tolerated():
    source = _model(0)
    state = {k: v for k, v in source.state_dict().items() if not k.endswith("num_batches_tracked")}
    target = _model(1)
    load_state_dict_strict(target, state)
    assert torch.equal(target[0].weight, source[0].weight)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_plain_pickle_is_refused_with_a_checkpoint_error(tmp_path):
    """A plain (non-torch) pickle is not a checkpoint: CheckpointError, never a raw pickle error."""
    path = tmp_path / "plain.pkl"
    with open(path, "wb") as handle:
        pickle.dump({"a": 1}, handle)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
