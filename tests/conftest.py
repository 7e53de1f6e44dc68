"""Shared test helpers: locating the read-only ``../shared`` folder (real MNIST, golden values)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED = REPO_ROOT.parent / "shared"


def shared_path(*parts: str) -> Path:
    """Path under ``../shared``; skips the calling test (with the reason) when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not found: this test needs the project's shared/ folder beside the clone")
    return path


@pytest.fixture
def mnist_dir() -> Path:
    return shared_path("data", "mnist")


@pytest.fixture
def golden_dir() -> Path:
    return shared_path("reference", "golden")


def pytest_configure(config: pytest.Config) -> None:
    """Tests are small: one thread (for every fixture scope) avoids oversubscribing the 2-core CI machine."""
    torch.set_num_threads(1)
