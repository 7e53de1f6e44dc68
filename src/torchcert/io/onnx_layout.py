"""The layout operators of the ONNX import (Flatten, Reshape, Squeeze, Unsqueeze, Transpose, Identity, Constant)
and the helpers every handler shares. On constants they compute; on activations they only record the new shape,
which :func:`settle` applies when a layout-dependent operation reads it (a Flatten, or nothing)."""
from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np
import torch
from torch import nn

from .onnx import Activation, Converter, Value


def is_act(v: object) -> bool:
    return isinstance(v, Activation)


def constant_of(v: Optional[Value], what: str) -> np.ndarray:
    if not isinstance(v, np.ndarray):
        raise ValueError(f"{what} must be a constant (an initializer or computed from constants only)")
    return v


def float32_tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(a, dtype=np.float32))


def node_name(node) -> str:
    return f"{node.op_type} node {node.name or node.output[0]}"


def _relayout(conv: Converter, node, x: Activation, shape: Tuple[int, ...]) -> Activation:
    """An activation read with a new shape (C order unchanged), pending until an operation needs it
    (:func:`settle`); the batch dimension must stay first."""
    if int(np.prod(shape)) != int(np.prod(x.shape)) or not shape or shape[0] != 1:
        raise ValueError(f"{node_name(node)}: reshaping an activation of shape {x.shape} to {shape} must keep the "
                         "batch dimension first")
    real = x.real or x.shape
    return Activation(x.step, tuple(shape), None if tuple(shape) == real else real)


def settle(conv: Converter, node, x: Activation) -> Activation:
    """The activation with its pending layout applied: nothing when the module already produces that shape, an
    ``nn.Flatten`` for ``(1, n)``; any other reshape of an activation (an unflatten) is refused."""
    if x.real is None:
        return x
    if len(x.shape) == 2:
        return conv.emit(nn.Flatten(), [x], x.shape) if len(x.real) != 2 else Activation(x.step, x.shape)
    raise ValueError(f"{node_name(node)}: reads an activation of shape {x.real} reshaped to {x.shape}; supported "
                     "are reshapes to (batch, n) and reshapes undone before the next operation")


def _flatten(conv, node, ins, attrs):
    x, axis = ins[0], int(attrs.get("axis", 1))
    rank = x.ndim if isinstance(x, np.ndarray) else len(x.shape)
    axis = axis + rank if axis < 0 else axis
    shape = tuple(x.shape)
    new = (int(np.prod(shape[:axis])), int(np.prod(shape[axis:])))
    if isinstance(x, np.ndarray):
        return [x.reshape(new)]
    if axis not in (0, 1):
        raise ValueError(f"{node_name(node)}: Flatten with axis {axis} would merge features into the batch")
    return [_relayout(conv, node, x, (1, new[0] * new[1]))]


def _reshape_target(shape: Tuple[int, ...], spec: np.ndarray, allowzero: int) -> Tuple[int, ...]:
    """ONNX Reshape's target: 0 copies the input dimension (unless ``allowzero``), -1 is inferred."""
    dims = [int(shape[i]) if (d == 0 and not allowzero) else int(d) for i, d in enumerate(spec.tolist())]
    if -1 in dims:
        known = int(np.prod([d for d in dims if d != -1]))
        dims[dims.index(-1)] = int(np.prod(shape)) // max(known, 1)
    return tuple(dims)


def _reshape(conv, node, ins, attrs):
    x, spec = ins[0], constant_of(ins[1], f"{node_name(node)}: the target shape")
    target = _reshape_target(tuple(x.shape), spec, int(attrs.get("allowzero", 0)))
    if isinstance(x, np.ndarray):
        return [x.reshape(target)]
    return [_relayout(conv, node, x, target)]


def _axes(node, ins, attrs) -> List[int]:
    if len(ins) > 1 and ins[1] is not None:
        return [int(a) for a in constant_of(ins[1], f"{node_name(node)}: axes").tolist()]
    return [int(a) for a in attrs.get("axes", [])]


def _squeeze(conv, node, ins, attrs):
    x, axes = ins[0], _axes(node, ins, attrs)
    shape = list(x.shape)
    axes = [a + len(shape) if a < 0 else a for a in axes] or [i for i, d in enumerate(shape) if d == 1]
    new = tuple(d for i, d in enumerate(shape) if i not in axes)
    return [x.reshape(new) if isinstance(x, np.ndarray) else _relayout(conv, node, x, new)]


def _unsqueeze(conv, node, ins, attrs):
    x, axes = ins[0], _axes(node, ins, attrs)
    shape = list(x.shape)
    rank = len(shape) + len(axes)
    for a in sorted(a + rank if a < 0 else a for a in axes):
        shape.insert(a, 1)
    return [x.reshape(shape) if isinstance(x, np.ndarray) else _relayout(conv, node, x, tuple(shape))]


def _transpose(conv, node, ins, attrs):
    x = ins[0]
    perm = [int(p) for p in attrs.get("perm", list(range(len(x.shape)))[::-1])]
    if isinstance(x, np.ndarray):
        return [np.transpose(x, perm)]
    moved = [p for p in perm if x.shape[p] != 1]
    if moved != sorted(moved) or perm[0] != 0:  # a true permutation of the features
        raise ValueError(f"{node_name(node)}: transposing an activation (perm {perm}, shape {x.shape}) is "
                         "supported only when it moves unit dimensions")
    return [_relayout(conv, node, x, tuple(x.shape[p] for p in perm))]


def _identity(conv, node, ins, attrs):
    return [ins[0]]


def _constant(conv, node, ins, attrs):
    from onnx import numpy_helper

    if "value" in attrs:
        return [numpy_helper.to_array(attrs["value"])]
    for key in ("value_float", "value_int"):
        if key in attrs:
            return [np.array(attrs[key])]
    for key in ("value_floats", "value_ints"):
        if key in attrs:
            return [np.array(list(attrs[key]))]
    raise ValueError(f"{node_name(node)}: supported Constant attributes are value, value_float(s), value_int(s)")


#: layout operator -> handler
LAYOUT_OPS = {"Flatten": _flatten, "Reshape": _reshape, "Transpose": _transpose, "Squeeze": _squeeze,
              "Unsqueeze": _unsqueeze, "Identity": _identity, "Dropout": _identity, "Constant": _constant}
