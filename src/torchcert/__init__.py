"""torchcert: certified training and verification of neural networks against L-infinity perturbations.

The public API (loaded lazily, so ``import torchcert`` and the CLI start fast)::

    build_model, load_checkpoint                      # models with the original state_dict keys
    load_dataset, dataset_info                         # uint8 datasets held on the device
    Box, margin_matrix, input_box                      # bound values and specifications
    ibp, crown, alpha_crown, capture_bn_stats          # bounds on C·f(x) over an input box
    pgd                                                # the original PGD attack
    ibp_loss, cc_ibp_loss, mtl_ibp_loss, exp_ibp_loss, sabr_box
    train, TrainConfig                                 # a training run from a config
    verify, verify_sample, VerifyResult, branch_and_bound   # per-sample cascade and complete verification
"""
from __future__ import annotations

import sys
import types
from importlib import import_module
from typing import Any, Dict

__version__ = "0.1.0"

_EXPORTS = {
    "build_model": "torchcert.models",
    "list_models": "torchcert.models",
    "load_checkpoint": "torchcert.models",
    "save_checkpoint": "torchcert.models",
    "load_dataset": "torchcert.data",
    "dataset_info": "torchcert.data",
    "Box": "torchcert.bounds",
    "margin_matrix": "torchcert.bounds",
    "input_box": "torchcert.bounds",
    "ibp": "torchcert.bounds",
    "crown": "torchcert.bounds",
    "alpha_crown": "torchcert.bounds",
    "capture_bn_stats": "torchcert.bounds",
    "pgd": "torchcert.attacks",
    "ibp_loss": "torchcert.losses",
    "cc_ibp_loss": "torchcert.losses",
    "mtl_ibp_loss": "torchcert.losses",
    "exp_ibp_loss": "torchcert.losses",
    "sabr_box": "torchcert.losses",
    "train": "torchcert.train",
    "TrainConfig": "torchcert.train",
    "verify": "torchcert.verify",
    "verify_sample": "torchcert.verify",
    "branch_and_bound": "torchcert.verify",
    "VerifyResult": "torchcert.verify",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'torchcert' has no attribute {name!r}")


#: top-level functions that share their name with a subpackage (``torchcert.train``, ``torchcert.verify``)
_SHADOWED = ("train", "verify")


def _function_property(name: str) -> property:
    """``torchcert.<name>`` is always the function. Importing the subpackage of the same name makes Python bind
    it on this module (``setattr``), which would shadow the function: the setter keeps that binding aside."""
    def get(module: types.ModuleType) -> Any:
        return getattr(import_module(_EXPORTS[name]), name)

    def keep(module: types.ModuleType, value: Any) -> None:
        module.__dict__.setdefault("_subpackages", {})[name] = value

    return property(get, keep)


class _Package(types.ModuleType):
    """This package's module type: the shadowed names resolve to the functions."""


for _name in _SHADOWED:
    setattr(_Package, _name, _function_property(_name))
sys.modules[__name__].__class__ = _Package
_subpackages: Dict[str, types.ModuleType] = {}


def __dir__() -> list[str]:
    return sorted(__all__)
