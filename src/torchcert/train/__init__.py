"""Training: the explicit loop, schedules, initialisation, regularisers, checkpoints and runs.

``from torchcert.train import train, TrainConfig, RunResult`` (imported lazily, so that loading the config
schema does not import the data, model and bound modules).
"""
from __future__ import annotations

from typing import Any

_LAZY = {"train": "run", "RunResult": "run", "TrainConfig": "config"}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
