"""Floating-point error of a network's forward pass over a box (a priori, Higham-style).

Bounds from this package are bounds of the network in real arithmetic (its weights taken as exact). The
network as a user runs it rounds every operation, so its logits differ from the real ones. For an affine map
of fan-in ``n`` computed in floating point with unit roundoff ``u`` (any summation order, FMA or not),
``|fl(W x' + b) - (W x + b)| <= |W| |x' - x| + gamma_(n+1) (|W| |x'| + |b|)`` with ``gamma_n = n u / (1 - n u)``;
ReLU and reshapes are exact. :func:`forward_error` adds up what each layer's rounding can do to the output
(``|f_float(x) - f_real(x)| <= e`` for every x of the box). Each rule states its own terms (``rule.rounding``:
the error it carries, the rounding it adds and the largest magnitude it forms; ``rule.error_backward``: interval
coefficients moved to its input). Underflow adds an absolute ``tiny`` (the smallest normal number) per operation,
which covers subnormals and flush-to-zero; a network that may overflow gets no finite bound. Not covered: Winograd or FFT convolutions (cuDNN may choose them), and TF32
unless :func:`unit_roundoff` is told the device allows it.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from .box import Box
from .layers import Layer, build_layers, reads
from .rules import relu
from .rules._window import Arithmetic, magnitude

UNIT_ROUNDOFF = {torch.float64: 2.0 ** -53, torch.float32: 2.0 ** -24, torch.float16: 2.0 ** -11,
                 torch.bfloat16: 2.0 ** -8}


def unit_roundoff(dtype: torch.dtype, device: Optional[torch.device] = None) -> float:
    """Unit roundoff of arithmetic in ``dtype`` on ``device``: float32 on CUDA counts as TF32 (``2^-11``)
    when PyTorch allows TF32 for matrix products or cuDNN convolutions."""
    if dtype not in UNIT_ROUNDOFF:
        raise ValueError(f"no rounding model for {dtype}; supported: {', '.join(map(str, UNIT_ROUNDOFF))}")
    tf32 = torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32
    if dtype == torch.float32 and device is not None and torch.device(device).type == "cuda" and tf32:
        return 2.0 ** -11
    return UNIT_ROUNDOFF[dtype]


def arithmetic(dtype: torch.dtype, device: Optional[torch.device] = None) -> Arithmetic:
    """The :class:`Arithmetic` of ``dtype`` on ``device`` (TF32 on CUDA when PyTorch allows it)."""
    info = torch.finfo(dtype)
    return Arithmetic(unit_roundoff(dtype, device), float(info.tiny), float(info.max))


def _forward_pass(layers: Sequence[Layer], box: Box, arith: Arithmetic, relu_bounds: Optional[Sequence[Box]]
                  ) -> Tuple[List[List[Box]], List[List[Tensor]], List[Tensor], float]:
    """Per layer: the boxes of its real inputs (IBP, intersected with ``relu_bounds`` at each ReLU), bounds on
    the float inputs' errors (carried forward as intervals: loose, used only in the magnitude ``|x| + e``) and the
    rounding the layer adds; and the largest magnitude any operation can produce (for overflow). Layers may read
    any earlier layer (residual connections)."""
    inputs = reads(layers)
    first = ((box.upper + box.lower) / 2, (box.upper - box.lower) / 2, torch.zeros_like(box.lower))
    outs: List[Tuple[Tensor, Tensor, Tensor]] = []  # (center, radius, error) of every layer's output
    boxes, errors, added = [], [], []
    peak = float(magnitude(box).max()) if box.lower.numel() else 0.0
    j = 0
    for i, layer in enumerate(layers):
        args = [first if k < 0 else outs[k] for k in inputs[i]]
        pres = [Box(c - r, c + r) for c, r, _ in args]
        errs = [e for _, _, e in args]
        if layer.rule is relu and relu_bounds is not None:
            pres[0] = pres[0].intersect(relu_bounds[j])
            j += 1
        if hasattr(layer.rule, "rounding_many"):  # several inputs (Merge, Concat)
            carried, new, largest = layer.rule.rounding_many(layer.op, pres, errs, arith)
            center, radius = layer.rule.ibp_many(layer.op, [(p.center, p.radius) for p in pres])
        else:
            carried, new, largest = layer.rule.rounding(layer.op, pres[0], errs[0], arith)
            center, radius = layer.rule.ibp(layer.op, pres[0].center, pres[0].radius)
        boxes.append(pres)
        errors.append(errs)
        added.append(new)
        peak = max(peak, float(largest.max()) if largest.numel() else 0.0)
        outs.append((center, radius, carried + new))
    return boxes, errors, added, peak


def _backward_pass(layers: Sequence[Layer], boxes, errors, added, center: Tensor) -> Tensor:
    """``sum_k |coefficients_k| . d_k``: interval coefficients carried back from the output, summed where a layer
    has several readers."""
    inputs = reads(layers)
    pending = {len(layers) - 1: (center, torch.zeros_like(center))}
    total = center.new_zeros(center.shape[:2])
    for i in range(len(layers) - 1, -1, -1):
        if i not in pending:
            continue
        layer, (c, r) = layers[i], pending.pop(i)
        total = total + ((c.abs() + r) * added[i]).sum(tuple(range(2, c.dim())))
        if hasattr(layer.rule, "error_backward_many"):
            parts = layer.rule.error_backward_many(layer.op, c, r)
        else:
            parts = [layer.rule.error_backward(layer.op, c, r, boxes[i][0], errors[i][0])]
        for k, (pc, pr) in zip(inputs[i], parts):
            if k < 0:
                continue
            if k in pending:
                pending[k] = (pending[k][0] + pc, pending[k][1] + pr)
            else:
                pending[k] = (pc, pr)
    return total


def forward_error(model: nn.Module, box: Box, arith: Union[Arithmetic, float], C: Optional[Tensor] = None,
                  relu_bounds: Optional[Sequence[Box]] = None) -> Tensor:
    """Bound on ``|(C f)_float(x) - (C f)_real(x)|`` over ``box`` (``(B, *in)``) when every operation of ``model``
    (eval mode) rounds as ``arith`` says (a bare number is a unit roundoff without underflow or overflow limits):
    ``(B, M)`` for ``C (B, M, K)``, ``(B, K)`` without ``C``; ``inf`` everywhere when some operation may
    overflow (half the largest finite number is reachable).

    The rounding ``d_k`` each layer adds reaches the output through the layers after it, ``C W_L T W_(L-1) ... d_k``,
    where each ReLU contributes a diagonal ``T`` of secant slopes in [0, 1] (exactly 1 or 0 where the neuron is
    surely active or inactive). The coefficients are carried back through the network as intervals (one pass, like
    CROWN's back-substitution) and the bound is ``sum_k |coefficients_k| . d_k``: stable neurons compose exactly, so
    it is far tighter than carrying the error forward as an interval. ``relu_bounds`` (pre-activation boxes of the
    ReLUs, e.g. CROWN's) tighten the magnitudes and the stable sets. Computed in float64.
    """
    low, up = box.lower.detach().to(torch.float64), box.upper.detach().to(torch.float64)
    layers = build_layers(model, tuple(low.shape[1:]), torch.float64, fold_bn=False)
    if relu_bounds is not None:
        relu_bounds = [Box(b.lower.detach().to(torch.float64), b.upper.detach().to(torch.float64))
                       for b in relu_bounds]
    arith = arith if isinstance(arith, Arithmetic) else Arithmetic(float(arith))
    with torch.no_grad():
        boxes, errors, added, peak = _forward_pass(layers, Box(low, up), arith, relu_bounds)
        outputs = added[-1].shape[1:].numel() if layers else low[0].numel()
        if C is None:
            eye = torch.eye(outputs, dtype=torch.float64, device=low.device)
            C = eye.expand(low.shape[0], outputs, outputs)
        center = C.detach().to(torch.float64).transpose(0, 1).reshape((C.shape[1], low.shape[0]) +
                                                                       tuple(added[-1].shape[1:]))
        total = _backward_pass(layers, boxes, errors, added, center)
    if not peak < arith.largest / 2:  # an operation may overflow: no finite bound (nan counts as overflow)
        return torch.full_like(total.t(), float("inf"))
    return total.t() * (1 + 1e-6)  # the bound's own float64 evaluation, generously
