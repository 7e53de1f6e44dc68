"""The network as a list of bound layers: its operations (``graph.operations``), a rule per module type.

A :class:`Layer` pairs a rule module (``rules.linear``, ``rules.conv``, ...) with the op that rule built
from the torch module (weights cast to the bound dtype, ``|W|`` cached), plus input/output feature
shapes. BatchNorm directly after a Linear/Conv2d is folded into it:
``W' = scale W``, ``b' = scale b + shift`` (per output channel).
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from .graph import Operation, is_chain, network_operations, traced_operations
from .rules import (affine, avgpool, batchnorm, concat, conv, conv_transpose, flatten, identity, linear, maxpool, merge,
                    pad, relu)

#: module type -> rule module
RULES = {
    nn.Linear: linear,
    nn.Conv2d: conv,
    nn.ConvTranspose2d: conv_transpose,
    nn.BatchNorm1d: batchnorm,
    nn.BatchNorm2d: batchnorm,
    nn.ReLU: relu,
    nn.Flatten: flatten,
    nn.AvgPool2d: avgpool,
    nn.MaxPool2d: maxpool,
    nn.ZeroPad2d: pad,
    nn.ConstantPad2d: pad,
    pad.ConstantPad: pad,
    nn.Identity: identity,
    nn.Dropout: identity,
    affine.ChannelAffine: affine,
    merge.Merge: merge,
    concat.Concat: concat,
}


@dataclass(frozen=True)
class Layer:
    """One step of the network: ``rule.ibp(op, c, r)``, ``rule.backward(op, A, offset, in_shape)``."""

    rule: ModuleType
    op: Any
    in_shape: Tuple[int, ...]
    out_shape: Tuple[int, ...]
    name: str
    inputs: Tuple[int, ...] = ()  # indices of the layers it reads (-1: the network input); () means the previous


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
                     f"supported: {supported}, in nn.Sequential or any module torch.fx traces (functional relu, "
                     "flatten, view, + - * / by constants, residual a + b)")


def _fold(previous: Layer, bn: batchnorm.ScaleOp) -> Layer:
    """Fold a per-channel affine map into the preceding Linear/Conv2d layer."""
    op = previous.op
    scale = bn.scale.view((-1,) + (1,) * (op.weight.dim() - 1))
    weight, bias = op.weight * scale, op.bias * bn.scale + bn.shift
    if previous.rule is linear:
        new = linear.make(weight, bias)
    else:
        new = conv.make(weight, bias, op.stride, op.padding, op.dilation, op.groups)
    return Layer(previous.rule, new, previous.in_shape, previous.out_shape, previous.name, previous.inputs)


def reads(layers: Sequence[Layer]) -> List[Tuple[int, ...]]:
    """The input indices of every layer (``()`` spelled out as the previous layer)."""
    return [layer.inputs or (i - 1,) for i, layer in enumerate(layers)]


def chain(layers: Sequence[Layer]) -> bool:
    """Whether ``layers`` form a chain (no residual connection); slices of a chain are chains."""
    return all(not layer.inputs for layer in layers) or is_chain(reads(layers))


def graph_walk(layers: Sequence[Layer]) -> bool:
    """Whether CROWN must walk the graph (``bounds.dag``, dense rows): residual connections, or a feature-map
    layer the patch rows do not pass (max pooling, padding, transposed convolution: ``patches.STEPS``)."""
    from .patches import passes

    return not chain(layers) or any(len(layer.out_shape) == 3 and not passes(layer.rule) for layer in layers)


@dataclass
class _Trace:
    """The operations of a network in one state (see :func:`_state`), and the (shape, dtype) pairs checked."""

    traced: bool
    operations: Tuple[Operation, ...]
    checked: set


def _state(net: nn.Module) -> tuple:
    """What a trace depends on besides the forward's code: the modules (by identity), their training flags, hooks
    and plain scalar attributes (a flag or a number the forward may branch on)."""
    from torch.nn.modules import module as torch_module

    hooks = (len(torch_module._global_forward_hooks), len(torch_module._global_forward_pre_hooks))
    return hooks + tuple(
        (id(m), len(m._forward_hooks), len(m._forward_pre_hooks),
         tuple((k, v) for k, v in vars(m).items() if isinstance(v, (bool, int, float, str)) and not k.startswith("_")))
        for m in net.modules())


class BoundGraph(nn.Module):
    """``net`` with its operations traced once per state: every bound function given a BoundGraph reads these
    operations instead of tracing ``net`` at each call (tracing and its check cost more than IBP itself on a small
    residual net).

    It runs as ``net`` does (``forward``, ``parameters()``, ``.to()``, ``.eval()`` reach ``net``). The operations
    hold ``net``'s own submodules and read its tensors at each call, so weights, buffers and parameters are always
    current. Anything else a trace depends on (a replaced submodule, ``train()``/``eval()``, a hook, a scalar
    attribute the forward branches on) changes :func:`_state`, and the network is traced again for that state
    (the last few states are kept). Each trace is checked once per input shape and dtype against ``net``'s own
    forward (:func:`check_traced`); a training-mode trace must equal the eval-mode trace of a copy, which is then
    checked, so a forward that branches on ``self.training`` is refused rather than bounded by the wrong branch.
    """

    KEPT = 4

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        if isinstance(net, BoundGraph):
            net = net.net
        self.net = net
        self.traces: Dict[tuple, _Trace] = {}
        self.current()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def current(self) -> _Trace:
        """The trace of ``net`` in its present state (traced now if this state is new)."""
        key = _state(self.net)
        if key not in self.traces:
            traced, ops = network_operations(self.net, has_rule)
            while len(self.traces) >= self.KEPT:
                self.traces.pop(next(iter(self.traces)))
            self.traces[key] = _Trace(traced, tuple(ops), set())
        return self.traces[key]

    @property
    def traced(self) -> bool:
        return self.current().traced

    @property
    def operations(self) -> Tuple[Operation, ...]:
        return self.current().operations


def _operations(model: nn.Module) -> Tuple[bool, Sequence[Operation]]:
    """Whether ``model`` is traced (not a tree of Sequentials), and its operations (cached in a BoundGraph)."""
    if isinstance(model, BoundGraph):
        trace = model.current()
        return trace.traced, trace.operations
    return network_operations(model, has_rule)


def _structure(ops: Sequence[Operation]) -> list:
    """Names, types and inputs of the operations, and what a constant operation computes."""
    def what(module: nn.Module) -> Any:
        source = getattr(module, "source", None)
        if source is not None:
            return source[1:]  # the attribute read and the operation
        fixed = [getattr(module, name, None) for name in ("fixed_scale", "fixed_shift")]
        return tuple(t.tolist() for t in fixed) if fixed[0] is not None else None

    return [(name, type(module).__name__, inputs, what(module)) for name, module, inputs in ops]


def _check_once(model: nn.Module, layers: Sequence[Layer], in_shape: Tuple[int, ...], dtype: torch.dtype) -> None:
    """:func:`check_traced` once per BoundGraph state and input shape (every call for a plain module in eval mode;
    never for a plain module in training mode)."""
    if not isinstance(model, BoundGraph):
        if not any(m.training for m in model.modules()):
            check_traced(model, layers, in_shape, dtype)
        return
    trace = model.current()
    if (in_shape, dtype) in trace.checked:
        return
    net = model.net
    if any(m.training for m in net.modules()):  # the check compares eval-mode outputs: trace an eval-mode copy
        net = copy.deepcopy(net).eval()
        eval_ops = traced_operations(net, has_rule)
        if _structure(eval_ops) != _structure(trace.operations):
            raise ValueError(f"{type(net).__name__}.forward traces to different operations in training and in eval "
                             "mode (it branches on self.training): bounds refuse it in training mode")
        layers = _layers(eval_ops, in_shape, dtype)
    check_traced(net, layers, in_shape, dtype)
    trace.checked.add((in_shape, dtype))


def build_layers(model: nn.Module, in_shape: Tuple[int, ...], dtype: torch.dtype,
                 bn_stats: Optional[dict] = None, fold_bn: bool = True) -> List[Layer]:
    """Layer list of ``model`` (a module or a :class:`BoundGraph`) for inputs of feature shape ``in_shape`` (no
    batch dimension), in topological order, each with the indices of the layers it reads. In a chain, BatchNorm
    is folded into the Linear/Conv2d before it, unless ``fold_bn`` is False (the operations as the module runs
    them); in a graph with residual connections it stays a layer (the conv's output may have other readers).
    Identities are dropped."""
    traced, ops = _operations(model)
    layers = _layers(ops, in_shape, dtype, bn_stats, fold_bn)
    if traced:
        _check_once(model, layers, tuple(in_shape), dtype)
    return layers


def _layers(ops: Sequence[Operation], in_shape: Tuple[int, ...], dtype: torch.dtype,
            bn_stats: Optional[dict] = None, fold_bn: bool = True) -> List[Layer]:
    """The layers of traced ``ops`` (see :func:`build_layers`)."""
    linear_chain = is_chain([inputs for _, _, inputs in ops])  # then every layer reads "the previous one": ()
    layers: List[Layer] = []
    where: dict = {-1: -1}  # operation index -> layer index (identities and folds map to what they pass on)
    for k, (name, module, inputs) in enumerate(ops):
        rule = rule_for(module)
        sources = tuple(where[i] for i in inputs)
        shape = tuple(in_shape) if sources[0] < 0 else layers[sources[0]].out_shape
        if rule is identity:
            where[k] = sources[0]
            continue
        if rule is batchnorm:
            op = batchnorm.from_module(module, shape, dtype, bn_stats)
            source = sources[0]
            if fold_bn and linear_chain and source >= 0 and layers[source].rule in (linear, conv):
                layers[source] = _fold(layers[source], op)
                where[k] = source
                continue
        elif rule is concat:
            op = concat.make([tuple(in_shape) if s < 0 else layers[s].out_shape for s in sources])
        else:
            op = rule.from_module(module, shape, dtype)
        if rule is merge:
            other = layers[sources[1]].out_shape if sources[1] >= 0 else tuple(in_shape)
            if other != shape:
                raise ValueError(f"{name} adds activations of shapes {shape} and {other}")
        out_shape = rule.output_shape(op, shape)
        layers.append(Layer(rule, op, shape, out_shape, name, () if linear_chain else sources))
        where[k] = len(layers) - 1
    if not linear_chain and is_chain([layer.inputs for layer in layers]):  # e.g. x + 0 folded away
        layers = [dataclasses.replace(layer, inputs=()) for layer in layers]
    return layers


def forward(layers: Sequence[Layer], x: torch.Tensor,
            relu_fn: Optional[Callable[[int, torch.Tensor], torch.Tensor]] = None) -> torch.Tensor:
    """The network's output computed through the rules (``x``: ``(B, *in_shape)``); ``relu_fn(j, z)``, when
    given, replaces the ``j``-th ReLU (applied to its input ``z``)."""
    outs: List[torch.Tensor] = []
    j = 0
    for layer, sources in zip(layers, reads(layers)):
        args = [x if k < 0 else outs[k] for k in sources]
        if relu_fn is not None and layer.rule is relu:
            outs.append(relu_fn(j, args[0]))
            j += 1
        elif hasattr(layer.rule, "forward_many"):  # several inputs (Merge, Concat)
            outs.append(layer.rule.forward_many(layer.op, args))
        else:
            outs.append(layer.rule.forward(layer.op, args[0]))
    return outs[-1] if outs else x


def check_traced(model: nn.Module, layers: Sequence[Layer], in_shape: Tuple[int, ...], dtype: torch.dtype) -> None:
    """ValueError unless the traced layers compute what ``model`` computes, on two random inputs: tracing cannot
    see every aliasing (``g = h; g += 1`` is traced as an addition that leaves ``h`` alone)."""
    own = next((t.dtype for t in list(model.parameters()) + list(model.buffers()) if t.is_floating_point()),
               torch.float32)
    device = next((t.device for t in model.parameters()), torch.device("cpu"))
    x = torch.randn((2,) + tuple(in_shape), generator=torch.Generator().manual_seed(0), dtype=torch.float64,
                    device="cpu")
    with torch.no_grad():
        expected = model(x.to(device=device, dtype=own)).double()
        got = forward(layers, x.to(device=device, dtype=dtype))
    got = got.double().reshape(expected.shape) if got.numel() == expected.numel() else None
    scale = 1.0 + float(expected.abs().max()) if expected.numel() else 1.0
    if got is None or not bool(((got - expected).abs() <= 1e-3 * scale).all()):
        raise ValueError(f"the traced graph of {type(model).__name__} does not compute what its forward computes "
                         "(an in-place operation on an activation read again, or an operation torch.fx does not "
                         "record); bounds would be of another network")

