"""Bounds on neural network outputs over an input box: IBP, CROWN-IBP, CROWN and alpha-CROWN.

>>> C = margin_matrix(labels, 10)
>>> lb = ibp(model, input_box(x, eps, mean, std, data_min, data_max), C).lower   # (B, 9)
"""
from .alpha import alpha_crown
from .bn import BNStats, capture_bn_stats
from .box import Box, LinearBounds
from .crown import crown, crown_relu_bounds
from .ibp import ibp, ibp_with_relu_inputs
from .layers import RULES, BoundGraph
from .specs import input_box, margin_matrix

__all__ = [
    "Box", "BoundGraph", "LinearBounds", "BNStats", "RULES", "alpha_crown", "capture_bn_stats", "crown",
    "crown_relu_bounds", "ibp", "ibp_with_relu_inputs", "input_box", "margin_matrix",
]
