"""The generic config mechanism: nested frozen dataclasses, YAML, dotted overrides, clear errors."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal, Optional

import pytest

from torchcert.config import (
    ConfigError,
    apply_overrides,
    config_to_dict,
    dump_config,
    load_config,
    parse_override,
    preset_path,
)


@dataclass(frozen=True)
class Optim:
    lr: float = 5e-4
    milestones: tuple[int, ...] = (50, 60)
    name: Literal["adam", "sgd"] = "adam"


@dataclass(frozen=True)
class Toy:
    seed: int = 0
    note: Optional[str] = None
    clip: bool = True
    optim: Optim = field(default_factory=Optim)

    def validate(self) -> None:
        if self.optim.lr <= 0:
            raise ConfigError("optim.lr must be positive")


def test_defaults_and_nested_overrides():
    cfg = load_config(Toy, {"seed": 3}, ["optim.lr=1e-3", "optim.milestones=[8, 9]", "note=hi"])
    assert cfg == Toy(seed=3, note="hi", optim=Optim(lr=1e-3, milestones=(8, 9)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.seed = 1  # type: ignore[misc]


def test_yaml_file_round_trip(tmp_path):
    cfg = load_config(Toy, {}, ["optim.name=sgd", "seed=7"])
    path = tmp_path / "c.yaml"
    path.write_text(dump_config(cfg))
    assert load_config(Toy, path) == cfg
    assert config_to_dict(cfg)["optim"]["milestones"] == [50, 60]


def test_unknown_key_lists_valid_ones():
    with pytest.raises(ConfigError, match=r"optim\.lrr.*valid keys of optim: lr, milestones, name"):
        load_config(Toy, {}, ["optim.lrr=1"])
    with pytest.raises(ConfigError, match="valid keys: seed, note, clip, optim"):
        load_config(Toy, {"sed": 1})


@pytest.mark.parametrize(
    "override, message",
    [
        ("seed=abc", "seed: expected int"),
        ("clip=3", "clip: expected true/false"),
        ("optim.name=rmsprop", "not one of 'adam', 'sgd'"),
        ("optim.lr=-1", "must be positive"),
        ("seed", "not of the form"),
    ],
)
def test_bad_values_are_rejected(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(Toy, {}, [override])


def test_float_from_yaml_string_exponent():
    # YAML 1.1 parses "1e-3" (no dot) as a string; floats must still accept it.
    assert parse_override("optim.lr=1e-3")[1] == "1e-3"
    assert load_config(Toy, {}, ["optim.lr=1e-3"]).optim.lr == pytest.approx(1e-3)


def test_overrides_do_not_mutate_input():
    data = {"optim": {"lr": 1.0}}
    apply_overrides(data, ["optim.lr=2"])
    assert data == {"optim": {"lr": 1.0}}


def test_unknown_preset_lists_choices():
    with pytest.raises(ConfigError, match="unknown preset 'nope/none'"):
        preset_path("nope/none")
    with pytest.raises(ConfigError):
        preset_path("../config")
