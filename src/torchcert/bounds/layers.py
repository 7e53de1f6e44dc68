"""The network as a list of bound layers: its operations (``graph.operations``), a rule per module type.

A :class:`Layer` pairs a rule module (``rules.linear``, ``rules.conv``, ...) with the op that rule built
from the torch module (weights cast to the bound dtype, ``|W|`` cached), plus input/output feature
shapes. BatchNorm directly after a Linear/Conv2d is folded into it:
``W' = scale W``, ``b' = scale b + shift`` (per output channel).
"""
from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any, List, Optional, Tuple

import torch
from torch import nn

from .graph import operations
from .rules import affine, avgpool, batchnorm, conv, flatten, identity, linear, relu

#: module type -> rule module
RULES = {
    nn.Linear: linear,
    nn.Conv2d: conv,
    nn.BatchNorm1d: batchnorm,
    nn.BatchNorm2d: batchnorm,
    nn.ReLU: relu,
    nn.Flatten: flatten,
    nn.AvgPool2d: avgpool,
    nn.Identity: identity,
    nn.Dropout: identity,
    affine.ChannelAffine: affine,
}


@dataclass(frozen=True)
class Layer:
    """One step of the network: ``rule.ibp(op, c, r)``, ``rule.backward(op, A, offset, in_shape)``."""

    rule: ModuleType
    op: Any
    in_shape: Tuple[int, ...]
    out_shape: Tuple[int, ...]
    name: str


def _is_flatten(module: nn.Module) -> bool:
    named = type(module).__name__ == "Flatten" or getattr(module, "is_flatten", False)
    return named and next(iter(module.parameters()), None) is None


def has_rule(module: nn.Module) -> bool:
    """Whether the table has a rule for ``module``'s type."""
    return any(type(module) is kind for kind in RULES) or _is_flatten(module)


def rule_for(module: nn.Module) -> ModuleType:
    """The rule for ``module``; ValueError naming it and the supported types otherwise."""
    for kind, rule in RULES.items():
        if type(module) is kind:
            return rule
    if _is_flatten(module):
        return flatten
    supported = ", ".join(sorted({k.__name__ for k in RULES} | {"Flatten (any parameter-free)"}))
    raise ValueError(f"bounds do not support module {module!r} ({type(module).__name__}); "
                     f"supported: {supported}, nested in nn.Sequential")


def _fold(previous: Layer, bn: batchnorm.ScaleOp) -> Layer:
    """Fold a per-channel affine map into the preceding Linear/Conv2d layer."""
    op = previous.op
    scale = bn.scale.view((-1,) + (1,) * (op.weight.dim() - 1))
    weight, bias = op.weight * scale, op.bias * bn.scale + bn.shift
    if previous.rule is linear:
        new = linear.make(weight, bias)
    else:
        new = conv.make(weight, bias, op.stride, op.padding, op.dilation, op.groups)
    return Layer(previous.rule, new, previous.in_shape, previous.out_shape, previous.name)


def build_layers(model: nn.Module, in_shape: Tuple[int, ...], dtype: torch.dtype,
                 bn_stats: Optional[dict] = None, fold_bn: bool = True) -> List[Layer]:
    """Layer list of ``model`` for inputs of feature shape ``in_shape`` (no batch dimension); BatchNorm is
    kept as its own layer when ``fold_bn`` is False (the operations as the module runs them)."""
    layers: List[Layer] = []
    shape = tuple(in_shape)
    for name, module in operations(model, has_rule):
        rule = rule_for(module)
        if rule is identity:
            continue
        if rule is batchnorm:
            op = batchnorm.from_module(module, shape, dtype, bn_stats)
            if fold_bn and layers and layers[-1].rule in (linear, conv):
                layers[-1] = _fold(layers[-1], op)
                continue
        else:
            op = rule.from_module(module, shape, dtype)
        out_shape = rule.output_shape(op, shape)
        layers.append(Layer(rule, op, shape, out_shape, name))
        shape = out_shape
    return layers
