"""scikit-learn's 8x8 handwritten digits: a tiny offline dataset for the quickstart and tests.

1,797 images with values 0..16, scaled to uint8 as ``round(v * 255 / 16)``. Split deterministically by
position: the first 1,437 samples are ``train`` and the last 360 are ``test`` (80% / 20%, no shuffling).
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

N_TRAIN = 1437


def load_digits_arrays(split: str) -> Tuple[np.ndarray, np.ndarray]:
    """``(images uint8 (N, 1, 8, 8), labels int64 (N,))``; N = 1437 (train) or 360 (test)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise ImportError("the digits dataset needs scikit-learn: pip install 'torchcert[digits]'") from err
    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)[:, None]
    labels = bunch.target.astype(np.int64)
    part = slice(0, N_TRAIN) if split == "train" else slice(N_TRAIN, None)
    return np.ascontiguousarray(images[part]), labels[part]
