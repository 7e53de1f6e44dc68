"""torchcert: certified training and verification of neural networks against L-infinity perturbations."""
from __future__ import annotations

__version__ = "0.1.0"
