"""Configuration: nested frozen dataclasses built from YAML presets plus dotted ``key=value`` overrides.

The mechanism here is generic over the schema (see ``torchcert.train.config`` for the training schema):

    cfg = load_config(TrainConfig, "mnist-0.1/cc-ibp", ["optim.lr=1e-3", "run.seed=1"])

Unknown keys are errors that list the valid ones; values are parsed with ``yaml.safe_load`` and checked against
the field's type, so nothing from a config is ever executed.
"""
from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, Iterable, Mapping, TypeVar, Union

import yaml

T = TypeVar("T")
PRESET_ROOT = Path(__file__).resolve().parent / "presets"


class ConfigError(ValueError):
    """A configuration that cannot be built: unknown key, wrong type, bad value or missing preset."""


def list_presets() -> list[str]:
    """Names of the shipped presets, e.g. ``mnist-0.1/cc-ibp`` (path under presets/ without ``.yaml``)."""
    return sorted(p.relative_to(PRESET_ROOT).with_suffix("").as_posix() for p in PRESET_ROOT.rglob("*.yaml"))


def preset_path(name: str) -> Path:
    """The YAML file of preset ``name``; ConfigError listing the presets when there is none."""
    path = PRESET_ROOT / f"{name}.yaml"
    if ".." in Path(name).parts or not path.is_file():
        raise ConfigError(f"unknown preset {name!r}; available presets: {', '.join(list_presets()) or '(none)'}")
    return path


def read_source(source: Union[str, Path, Mapping[str, Any]]) -> dict[str, Any]:
    """A raw nested dict from a preset name, a YAML file path or a mapping."""
    if isinstance(source, Mapping):
        return dict(source)
    path = Path(source)
    if path.suffix in (".yaml", ".yml") and not path.is_file():
        raise ConfigError(f"{path}: no such file (a YAML config path; presets are named like digits/cc-ibp)")
    if not path.is_file():
        path = preset_path(str(source))
    data = _load_yaml(path.read_text(), str(path))
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level of a config must be a mapping, got {type(data).__name__}")
    return data


def _load_yaml(text: str, where: str) -> Any:
    """``yaml.safe_load`` whose syntax errors name the file, line and column in one line."""
    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        place = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "?"
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{where}: YAML syntax error at {place}: {problem}") from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"optim.lr=1e-3"`` -> (["optim", "lr"], 0.001); the value is parsed as YAML (so ``[8, 9]`` is a list)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r} is not of the form dotted.key=value")
    try:
        return key.strip().split("."), yaml.safe_load(value)
    except yaml.YAMLError as err:
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"override {text!r}: the value is not valid YAML ({problem})") from None


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """A copy of ``data`` with every dotted override set (intermediate mappings are created)."""
    result = _deep_copy(data)
    for text in overrides:
        keys, value = parse_override(text)
        node = result
        for key in keys[:-1]:
            child = node.get(key)
            if not isinstance(child, dict):
                child = node[key] = {}
            node = child
        node[keys[-1]] = value
    return result


def load_config(cls: type[T], source: Union[str, Path, Mapping[str, Any]] = (), overrides: Iterable[str] = ()) -> T:
    """Build ``cls`` from a preset/YAML/mapping and overrides, then run its ``validate()`` if it has one."""
    data = read_source(source) if source != () else {}
    config = from_dict(cls, apply_overrides(data, overrides))
    validate = getattr(config, "validate", None)
    if callable(validate):
        validate()
    return config


def from_dict(cls: type[T], data: Mapping[str, Any], where: str = "") -> T:
    """Recursively build dataclass ``cls`` from ``data``; unknown keys raise ConfigError naming the valid ones."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(_join(where, k) for k in unknown)}; valid keys"
            f"{' of ' + where if where else ''}: {', '.join(fields)}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {name: _coerce(hints[name], value, _join(where, name)) for name, value in data.items()}
    return cls(**kwargs)


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain nested dict of a config dataclass (tuples become lists), ready for YAML/JSON."""
    return _plain(dataclasses.asdict(config))


def dump_config(config: Any) -> str:
    """YAML text of a config, with keys in declaration order."""
    return yaml.safe_dump(config_to_dict(config), sort_keys=False)


def _coerce(hint: Any, value: Any, where: str) -> Any:
    """Check/convert ``value`` against the type hint ``hint``; ConfigError with the dotted key on mismatch."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value if value is not None else {}, where)
    if origin is Union:
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: {value!r} matches none of {hint}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            value = [value]
        item = args[0] if args else Any
        return tuple(_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict or hint is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    return _coerce_scalar(hint, value, where)


def _coerce_scalar(hint: Any, value: Any, where: str) -> Any:
    if hint is Any:
        return value
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):
        try:
            return float(value)  # YAML 1.1 reads "1e-3" as a string
        except ValueError:
            pass
    if hint is bool and not isinstance(value, bool):
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if hint is int and isinstance(value, bool):
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if isinstance(hint, type) and not isinstance(value, hint):
        raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _deep_copy(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in data.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
