"""ONNX import: an ONNX file -> a PyTorch module that the bound engine reads (:mod:`torchcert.bounds.graph`).

The converter walks the ONNX graph once, in its (topological) node order, keeping every tensor either as a
**constant** (a NumPy array: initializers, ``Constant`` nodes and anything computed from constants only) or as an
**activation** (an output of one of the emitted steps, with its full ONNX shape, batch dimension first). Constants
are folded at conversion time (``Reshape``/``Transpose``/``Squeeze``/``Unsqueeze``/arithmetic of constants);
operations on activations become the modules the rule table knows (:mod:`.onnx_ops`): ``nn.Linear``,
``nn.Conv2d``, ``nn.ReLU``, ``nn.Flatten``, ``ChannelAffine``, ``Merge``, ``Concat``, ``ConstantPad``, pools.
A chain of steps is returned as an ``nn.Sequential``; a DAG (residual ``Add``, ``Concat``) as an
:class:`OnnxGraph`, whose ``forward`` ``torch.fx`` traces into the same operations.

Batch: the first input dimension (fixed 1 or symbolic) is the batch. A rank-1 input ``[n]`` (no batch dimension)
is read as ``[1, n]``: the module takes ``(B, n)``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

from torchcert.bounds.rules.concat import Concat
from torchcert.bounds.rules.merge import Merge

from .files import read_bytes


@dataclass(frozen=True)
class Activation:
    """A tensor computed from the input: produced by step ``step`` (-1: the input), ONNX shape ``shape``
    (batch first, the batch taken as 1). ``real``: the shape the step's module actually produces when a layout
    operation (Reshape, Flatten, Squeeze, ...) is still pending (None: the same as ``shape``); the next operation
    that depends on the layout settles it (:func:`.onnx_ops.settle`)."""

    step: int
    shape: Tuple[int, ...]
    real: Optional[Tuple[int, ...]] = None


Value = Union[Activation, np.ndarray]


class OnnxGraph(nn.Module):
    """Steps of a converted DAG: ``values[i + 1] = steps[i](*(values[r + 1] for r in reads[i]))``, values[0] = x.

    ``torch.fx`` unrolls the loop: each step is one node reading the nodes of ``reads`` (-1: the input); the steps
    of several inputs are written as ``a + b``, ``a - b`` and ``torch.cat(..., dim=1)``, as the engine reads them."""

    def __init__(self, steps: Sequence[nn.Module], reads: Sequence[Tuple[int, ...]]) -> None:
        super().__init__()
        self.steps = nn.ModuleList(steps)
        self.reads = [tuple(r) for r in reads]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values = [x]
        for step, reads in zip(self.steps, self.reads):
            args = [values[r + 1] for r in reads]
            if isinstance(step, Merge):  # written as the engine's graph reads residual sums: a + b, a - b
                values.append(args[0] + args[1] if step.sign > 0 else args[0] - args[1])
            elif isinstance(step, Concat):
                values.append(torch.cat(args, dim=1))
            else:
                values.append(step(*args))
        return values[-1]


@dataclass
class Converter:
    """Conversion state: the steps emitted so far, the value of every ONNX tensor name, and how many nodes read
    each name (a bias may be folded into the Linear/Conv producing it only when nothing else reads it)."""

    steps: List[nn.Module]
    reads: List[Tuple[int, ...]]
    values: Dict[str, Value]
    readers: Dict[str, int]
    unbatched: bool = False  # the ONNX input is a vector [n] (read as [1, n])

    def emit(self, module: nn.Module, inputs: Sequence[Activation], shape: Tuple[int, ...]) -> Activation:
        """Append ``module`` reading ``inputs``; the activation it produces, of ONNX shape ``shape``."""
        self.steps.append(module.eval())
        self.reads.append(tuple(a.step for a in inputs))
        return Activation(len(self.steps) - 1, tuple(int(s) for s in shape))


@dataclass(frozen=True)
class ImportedNetwork:
    """A converted ONNX network.

    ``module``: float32, eval mode, ``(B, *in_shape) -> (B, K)``; ``in_shape``: per-sample input shape (the
    ONNX input shape without its batch dimension); ``onnx_shape``: the ONNX input shape with batch 1 (how to feed
    onnxruntime one sample: ``x.reshape(onnx_shape)``); ``input_name``/``output_name``: the ONNX tensor names;
    ``num_outputs``: K."""

    module: nn.Module
    in_shape: Tuple[int, ...]
    onnx_shape: Tuple[int, ...]
    input_name: str
    output_name: str
    num_outputs: int

    @property
    def num_inputs(self) -> int:
        return int(np.prod(self.in_shape))


def load_onnx(path: Union[str, Path]) -> ImportedNetwork:
    """Read an ONNX file (``.onnx``, gzipped, or named without its ``.gz``) and convert it (module docstring).

    ValueError naming the operator (and listing the supported ones) for anything out of scope."""
    onnx = _require_onnx()
    return convert(onnx.load_from_string(read_bytes(path)))


def onnxruntime_forward(path: Union[str, Path], net: ImportedNetwork) -> Optional[Callable[[torch.Tensor],
                                                                                     torch.Tensor]]:
    """``x (1, *in) -> y (K,)`` by onnxruntime on the file (float32), or None when onnxruntime is not installed."""
    try:
        import onnxruntime
    except ImportError:
        return None
    session = onnxruntime.InferenceSession(read_bytes(path), providers=["CPUExecutionProvider"])

    def forward(x: torch.Tensor) -> torch.Tensor:
        feed = x.detach().cpu().numpy().astype(np.float32).reshape(net.onnx_shape)
        return torch.from_numpy(np.asarray(session.run(None, {net.input_name: feed})[0])).reshape(-1)
    return forward


def _require_onnx():
    try:
        import onnx
    except ImportError:
        raise ValueError("reading ONNX needs the onnx package: pip install 'torchcert[onnx]'") from None
    return onnx


def convert(model) -> ImportedNetwork:
    """``onnx.ModelProto`` -> :class:`ImportedNetwork`."""
    from onnx import numpy_helper

    from .onnx_layout import settle
    from .onnx_ops import LAYOUT_FREE, OPS, finish_output, supported_ops

    graph = model.graph
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in constants]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise ValueError(f"networks of one input and one output are supported; this one has inputs "
                         f"{[i.name for i in inputs]} and outputs {[o.name for o in graph.output]}")
    onnx_shape = _input_shape(inputs[0])
    unbatched = len(onnx_shape) == 1
    full = (1,) + onnx_shape if unbatched else (1,) + onnx_shape[1:]
    conv = Converter([], [], {**constants, inputs[0].name: Activation(-1, full)}, _readers(graph),
                     unbatched)
    needed = _needed_nodes(graph)
    for i, node in enumerate(graph.node):
        if not needed[i]:
            continue
        handler = OPS.get(node.op_type)
        if handler is None:
            raise ValueError(f"ONNX operator {node.op_type} (node {node.name or node.output[0]}) is not supported; "
                             f"supported: {', '.join(supported_ops())}")
        args = [conv.values[name] if name else None for name in node.input]
        if node.op_type not in LAYOUT_FREE:
            args = [settle(conv, node, a) if isinstance(a, Activation) else a for a in args]
        outputs = handler(conv, node, args, _attributes(node))
        for name, value in zip(node.output, outputs):
            conv.values[name] = value
    out = finish_output(conv, conv.values[graph.output[0].name])
    module = _assemble(conv.steps, conv.reads)
    return ImportedNetwork(module.eval(), full[1:], tuple(onnx_shape if unbatched else (1,) + onnx_shape[1:]),
                           inputs[0].name, graph.output[0].name, int(np.prod(out.shape[1:])))


def _input_shape(value_info) -> Tuple[int, ...]:
    """The ONNX input shape with symbolic (or unknown) dimensions read as 1; at least rank 1."""
    dims = value_info.type.tensor_type.shape.dim
    shape = tuple(int(d.dim_value) if d.HasField("dim_value") and d.dim_value > 0 else 1 for d in dims)
    if not shape:
        raise ValueError(f"input {value_info.name} has no shape; a ranked input is needed")
    return shape


def _readers(graph) -> Dict[str, int]:
    counts: Dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            counts[name] = counts.get(name, 0) + 1
    for out in graph.output:
        counts[out.name] = counts.get(out.name, 0) + 1
    return counts


def _needed_nodes(graph) -> List[bool]:
    """Which nodes (by index) the output depends on (the others are dropped, as the engine drops dead branches)."""
    wanted = {o.name for o in graph.output}
    nodes = list(graph.node)
    needed = [False] * len(nodes)
    for i in reversed(range(len(nodes))):
        node = nodes[i]
        needed[i] = any(name in wanted for name in node.output)
        if needed[i]:
            wanted.update(name for name in node.input if name)
    return needed


def _attributes(node) -> Dict[str, object]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _assemble(steps: List[nn.Module], reads: List[Tuple[int, ...]]) -> nn.Module:
    """``nn.Sequential`` when every step reads the previous one, else :class:`OnnxGraph`."""
    if not steps:
        return nn.Sequential(nn.Identity())
    if all(r == (i - 1,) for i, r in enumerate(reads)):
        return nn.Sequential(*steps)
    return OnnxGraph(steps, reads)
