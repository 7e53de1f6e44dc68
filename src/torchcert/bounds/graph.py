"""The network as the bound engine reads it: the ordered operations of a module, traced once by ``torch.fx``.

``operations(model)`` lists ``(name, module)`` pairs, one per operation the bounds apply, for any module whose
forward ``torch.fx`` can trace into supported operations: nested containers and modules of one's own whose
``forward`` calls ``F.relu``, ``torch.flatten``, ``x.view(x.size(0), -1)`` and the like. Functions and methods are
matched in :data:`FUNCTIONS` / :data:`METHODS` and stand for the module with the same rule (``F.relu`` is
``nn.ReLU``; ``x - mean``, ``x / std`` with constant scalars or per-channel buffers are a ``ChannelAffine``; the
sum or difference of two activations is a ``Merge``: a residual connection), so every consumer keeps one rule
table. Shape bookkeeping (``x.size(0)``, ``x.shape[0]``) is read, not bounded. Each operation records the
indices of the operations it reads: a chain, or a DAG with residual connections.

A (nested) ``nn.Sequential`` is its own graph: its leaves are listed without tracing (the same result, measured
cheaper in the training step, which bounds every batch).
"""
from __future__ import annotations

import operator
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import fx, nn

from .rules.affine import ChannelAffine, attribute
from .rules.concat import Concat
from .rules.merge import Merge
from .rules.pad import ConstantPad

#: nodes that compute shapes, not activations
_SHAPE_METHODS = ("size", "dim")


