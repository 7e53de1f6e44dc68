"""One small function per ONNX operator: ``(converter, node, inputs, attributes) -> output values``.

Inputs are :class:`~.onnx.Activation` s or constants (NumPy arrays; ``None`` for an omitted optional input).
Operations on constants only are computed here (constant folding); operations on activations emit modules of the
bound engine's rule table. Shapes are full ONNX shapes with the batch first (taken as 1); only steps that keep
the batch dimension first are supported.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from torchcert.bounds.rules.affine import ChannelAffine
from torchcert.bounds.rules.concat import Concat
from torchcert.bounds.rules.merge import Merge
from torchcert.bounds.rules.pad import ConstantPad

from .onnx import Activation, Converter, Value
from .onnx_layout import LAYOUT_OPS, constant_of, float32_tensor, is_act, node_name

Handler = Callable[[Converter, object, List[Optional[Value]], Dict[str, object]], List[Value]]


# ---- elementwise arithmetic: Add, Sub, Mul, Div ----------------------------------------------------------------

_NUMPY = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}


def _per_channel(c: np.ndarray, shape: Tuple[int, ...], node) -> torch.Tensor:
    """A constant broadcast against an activation of shape ``(1, *f)`` as ``ChannelAffine`` takes it (float64):
    a scalar, a per-feature ``(F,)`` vector, or a per-channel ``(C, 1, 1)`` one on maps; refused otherwise."""
    try:
        full = np.broadcast_to(c.astype(np.float64), shape)
    except ValueError:
        full = None
    if full is None or np.broadcast_shapes(c.shape, shape) != tuple(shape):
        raise ValueError(f"{node_name(node)}: a constant of shape {c.shape} does not broadcast to the activation "
                         f"{shape} without enlarging it")
    if np.all(full == full.flat[0]):
        return torch.tensor(float(full.flat[0]), dtype=torch.float64)
    if len(shape) == 2:
        return torch.from_numpy(full.reshape(-1).copy())
    if len(shape) == 4 and np.all(full == full[:, :, :1, :1]):
        return torch.from_numpy(full[0, :, :1, :1].copy())
    raise ValueError(f"{node_name(node)}: an elementwise constant of shape {c.shape} on an activation of shape "
                     f"{shape} is supported only as a scalar, per feature or per channel")


def _sole_reader(conv: Converter, x: Activation) -> bool:
    """Whether exactly one node reads the activation (under any of its names)."""
    names = [n for n, v in conv.values.items() if isinstance(v, Activation) and v.step == x.step]
    return x.step >= 0 and sum(conv.readers.get(n, 0) for n in names) == 1


def _add_constant(conv: Converter, node, x: Activation, c: np.ndarray) -> Activation:
    """``x + c``: into the bias of the Linear/Conv2d producing ``x`` when nothing else reads it and the float32 sum
    is exact (so the converted network is the file's function), else a ``ChannelAffine(1, c)`` (float64 constants)."""
    shift = _per_channel(c, x.shape, node)
    producer = conv.steps[x.step] if x.step >= 0 else None
    if isinstance(producer, (nn.Linear, nn.Conv2d)) and producer.bias is not None and _sole_reader(conv, x) \
            and shift.dim() <= 1 and (shift.dim() == 0 or shift.shape[0] == producer.bias.shape[0]):
        total = producer.bias.detach().double() + shift.reshape(-1)
        if torch.equal(total.float().double(), total):
            with torch.no_grad():
                producer.bias.copy_(total.float())
            return x
    one = torch.ones((), dtype=torch.float64)
    return conv.emit(ChannelAffine(one, _shaped(shift, x.shape)), [x], x.shape)


def _shaped(t: torch.Tensor, shape: Tuple[int, ...]) -> torch.Tensor:
    """A per-channel vector of a map as ``(C, 1, 1)`` (how it broadcasts in ``ChannelAffine.forward``)."""
    return t.view(-1, 1, 1) if t.dim() == 1 and len(shape) == 4 else t


def _scale(conv: Converter, node, x: Activation, c: np.ndarray) -> Activation:
    s = _shaped(_per_channel(c, x.shape, node), x.shape)
    return conv.emit(ChannelAffine(s, torch.zeros((), dtype=torch.float64)), [x], x.shape)


def _arith(op: str) -> Handler:
    def handle(conv, node, ins, attrs):
        a, b = ins
        if not is_act(a) and not is_act(b):
            return [_NUMPY[op](a, b)]
        if is_act(a) and is_act(b):
            if op not in ("Add", "Sub") or a.shape != b.shape:
                raise ValueError(f"{node_name(node)}: of two activations only Add/Sub of equal shapes (a residual "
                                 f"connection) is supported; got shapes {a.shape} and {b.shape}")
            return [conv.emit(Merge(1.0 if op == "Add" else -1.0), [a, b], a.shape)]
        x, c, x_first = (a, b, True) if is_act(a) else (b, a, False)
        c = c.astype(np.float64)
        if op == "Add" or (op == "Sub" and x_first):
            return [_add_constant(conv, node, x, c if op == "Add" else -c)]
        if op == "Sub":  # c - x
            shift = _shaped(_per_channel(c, x.shape, node), x.shape)
            return [conv.emit(ChannelAffine(-torch.ones((), dtype=torch.float64), shift), [x], x.shape)]
        if op == "Mul":
            return [_scale(conv, node, x, c)]
        if not x_first:
            raise ValueError(f"{node_name(node)}: dividing a constant by an activation is not supported")
        return [_scale(conv, node, x, 1.0 / c)]
    return handle


# ---- affine layers: Gemm, MatMul, Conv, BatchNormalization -----------------------------------------------------

def _linear(weight: np.ndarray, bias: Optional[np.ndarray]) -> nn.Linear:
    """``nn.Linear`` with ``weight (out, in)`` and ``bias (out,)`` (zeros when absent: a later Add folds in)."""
    layer = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        layer.weight.copy_(float32_tensor(weight))
        layer.bias.copy_(float32_tensor(bias) if bias is not None else torch.zeros(weight.shape[0]))
    return layer


def _exact32(a: np.ndarray) -> bool:
    return bool(np.array_equal(a.astype(np.float32).astype(np.float64), a))


def _gemm(conv, node, ins, attrs):
    """``Y = alpha op(A) op(B) + beta C`` with ``A`` the activation ``(1, in)``: one Linear with
    ``W = alpha op(B)^T``, ``b = beta C`` when those are exact in float32, else a Linear ``op(B)^T`` followed by a
    ``ChannelAffine(alpha, beta C)`` (float64: the products of float32 values are exact)."""
    a, b = ins[0], constant_of(ins[1], f"{node_name(node)}: B")
    if not is_act(a) or len(a.shape) != 2 or int(attrs.get("transA", 0)):
        raise ValueError(f"{node_name(node)}: supported is Gemm of a (batch, features) activation A (transA=0) "
                         "by a constant B")
    w = (b if int(attrs.get("transB", 0)) else b.T).astype(np.float64)
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    bias = np.zeros(w.shape[0])
    if len(ins) > 2 and ins[2] is not None:
        c = constant_of(ins[2], f"{node_name(node)}: C").astype(np.float64)
        bias = np.broadcast_to(c, (1, w.shape[0])).reshape(-1) * beta
    if _exact32(w * alpha) and _exact32(bias):
        return [conv.emit(_linear(w * alpha, bias), [a], (1, w.shape[0]))]
    out = conv.emit(_linear(w, None), [a], (1, w.shape[0]))
    affine = ChannelAffine(torch.tensor(alpha, dtype=torch.float64), torch.from_numpy(bias.copy()))
    return [conv.emit(affine, [out], out.shape)]


def _matmul(conv, node, ins, attrs):
    a, b = ins
    if not is_act(a) and not is_act(b):
        return [np.matmul(a, b)]
    if conv.unbatched and is_act(b) and not is_act(a) and a.ndim == 2 and b.shape == (1, a.shape[1]):
        return [conv.emit(_linear(a, None), [b], (1, a.shape[0]))]  # W x of an unbatched vector x
    if not is_act(a) or is_act(b) or len(a.shape) != 2 or b.ndim != 2:
        raise ValueError(f"{node_name(node)}: supported is MatMul of a (batch, features) activation by a constant "
                         "matrix (or a constant matrix by a vector input without batch dimension)")
    return [conv.emit(_linear(b.T, None), [a], (1, b.shape[1]))]


def _pairs(values: Sequence[int], name: str, node) -> Tuple[int, int]:
    if len(values) != 2:
        raise ValueError(f"{node_name(node)}: {name} {list(values)}: only 2-D (N, C, H, W) operations are supported")
    return int(values[0]), int(values[1])


def _padding(node, attrs) -> Tuple[int, int, int, int]:
    """ONNX ``pads = [top, left, bottom, right]`` (auto_pad NOTSET/VALID only)."""
    auto = attrs.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else str(auto)
    if auto not in ("NOTSET", "VALID"):
        raise ValueError(f"{node_name(node)}: auto_pad {auto} is not supported (NOTSET or VALID; give pads)")
    pads = [int(p) for p in attrs.get("pads", [0, 0, 0, 0])]
    if len(pads) != 4 or min(pads) < 0:
        raise ValueError(f"{node_name(node)}: pads {pads}: non-negative 2-D pads are supported")
    return tuple(pads)


def _pad_first(conv: Converter, x: Activation, pads: Tuple[int, int, int, int], value: float) -> Activation:
    """An explicit ``ConstantPad`` for asymmetric pads; the activation unchanged for none."""
    top, left, bottom, right = pads
    if not any(pads):
        return x
    shape = x.shape[:2] + (x.shape[2] + top + bottom, x.shape[3] + left + right)
    return conv.emit(ConstantPad((left, right, top, bottom), value), [x], shape)


def _conv(conv, node, ins, attrs):
    x, w = ins[0], constant_of(ins[1], f"{node_name(node)}: the weight")
    if not is_act(x) or len(x.shape) != 4 or w.ndim != 4:
        raise ValueError(f"{node_name(node)}: supported is a 2-D convolution of an (N, C, H, W) activation")
    stride = _pairs(attrs.get("strides", [1, 1]), "strides", node)
    dilation = _pairs(attrs.get("dilations", [1, 1]), "dilations", node)
    pads = _padding(node, attrs)
    symmetric = pads[:2] == pads[2:]
    if not symmetric:
        x = _pad_first(conv, x, pads, 0.0)
    groups = int(attrs.get("group", 1))
    layer = nn.Conv2d(w.shape[1] * groups, w.shape[0], tuple(w.shape[2:]), stride, pads[:2] if symmetric else 0,
                      dilation, groups, bias=True)
    with torch.no_grad():
        layer.weight.copy_(float32_tensor(w))
        bias = ins[2] if len(ins) > 2 and ins[2] is not None else np.zeros(w.shape[0])
        layer.bias.copy_(float32_tensor(constant_of(bias, f"{node_name(node)}: the bias")))
    with torch.no_grad():
        out = layer(torch.zeros((1,) + x.shape[1:])).shape
    return [conv.emit(layer, [x], tuple(out))]


def _batchnorm(conv, node, ins, attrs):
    """Inference BatchNormalization: ``y = s x + (B - mean s)``, ``s = scale / sqrt(var + eps)`` (float64)."""
    x = ins[0]
    scale, bias, mean, var = (constant_of(v, f"{node_name(node)}: statistics").astype(np.float64) for v in ins[1:5])
    s = scale / np.sqrt(var + float(attrs.get("epsilon", 1e-5)))
    if not is_act(x) or len(x.shape) not in (2, 4):
        raise ValueError(f"{node_name(node)}: supported is BatchNormalization of (N, C) or (N, C, H, W) activations")
    shape = (-1, 1, 1) if len(x.shape) == 4 else (-1,)
    module = ChannelAffine(torch.from_numpy(s).view(shape), torch.from_numpy(bias - mean * s).view(shape))
    return [conv.emit(module, [x], x.shape)]


# ---- pads, pools, concatenation, ReLU ----------------------------------------------------------------------------

def _pad(conv, node, ins, attrs):
    x = ins[0]
    mode = attrs.get("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else str(mode)
    pads = [int(p) for p in (constant_of(ins[1], "pads").tolist() if len(ins) > 1 and ins[1] is not None
                             else attrs.get("pads", []))]
    value = float(constant_of(ins[2], "value").reshape(-1)[0]) if len(ins) > 2 and ins[2] is not None \
        else float(attrs.get("value", 0.0))
    if not is_act(x) or mode != "constant" or len(pads) != 8 or any(pads[i] for i in (0, 1, 4, 5)) \
            or min(pads) < 0 or (len(ins) > 3 and ins[3] is not None):
        raise ValueError(f"{node_name(node)}: supported is constant, non-negative padding of the last two "
                         f"dimensions of an (N, C, H, W) activation; got mode {mode}, pads {pads}")
    return [_pad_first(conv, x, (pads[2], pads[3], pads[6], pads[7]), value)]


def _pool(kind: str) -> Handler:
    def handle(conv, node, ins, attrs):
        x = ins[0]
        if not is_act(x) or len(x.shape) != 4 or int(attrs.get("ceil_mode", 0)) or \
                any(int(d) != 1 for d in attrs.get("dilations", [1, 1])) or len(node.output) > 1:
            raise ValueError(f"{node_name(node)}: supported is {kind} on (N, C, H, W) with ceil_mode 0, dilation 1 "
                             "and one output")
        kernel = _pairs(attrs["kernel_shape"], "kernel_shape", node)
        stride = _pairs(attrs.get("strides", [1, 1]), "strides", node)
        pads = _padding(node, attrs)
        if pads[:2] != pads[2:]:
            raise ValueError(f"{node_name(node)}: asymmetric pads {list(pads)} in a pool are not supported")
        if kind == "MaxPool":
            layer = nn.MaxPool2d(kernel, stride, pads[:2])
        else:
            include = bool(int(attrs.get("count_include_pad", 0)))
            if any(pads) and not include:
                raise ValueError(f"{node_name(node)}: AveragePool with pads needs count_include_pad=1")
            layer = nn.AvgPool2d(kernel, stride, pads[:2], count_include_pad=True)
        with torch.no_grad():
            out = layer(torch.zeros((1,) + x.shape[1:])).shape
        return [conv.emit(layer, [x], tuple(out))]
    return handle


def _concat(conv, node, ins, attrs):
    if not any(is_act(v) for v in ins):
        return [np.concatenate(ins, axis=int(attrs["axis"]))]
    rank = len(next(v for v in ins if is_act(v)).shape)
    axis = int(attrs["axis"])
    if not all(is_act(v) for v in ins) or (axis + rank if axis < 0 else axis) != 1:
        raise ValueError(f"{node_name(node)}: supported is Concat of activations along axis 1 (channels)")
    shape = (1, sum(v.shape[1] for v in ins)) + ins[0].shape[2:]
    return [conv.emit(Concat(), ins, shape)]


def _relu(conv, node, ins, attrs):
    x = ins[0]
    if isinstance(x, np.ndarray):
        return [np.maximum(x, 0)]
    out = conv.emit(nn.ReLU(), [x], x.real or x.shape)  # elementwise: a pending layout stays pending
    return [Activation(out.step, x.shape, x.real)]


#: ONNX operator -> handler
OPS: Dict[str, Handler] = {
    "Add": _arith("Add"), "Sub": _arith("Sub"), "Mul": _arith("Mul"), "Div": _arith("Div"),
    "Gemm": _gemm, "MatMul": _matmul, "Conv": _conv, "BatchNormalization": _batchnorm,
    "Relu": _relu, "Pad": _pad, **LAYOUT_OPS, "AveragePool": _pool("AveragePool"), "MaxPool": _pool("MaxPool"),
    "Concat": _concat,
}


#: operators that do not depend on the layout of their input (a pending reshape passes through them)
LAYOUT_FREE = ("Flatten", "Reshape", "Squeeze", "Unsqueeze", "Transpose", "Identity", "Dropout", "Relu")


def supported_ops() -> List[str]:
    return sorted(OPS)


def finish_output(conv: Converter, out: Value) -> Activation:
    """The network output as the last step, flattened to ``(1, K)``."""
    if not is_act(out):
        raise ValueError("the network output is a constant (it does not depend on the input)")
    if out.real is not None:
        out = Activation(out.step, out.real)
    if len(out.shape) != 2:
        out = conv.emit(nn.Flatten(), [out], (1, int(np.prod(out.shape))))
    if out.step != len(conv.steps) - 1:
        out = conv.emit(nn.Identity(), [out], out.shape)
    return out
