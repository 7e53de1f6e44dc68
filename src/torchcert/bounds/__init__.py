"""Bounds on neural network outputs over an input box: IBP, CROWN-IBP, CROWN and alpha-CROWN."""
from .bn import BNStats, capture_bn_stats
from .box import Box, LinearBounds
from .ibp import ibp, ibp_with_relu_inputs
from .specs import input_box, margin_matrix

__all__ = [
    "Box", "LinearBounds", "BNStats", "capture_bn_stats", "ibp", "ibp_with_relu_inputs",
    "input_box", "margin_matrix",
]