def _is_batch_size(node: Any) -> bool:
    """``x.size(0)``, ``x.size()[0]`` or ``x.shape[0]`` of some traced tensor."""
    if not isinstance(node, fx.Node):
        return False
    if node.op == "call_method" and node.target == "size":
        return (node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")) == 0
    if node.op == "call_function" and node.target is operator.getitem:
        source, index = node.args
        return index == 0 and isinstance(source, fx.Node) and _is_shape_node(source)
    return False


def _batch_flatten(shape: Tuple[Any, ...]) -> Optional[nn.Module]:
    """``view``/``reshape`` to ``(batch, -1)`` is a Flatten; other shapes are not supported."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    if len(shape) == 2 and shape[1] == -1 and _is_batch_size(shape[0]):
        return nn.Flatten()
    return None


def _is_constant(value: Any) -> bool:
    """A number, or a traced attribute (a module's buffer or parameter, read by ``get_attr``)."""
    return isinstance(value, (int, float)) or (isinstance(value, fx.Node) and value.op == "get_attr")


def _constant_affine(op: Callable[..., Any]) -> Callable[..., Optional[nn.Module]]:
    """``x op c`` / ``c op x`` for ``+ - * /`` with a constant ``c`` (a number, or a module's tensor attribute read
    live at each bound, see :class:`ChannelAffine`): a :class:`ChannelAffine`. Both operands traced tensors:
    ``None`` (a residual connection, refused)."""
    def build(a: Any, b: Any) -> Optional[nn.Module]:
        tensor_first = isinstance(a, fx.Node) and not _is_constant(a)
        x, c = (a, b) if tensor_first else (b, a)
        if _is_constant(x) or not _is_constant(c):
            return None
        kind = {operator.add: "add", operator.mul: "mul"}.get(op)
        if op is operator.sub:
            kind = "sub" if tensor_first else "rsub"
        if op is operator.truediv and tensor_first:
            kind = "div"
        if kind is None:
            return None
        if isinstance(c, fx.Node):
            return ChannelAffine(1.0, 0.0, source=(c.meta["root"], str(c.target), kind))
        return ChannelAffine(*ChannelAffine.by_kind(kind, torch.tensor(float(c), dtype=torch.float64)))
    return build

#: functions of a traced forward -> a factory of the module standing for them (None: refused with the reason)
FUNCTIONS: Dict[Callable[..., Any], Callable[..., Optional[nn.Module]]] = {
    F.relu: lambda *a, **k: nn.ReLU(),
    torch.relu: lambda *a, **k: nn.ReLU(),
    torch.flatten: lambda x, start_dim=0, end_dim=-1: nn.Flatten(start_dim, end_dim),
    F.dropout: lambda *a, **k: nn.Identity(),
    operator.neg: lambda x: ChannelAffine(-1.0, 0.0),
    torch.neg: lambda x: ChannelAffine(-1.0, 0.0),
    F.pad: lambda x, pad, mode="constant", value=None: ConstantPad(pad, value or 0.0) if mode == "constant" and
    len(pad) == 4 else None,
    **{op: _constant_affine(op) for op in (operator.add, operator.sub, operator.mul, operator.truediv)},
    **{fn: _constant_affine(op) for fn, op in ((torch.add, operator.add), (torch.sub, operator.sub),
                                                (torch.mul, operator.mul), (torch.div, operator.truediv))},
}
#: tensor methods of a traced forward -> the module standing for them
METHODS: Dict[str, Callable[..., Optional[nn.Module]]] = {
    "relu": lambda x: nn.ReLU(),
    "flatten": lambda x, start_dim=0, end_dim=-1: nn.Flatten(start_dim, end_dim),
    "view": lambda x, *shape: _batch_flatten(shape),
    "reshape": lambda x, *shape: _batch_flatten(shape),
    "contiguous": lambda x, *a, **k: nn.Identity(),
}

class _Tracer(fx.Tracer):
    """Keeps the modules the rule table knows as single nodes (their forward is not traced into)."""

    def __init__(self, known: Callable[[nn.Module], bool]) -> None:
        super().__init__()
        self.known = known

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return self.known(module) or super().is_leaf_module(module, qualified_name)


def sequential_leaves(model: nn.Module, prefix: str = "") -> List[Tuple[str, nn.Module]]:
    """``(name, module)`` of the leaves of nested ``nn.Sequential`` containers, in order."""
    if isinstance(model, nn.Sequential):
        out: List[Tuple[str, nn.Module]] = []
        for name, child in model.named_children():
            out.extend(sequential_leaves(child, f"{prefix}{name}."))
        return out
    return [(prefix.rstrip("."), model)]


def is_sequential_tree(model: nn.Module, known: Callable[[nn.Module], bool]) -> bool:
    """Nested ``nn.Sequential`` whose leaves all have rules."""
    return isinstance(model, nn.Sequential) and all(
        is_sequential_tree(child, known) if isinstance(child, nn.Sequential) else known(child)
        for child in model.children())


#: one operation: its name, the module standing for it and the indices of the operations it reads (-1: the input)
Operation = Tuple[str, nn.Module, Tuple[int, ...]]


def operations(model: nn.Module, known: Callable[[nn.Module], bool]) -> List[Operation]:
    """The operations of ``model`` in topological order (module docstring). ``known(module)`` says whether the
    rule table has a rule for a module type (those are not traced into)."""
    return network_operations(model, known)[1]


def network_operations(model: nn.Module, known: Callable[[nn.Module], bool]) -> Tuple[bool, List[Operation]]:
    """Whether ``model`` had to be traced (it is not a tree of ``nn.Sequential``), and its operations."""
    if is_sequential_tree(model, known):
        return False, sequential_operations(model)
    return True, traced_operations(model, known)


def sequential_operations(model: nn.Module) -> List[Operation]:
    """The leaves of nested ``nn.Sequential`` containers as a chain of operations (no tracing)."""
    return [(name, module, (i - 1,)) for i, (name, module) in enumerate(sequential_leaves(model))]


def traced_operations(model: nn.Module, known: Callable[[nn.Module], bool]) -> List[Operation]:
    """The operations of ``model``'s forward as ``torch.fx`` traces it (dead branches dropped)."""
    try:
        graph = _Tracer(known).trace(model)
    except Exception as err:  # fx raises many types; the message names what it could not trace
        raise ValueError(f"bounds could not trace {type(model).__name__} with torch.fx: {err}") from None
    graph = fx.GraphModule(model, graph).graph  # owned by a module, as fx's purity checks need
    graph.eliminate_dead_code()  # operations whose result nothing reads are not part of the function
    ops = _walk(model, graph)
    device = next((t.device for t in list(model.parameters()) + list(model.buffers())), None)
    own = set(model.modules())
    for _, module, _ in ops:  # stand-ins (ChannelAffine, ...) hold their constants where the network is
        if module not in own and device is not None:
            module.to(device)
    return ops


def is_chain(inputs: Sequence[Tuple[int, ...]]) -> bool:
    """Whether each operation reads exactly the previous one."""
    return all(tuple(reads) == (i - 1,) for i, reads in enumerate(inputs))


def _walk(model: nn.Module, graph: fx.Graph) -> List[Operation]:
    """The traced graph's operations, each with the indices of the operations it reads."""
    inputs = [n for n in graph.nodes if n.op == "placeholder"]
    if len(inputs) != 1:
        raise ValueError(f"bounds need a network of one input; {type(model).__name__}.forward takes {len(inputs)}")
    index: Dict[fx.Node, int] = {inputs[0]: -1}
    out: List[Operation] = []
    for node in graph.nodes:
        if node.op == "get_attr":  # a constant of the module, read by the operations that use it at each bound
            _attribute(model, str(node.target))  # a tensor, else refused now
            node.meta["root"] = model
            continue
        if node.op == "placeholder" or _is_shape_node(node):
            continue
        if node.op == "output":
            result = node.args[0]
            if not isinstance(result, fx.Node) or result not in index or index[result] != len(out) - 1:
                raise ValueError(f"bounds need one output tensor, the last operation; got {result}")
            return out
        tensors = [a for a in _tensor_args(node) if a.op != "get_attr"]
        missing = [t.name for t in tensors if t not in index]
        if missing:
            raise ValueError(f"bounds cannot follow node {node.name} ({node.format_node()}): it reads {missing}")
        name = node.name if node.op != "call_module" else str(node.target)
        out.append((name, _module_of(model, node), tuple(index[t] for t in tensors)))
        index[node] = len(out) - 1
    return out


def _tensor_args(node: fx.Node) -> List[fx.Node]:
    """The activation nodes a node reads, in argument order (repeats kept: ``x + x`` reads x twice)."""
    flat: List[Any] = []
    for arg in list(node.args) + list(node.kwargs.values()):
        flat.extend(arg if isinstance(arg, (tuple, list)) else [arg])
    return [a for a in flat if isinstance(a, fx.Node) and not _is_shape_node(a)]


def _inplace(model: nn.Module, node: fx.Node) -> bool:
    """An operation that overwrites its input (``F.relu(x, inplace=True)``, ``nn.ReLU(inplace=True)``)."""
    if node.op == "call_module":
        return bool(getattr(model.get_submodule(str(node.target)), "inplace", False))
    return bool(node.kwargs.get("inplace", False)) or (node.op == "call_function" and len(node.args) > 1 and
                                                       node.target is F.relu and node.args[1] is True)


def _attribute(model: nn.Module, target: str) -> torch.Tensor:
    """The tensor at dotted path ``target`` of ``model`` (a buffer or parameter)."""
    value = attribute(model, target)
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"bounds need {target} to be a tensor constant, got {type(value).__name__}")
    return value


def _is_shape_node(node: fx.Node) -> bool:
    if node.op == "call_method" and node.target in _SHAPE_METHODS:
        return True
    if node.op == "call_function" and node.target is getattr and node.args[1] in ("shape", "dtype", "device"):
        return True
    return node.op == "call_function" and node.target is operator.getitem and isinstance(node.args[0], fx.Node) \
        and _is_shape_node(node.args[0])


_MERGES = {operator.add: 1.0, torch.add: 1.0, operator.sub: -1.0, torch.sub: -1.0}


def _module_of(model: nn.Module, node: fx.Node) -> nn.Module:
    """The module a node applies: itself for ``call_module``, the stand-in module for a function or method."""
    if node.op == "call_module":
        if node.kwargs or len(node.args) != 1:  # e.g. ConvTranspose2d(x, output_size=...): not the rule's function
            raise ValueError(f"bounds need module {node.target} called on one tensor and nothing else: "
                             f"{node.format_node()}")
        return model.get_submodule(str(node.target))
    if _inplace(model, node) and len(node.all_input_nodes[0].users) > 1:
        raise ValueError(f"bounds do not support the in-place operation {node.format_node()} on an activation that "
                         "is read again (the traced graph would not be the module's function); use inplace=False")
    if node.op == "call_function" and node.target is torch.cat:
        dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0)
        if dim != 1 or node.kwargs.get("out") is not None:
            raise ValueError(f"bounds support torch.cat along dim 1 (channels/features) only: {node.format_node()}")
        return Concat()
    if node.op == "call_function" and node.target in _MERGES and len(node.args) == 2 and \
            all(isinstance(a, fx.Node) and a.op != "get_attr" for a in node.args):
        if node.kwargs.get("alpha", 1) != 1:
            raise ValueError(f"bounds do not support {node.format_node()}: alpha != 1")
        return Merge(_MERGES[node.target])  # a + b or a - b of two activations: a residual connection
    table, key = (FUNCTIONS, node.target) if node.op == "call_function" else (METHODS, node.target)
    factory = table.get(key) if node.op in ("call_function", "call_method") else None
    try:
        module = factory(*node.args, **node.kwargs) if factory is not None else None
    except TypeError:  # arguments the stand-in does not take (keywords such as other=, alpha=, out=)
        module = None
    if module is None:
        supported = sorted({getattr(f, "__name__", str(f)) for f in FUNCTIONS} | {f".{m}()" for m in METHODS})
        raise ValueError(f"bounds do not support the operation {node.format_node()}; supported functions and "
                         f"methods: {', '.join(supported)} (add/sub/mul/div by constants only; view/reshape only to "
                         "(batch, -1))")
    return module
