"""Back-substitution of feature-map neurons with patches shared by the neurons of one position.

The coefficients of neuron ``(b, c, y, x)`` on an earlier feature map are zero outside its receptive
field, and all the neurons at position ``(b, y, x)`` share it. So a chunk holds ``P`` positions with
``R`` rows each: ``A (P, R, C, ph, pw)`` plus the patch offset ``(oy, ox)`` of every position on that map
and its example ``b``. A transposed convolution moves all patches back at once; window rows and columns
outside the map (the convolution's zero padding) are cropped away, or masked to zero where only some
positions of the chunk reach them; relaxations and the input box are gathered once per position and
broadcast over its rows.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .box import Box
from .layers import Layer
from .rules import affine, avgpool, batchnorm, conv, identity, relu
from .rules._window import channel_view

Rows = Tuple[Tensor, Tensor, Tensor, Tensor]  # A (P, R, C, ph, pw), example, oy, ox (P,)


def channels_last(t: Tensor) -> Tensor:
    """``t (P, R, C, h, w)`` with channels-last memory (same values; transposed convolutions run faster)."""
    return t.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)


def _flat(t: Tensor) -> Tensor:
    """``(P, R, C, h, w) -> (P, R, h w C)``: a view for channels-last ``t``; a consistent order always."""
    return t.permute(0, 1, 3, 4, 2).reshape(t.shape[0], t.shape[1], -1)


def _dot(A: Tensor, v: Tensor) -> Tensor:
    """``sum_{c,y,x} A[p, r] v[p, 0]`` for ``A (P, R, C, h, w)``, ``v (P, 1, C, h, w)``: ``(P, R)``."""
    return (_flat(A) @ _flat(v).transpose(1, 2)).squeeze(2)


def gather(maps: Tensor, bidx: Tensor, oy: Tensor, ox: Tensor, ph: int, pw: int) -> Tensor:
    """Windows ``maps[b, :, oy:oy+ph, ox:ox+pw]`` per position (zero outside): ``(P, 1, C, ph, pw)``."""
    batch, channels, h, w = maps.shape
    hp, wp = h + 2 * ph, w + 2 * pw
    flat = F.pad(maps, (pw, pw, ph, ph)).view(batch, channels, hp * wp)
    ys = (oy + ph).unsqueeze(1) + torch.arange(ph, device=maps.device)
    xs = (ox + pw).unsqueeze(1) + torch.arange(pw, device=maps.device)
    index = (ys.unsqueeze(2) * wp + xs.unsqueeze(1)).view(-1, 1, ph * pw)
    channel = torch.arange(channels, device=maps.device).view(1, -1, 1)
    return flat[bidx.view(-1, 1, 1), channel, index].view(-1, 1, channels, ph, pw)


def _inside(o: Tensor, length: int, size: int) -> Tensor:
    """``(P, length)`` mask of positions ``o + i`` inside ``[0, size)``."""
    pos = o.unsqueeze(1) + torch.arange(length, device=o.device)
    return (pos >= 0) & (pos < size)


def empty_window(A: Tensor) -> bool:
    """True when the window of rows ``A (P, R, C, ph, pw)`` has no element (it read only padding)."""
    return A.shape[-1] == 0 or A.shape[-2] == 0


def _common_crop(o: Tensor, length: int, size: int) -> Tuple[int, int]:
    """Rows ``[start, stop)`` of a window of ``length`` at offsets ``o`` (P,) that are outside the map
    for no position: cropping them keeps every in-map entry."""
    start = max(0, -int(o.max()))
    stop = length - max(0, int(o.min()) + length - size)
    return start, max(start, stop)


def _fit(rows: Rows, in_shape: Tuple[int, ...]) -> Rows:
    """Restrict the windows of ``rows`` to the ``in_shape`` map: crop the border rows/columns that lie
    outside it for every position of the chunk (less work downstream; chunks of positions with the same
    border, see ``crop_classes``, crop exactly), then zero the entries still outside for some positions."""
    A, bidx, oy, ox = rows
    y0, y1 = _common_crop(oy, A.shape[3], in_shape[1])
    x0, x1 = _common_crop(ox, A.shape[4], in_shape[2])
    if (y0, y1, x0, x1) != (0, A.shape[3], 0, A.shape[4]):
        A = channels_last(A[:, :, :, y0:y1, x0:x1])
        oy, ox = oy + y0, ox + x0
    mask = _inside(oy, A.shape[3], in_shape[1]).unsqueeze(2) & _inside(ox, A.shape[4], in_shape[2]).unsqueeze(1)
    if not bool(mask.all()):
        A = A * mask.view(A.shape[0], 1, 1, *mask.shape[1:]).to(A.dtype)
    return A, bidx, oy, ox


def window_elements(layers: Sequence[Layer]) -> int:
    """Largest number of coefficients one row of a single output position holds on its way back through
    ``layers`` (channels x window, windows capped by the maps): sizes the chunks."""
    ly = lx = 1
    largest = math.prod(layers[-1].out_shape[:1])
    for layer in reversed(layers):
        if layer.rule in (conv, avgpool):
            ly = min(conv.input_window(layer.op, 0, 0, ly)[1], layer.in_shape[1])
            lx = min(conv.input_window(layer.op, 1, 0, lx)[1], layer.in_shape[2])
        largest = max(largest, layer.in_shape[0] * ly * lx)
    return largest


def crop_classes(layers: Sequence[Layer], out_shape: Tuple[int, ...]) -> Tuple[Tensor, Tensor]:
    """Border class ``(H,)``, ``(W,)`` of every output row and column of the map ``layers`` compute:
    positions of one class have their windows cropped alike at every step of the back-substitution
    (``_fit``), so a chunk of one class crops exactly and needs no mask."""
    classes = []
    for axis in (0, 1):
        signatures: dict = {}
        ids = []
        for pos in range(out_shape[1 + axis]):
            start, length, crops = pos, 1, []
            for layer in reversed(layers):
                if layer.rule in (conv, avgpool):
                    start, lo, hi = conv.input_range(layer.op, axis, start, length, layer.in_shape[1 + axis])
                    length = hi - lo
                    crops.append((lo, hi))
            ids.append(signatures.setdefault(tuple(crops), len(signatures)))
        classes.append(torch.tensor(ids))
    return classes[0], classes[1]


def _conv_back(op: conv.ConvOp, rows: Rows, in_shape: Tuple[int, ...]) -> Tuple[Rows, Tensor]:
    A, bidx, oy, ox = rows
    p, r = A.shape[:2]
    bias = A.sum((3, 4)) @ op.bias
    out = conv.transpose(op, A.reshape((p * r,) + A.shape[2:]))
    out = out.view((p, r) + out.shape[1:])
    oy, ox = oy * op.stride[0] - op.padding[0], ox * op.stride[1] - op.padding[1]
    return _fit((out, bidx, oy, ox), in_shape), bias


def unit_conv_rows(op: conv.ConvOp, channels: Tensor, valid: Tensor, bidx: Tensor, y: Tensor, x: Tensor,
                   in_shape: Tuple[int, ...]) -> Tuple[Rows, Tensor]:
    """Rows ``+-e_c`` at output positions ``(b, y, x)`` moved back through a conv: the kernels ``+-W_c``.

    ``channels``, ``valid``: ``(P, S)``. Returns rows ``(P, 2S, Cin, kh, kw)`` (first the ``+`` then the
    ``-`` rows; invalid ones zero) and their bias ``(P, 2S)``, as :func:`_conv_back` of the unit rows.
    """
    if op.groups != 1:
        raise ValueError("unit_conv_rows needs groups=1")
    sign = valid.to(op.weight.dtype)
    A = op.window_weight[channels] * sign.view(sign.shape + (1, 1, 1))
    bias = op.bias[channels] * sign
    oy, ox = y * op.stride[0] - op.padding[0], x * op.stride[1] - op.padding[1]
    A = channels_last(torch.cat([A, -A], 1))
    return _fit((A, bidx, oy, ox), in_shape), torch.cat([bias, -bias], 1)


def _window_lines(relax: relu.Relaxation, bidx: Tensor, oy: Tensor, ox: Tensor, ph: int,
                  pw: int) -> Tuple[Tensor, Tensor, Tensor]:
    """The relaxation on each position's window, channels-last ``(P, 1, C, ph, pw)`` (zero outside the map):
    lower slope ``a_l``, slope gap ``a_u - a_l`` and upper intercept ``b_u``, gathered in one indexing."""
    stacked = torch.cat([relax.lower_slope, relax.upper_slope - relax.lower_slope, relax.upper_intercept], 1)
    lower, gap, intercept = channels_last(gather(stacked, bidx, oy, ox, ph, pw)).chunk(3, 2)
    return lower, gap, intercept


def shared_unit_relu_rows(op: conv.ConvOp, relax: relu.Relaxation, channels: Tensor, bidx: Tensor, y: Tensor,
                          x: Tensor, in_shape: Tuple[int, ...]) -> Tuple[Rows, Tensor]:
    """:func:`unit_conv_rows` of the same ``channels`` ``(S,)`` at every position, then the ReLU step before
    the conv, in one pass: the kernels ``+-W_c`` are shared, so ``W a_l + W- (a_u - a_l)`` is a broadcast
    product of the kernels with each position's slopes, and the intercept term a small matrix product
    (no per-row clamp, copy or reduction). Slopes are zero outside the map, so are those rows.
    Rows ``(P, 2S, Cin, kh, kw)`` (cropped to the map where every position allows), bias ``(P, 2S)``."""
    W, b = op.window_weight[channels], op.bias[channels]
    s = W.shape[0]
    oy, ox = y * op.stride[0] - op.padding[0], x * op.stride[1] - op.padding[1]
    y0, y1 = _common_crop(oy, W.shape[2], in_shape[1])
    x0, x1 = _common_crop(ox, W.shape[3], in_shape[2])
    if y0 == y1 or x0 == x1:  # every window reads only padding: the neurons are their bias
        A = W.new_zeros((oy.shape[0], 2 * s, W.shape[1], y1 - y0, x1 - x0))
        return (A, bidx, oy + y0, ox + x0), torch.cat([b, -b]).expand(oy.shape[0], 2 * s)
    W = channels_last(W[:, :, y0:y1, x0:x1].unsqueeze(0))
    oy, ox = oy + y0, ox + x0
    lower, gap, intercept = _window_lines(relax, bidx, oy, ox, y1 - y0, x1 - x0)
    pos, neg = W.clamp(min=0), W.clamp(max=0)
    if torch.is_grad_enabled() and W.requires_grad:
        A = torch.cat([torch.addcmul(W * lower, neg, gap), torch.addcmul(-W * lower, -pos, gap)], 1)
    else:  # written in place into one buffer
        A = channels_last(W.new_empty((oy.shape[0], 2 * s) + W.shape[2:]))
        torch.mul(W, lower, out=A[:, :s]).addcmul_(neg, gap)    # A+ a_l + A- a_u of A = W
        torch.mul(-W, lower, out=A[:, s:]).addcmul_(-pos, gap)  # the same of A = -W, whose A- is -pos
    relu_bias = _flat(intercept).squeeze(1) @ torch.cat([_flat(neg), -_flat(pos)], 1).squeeze(0).t()
    return (A, bidx, oy, ox), relu_bias + torch.cat([b, -b])


def _relu_back(relax: relu.Relaxation, rows: Rows) -> Tuple[Rows, Tensor]:
    """``A -> A a_l + A- (a_u - a_l)`` (= ``A+ a_l + A- a_u``), bias ``sum A- b_u``."""
    A, bidx, oy, ox = rows
    lower, gap, intercept = _window_lines(relax, bidx, oy, ox, *A.shape[3:])
    neg = A.clamp(max=0)
    bias = _dot(neg, intercept)
    out = A * lower if A.requires_grad else A.mul_(lower)  # the rows are owned by this back-substitution
    return (out.addcmul_(neg, gap), bidx, oy, ox), bias


def _scale_back(layer: Layer, relax, rows: Rows) -> Tuple[Rows, Tensor]:
    """A per-channel ``ScaleOp`` (BatchNorm, constant affine): rows scaled, shift into the bias."""
    A, bidx, oy, ox = rows
    bias = (A * channel_view(layer.op.shift, 3)).sum((2, 3, 4))
    return (A * channel_view(layer.op.scale, 3), bidx, oy, ox), bias


#: rule -> its step on patch rows; a feature-map rule missing here sends CROWN to the graph walk (``passes``)
STEPS = {
    relu: lambda layer, relax, rows: _relu_back(relax, rows),
    conv: lambda layer, relax, rows: _conv_back(layer.op, rows, layer.in_shape),
    avgpool: lambda layer, relax, rows: _conv_back(layer.op, rows, layer.in_shape),
    batchnorm: _scale_back,
    affine: _scale_back,
    identity: lambda layer, relax, rows: (rows, rows[0].new_zeros(rows[0].shape[:2])),
}


def passes(rule) -> bool:
    """Whether patch rows pass layers of this rule (else the graph walk's dense rows must)."""
    return rule in STEPS


def _step(layer: Layer, relax, rows: Rows) -> Tuple[Rows, Tensor]:
    if layer.rule not in STEPS:
        raise ValueError(f"feature-map patches cannot pass {layer.name} ({layer.rule.__name__})")
    return STEPS[layer.rule](layer, relax, rows)


def lower_bound(layers: Sequence[Layer], rows: Rows, box: Box,
                relaxations: Sequence[relu.Relaxation], bias: Optional[Tensor] = None) -> Tensor:
    """Lower bound ``(P, R)`` of each row's ``A . layers(x) + bias`` over ``box`` (feature-map layers).

    Windows that read only padding (empty after cropping) carry no coefficient: the bound is the bias."""
    j = sum(layer.rule is relu for layer in layers)
    bias = rows[0].new_zeros(rows[0].shape[:2]) if bias is None else bias
    for layer in reversed(layers):
        if empty_window(rows[0]):
            return bias
        if layer.rule is relu:
            j -= 1
        rows, b = _step(layer, relaxations[j] if layer.rule is relu else None, rows)
        bias = bias + b
    A, bidx, oy, ox = rows
    ph, pw = A.shape[3:]
    if empty_window(A):
        return bias
    center = gather(box.center, bidx, oy, ox, ph, pw)
    radius = gather(box.radius, bidx, oy, ox, ph, pw)
    return _dot(A, center) - _dot(A.abs(), radius) + bias
