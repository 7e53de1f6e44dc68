"""ONNX export: a network the bound engine reads -> an ONNX file any VNN-COMP tool reads (written with
``onnx.helper``; ``torch.onnx.export`` needs packages not available everywhere).

The operations come from the engine's own graph (:func:`torchcert.bounds.graph.operations`), so everything the
bounds support is exported the same way: ``nn.Linear`` -> Gemm, ``nn.Conv2d`` -> Conv, BatchNorm (eval) ->
BatchNormalization, ReLU -> Relu, flattening -> Flatten, pools -> AveragePool / MaxPool, constant padding -> Pad,
``ChannelAffine`` -> Mul + Add, a residual ``Merge`` -> Add / Sub, ``Concat`` -> Concat, Identity / Dropout ->
Identity. Optional normalisation ``(x - mean) / std`` per channel is put in front, so the file takes raw pixels.
Weights are written in float32; the input has a symbolic batch dimension.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

from torchcert.bounds.graph import operations
from torchcert.bounds.layers import _is_flatten, has_rule
from torchcert.bounds.rules.affine import ChannelAffine
from torchcert.bounds.rules.concat import Concat
from torchcert.bounds.rules.merge import Merge
from torchcert.bounds.rules.pad import ConstantPad

OPSET = 13


class _Writer:
    """Nodes and initializers of the graph being written."""

    def __init__(self) -> None:
        self.nodes: list = []
        self.inits: list = []

    def const(self, name: str, value: Union[torch.Tensor, np.ndarray], dtype=np.float32) -> str:
        from onnx import numpy_helper

        array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
        self.inits.append(numpy_helper.from_array(array.astype(dtype), name))
        return name

    def node(self, op: str, inputs: Sequence[str], output: str, **attrs) -> str:
        from onnx import helper

        self.nodes.append(helper.make_node(op, list(inputs), [output], name=output, **attrs))
        return output


def _pair(v) -> Tuple[int, int]:
    return tuple(v) if isinstance(v, (tuple, list)) else (int(v), int(v))


def _linear(w: _Writer, m: nn.Linear, x: str, out: str) -> str:
    bias = m.bias if m.bias is not None else torch.zeros(m.out_features)
    return w.node("Gemm", [x, w.const(out + ".W", m.weight), w.const(out + ".b", bias)], out, transB=1)


def _conv(w: _Writer, m: nn.Conv2d, x: str, out: str) -> str:
    if m.padding_mode != "zeros" or isinstance(m.padding, str):
        raise ValueError(f"export supports Conv2d with zero, integer padding; got {m}")
    ph, pw = _pair(m.padding)
    bias = m.bias if m.bias is not None else torch.zeros(m.out_channels)
    return w.node("Conv", [x, w.const(out + ".W", m.weight), w.const(out + ".b", bias)], out,
                  kernel_shape=list(m.kernel_size), strides=list(_pair(m.stride)), pads=[ph, pw, ph, pw],
                  dilations=list(_pair(m.dilation)), group=m.groups)


def _batchnorm(w: _Writer, m: nn.modules.batchnorm._BatchNorm, x: str, out: str) -> str:
    if m.running_mean is None:
        raise ValueError(f"export needs BatchNorm running statistics (eval mode): {m}")
    c = m.num_features
    gamma = m.weight if m.weight is not None else torch.ones(c)
    beta = m.bias if m.bias is not None else torch.zeros(c)
    names = [w.const(f"{out}.{k}", v) for k, v in (("scale", gamma), ("B", beta), ("mean", m.running_mean),
                                                     ("var", m.running_var))]
    return w.node("BatchNormalization", [x, *names], out, epsilon=float(m.eps))


def _pool(w: _Writer, m: nn.Module, x: str, out: str) -> str:
    kernel, padding = _pair(m.kernel_size), _pair(m.padding)
    stride = _pair(m.stride if m.stride is not None else m.kernel_size)
    if m.ceil_mode:
        raise ValueError(f"export supports pools with ceil_mode=False: {m}")
    attrs = dict(kernel_shape=list(kernel), strides=list(stride), pads=[*padding, *padding])
    if isinstance(m, nn.AvgPool2d):
        return w.node("AveragePool", [x], out, count_include_pad=int(m.count_include_pad), **attrs)
    if _pair(m.dilation) != (1, 1):
        raise ValueError(f"export supports MaxPool2d with dilation 1: {m}")
    return w.node("MaxPool", [x], out, **attrs)


def _pad(w: _Writer, m: nn.Module, x: str, out: str) -> str:
    left, right, top, bottom = m.sizes if isinstance(m, ConstantPad) else tuple(m.padding)
    pads = w.const(out + ".pads", np.array([0, 0, top, left, 0, 0, bottom, right]), np.int64)
    value = w.const(out + ".value", np.array(float(getattr(m, "value", 0.0))))
    return w.node("Pad", [x, pads, value], out, mode="constant")


def _affine(w: _Writer, m: ChannelAffine, x: str, out: str) -> str:
    scale, shift = m.constants()
    scaled = w.node("Mul", [x, w.const(out + ".scale", scale)], out + ".mul")
    return w.node("Add", [scaled, w.const(out + ".shift", shift)], out)


#: module type -> writer of its node(s); a single input
_SINGLE: Dict[type, Callable[[_Writer, nn.Module, str, str], str]] = {
    nn.Linear: _linear, nn.Conv2d: _conv, nn.BatchNorm1d: _batchnorm, nn.BatchNorm2d: _batchnorm,
    nn.ReLU: lambda w, m, x, out: w.node("Relu", [x], out),
    nn.AvgPool2d: _pool, nn.MaxPool2d: _pool, nn.ZeroPad2d: _pad, nn.ConstantPad2d: _pad, ConstantPad: _pad,
    nn.Identity: lambda w, m, x, out: w.node("Identity", [x], out),
    nn.Dropout: lambda w, m, x, out: w.node("Identity", [x], out),
    ChannelAffine: _affine,
}


def _write_op(w: _Writer, module: nn.Module, inputs: List[str], out: str) -> str:
    if isinstance(module, Merge):
        return w.node("Add" if module.sign > 0 else "Sub", inputs, out)
    if isinstance(module, Concat):
        return w.node("Concat", inputs, out, axis=1)
    if _is_flatten(module):
        return w.node("Flatten", inputs, out, axis=1)
    writer = _SINGLE.get(type(module))
    if writer is None:
        supported = sorted({k.__name__ for k in _SINGLE} | {"Merge", "Concat", "Flatten"})
        raise ValueError(f"export does not support {type(module).__name__}; supported: {', '.join(supported)}")
    return writer(w, module, inputs[0], out)


def export_onnx(model: nn.Module, in_shape: Sequence[int], path: Union[str, Path],
                mean: Optional[Sequence[float]] = None, std: Optional[Sequence[float]] = None) -> None:
    """Write ``model`` (eval mode; input ``(B, *in_shape)``) as ONNX to ``path`` (module docstring); with
    ``mean``/``std`` (one value per channel) the file computes ``model((x - mean) / std)``."""
    from onnx import TensorProto, checker, helper

    model = model.eval()
    w = _Writer()
    x = "input"
    if mean is not None and std is not None:
        shape = (1, len(mean)) + (1,) * (len(in_shape) - 1)
        x = w.node("Sub", [x, w.const("norm.mean", np.array(mean).reshape(shape))], "norm.centred")
        x = w.node("Div", [x, w.const("norm.std", np.array(std).reshape(shape))], "norm.out")
    names: List[str] = []
    with torch.no_grad():
        for i, (name, module, reads) in enumerate(operations(model, has_rule)):
            inputs = [names[r] if r >= 0 else x for r in reads]
            names.append(_write_op(w, module, inputs, f"op{i}.{name}" if name else f"op{i}"))
        outputs = model(torch.zeros((1, *in_shape), dtype=next(model.parameters()).dtype)).shape[1]
    final = w.node("Identity", [names[-1] if names else x], "output")
    graph = helper.make_graph(
        w.nodes, "torchcert", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", *in_shape])],
        [helper.make_tensor_value_info(final, TensorProto.FLOAT, ["batch", outputs])], w.inits)
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="torchcert")
    onnx_model.ir_version = min(onnx_model.ir_version, 8)
    checker.check_model(onnx_model)
    Path(path).write_bytes(onnx_model.SerializeToString())
