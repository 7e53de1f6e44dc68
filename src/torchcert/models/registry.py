"""Model registry: every network is built by name with ``build_model``.

A factory has the signature ``factory(in_ch, in_dim, num_class, **kw) -> nn.Sequential``; its keyword
arguments (``width``, ``linear_size``, ...) are the only extra options ``build_model`` accepts.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

from torch import nn

Factory = Callable[..., nn.Sequential]

_MNIST, _CIFAR, _IMAGENET64 = (1, 28), (3, 32), (3, 64)


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: its factory and what it is meant for.

    ``input_shapes``: the (in_ch, in_dim) pairs the model is designed for (tests build every one).
    ``num_class``: the class count used when ``build_model`` gets ``num_class=None``.
    """

    name: str
    factory: Factory
    input_shapes: Tuple[Tuple[int, int], ...]
    num_class: int
    doc: str


_REGISTRY: Dict[str, ModelSpec] = {}


def register_model(
    name: str,
    *,
    input_shapes: Tuple[Tuple[int, int], ...] = (_MNIST, _CIFAR),
    num_class: int = 10,
) -> Callable[[Factory], Factory]:
    """Decorator registering ``factory`` under ``name`` (a name may be registered only once)."""

    def decorate(factory: Factory) -> Factory:
        if name in _REGISTRY:
            raise ValueError(f"model name {name!r} is already registered")
        doc = inspect.getdoc(factory) or ""
        _REGISTRY[name] = ModelSpec(name, factory, tuple(input_shapes), num_class, doc.split("\n")[0])
        return factory

    return decorate


def list_models() -> List[str]:
    """Sorted names of every registered model (aliases included)."""
    return sorted(_REGISTRY)


def model_spec(name: str) -> ModelSpec:
    """The registry entry of ``name``; ValueError listing the valid names if unknown."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(list_models())}")
    return _REGISTRY[name]


def model_options(name: str) -> Dict[str, object]:
    """Extra keyword options of model ``name`` with their defaults (e.g. ``{'width': 64, ...}``)."""
    params = inspect.signature(model_spec(name).factory).parameters
    return {k: p.default for k, p in params.items() if k not in ("in_ch", "in_dim", "num_class")}


def build_model(
    name: str, in_ch: int, in_dim: int, num_class: Optional[int] = None, **kw: object
) -> nn.Sequential:
    """Build model ``name`` for (B, in_ch, in_dim, in_dim) inputs and (B, num_class) logits.

    ``num_class=None`` uses the model's own default (10; 200 for the ImageNet variants, as in the
    original code). ``num_classes`` is accepted as a synonym (the original ``cnn_large`` keyword).
    Unknown names or options raise ValueError listing the valid ones.
    """
    spec = model_spec(name)
    num_class = _resolve_num_class(num_class, kw.pop("num_classes", None), spec.num_class)
    options = model_options(name)
    unknown = sorted(set(kw) - set(options))
    if unknown:
        valid = ", ".join(f"{k}={v!r}" for k, v in options.items()) or "none"
        raise ValueError(f"model {name!r} got unknown option(s) {unknown}; its options are: {valid}")
    for key, value in (("in_ch", in_ch), ("in_dim", in_dim), ("num_class", num_class), *kw.items()):
        _check_positive_int(name, key, value)
    return spec.factory(in_ch, in_dim, num_class, **kw)


def _resolve_num_class(num_class: Optional[int], synonym: object, default: int) -> int:
    if synonym is not None and num_class is not None and synonym != num_class:
        raise ValueError(f"num_class={num_class} and num_classes={synonym} disagree; give only one")
    chosen = num_class if num_class is not None else synonym
    return default if chosen is None else chosen  # type: ignore[return-value]


def _check_positive_int(name: str, key: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"model {name!r}: {key} must be a positive integer, got {value!r}")
