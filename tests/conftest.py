"""Shared test helpers: locating the read-only ``../shared`` folder (real MNIST, golden values)."""
from __future__ import annotations

import os
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
def vnncomp_dir() -> Path:
    return shared_path("vnncomp")


@pytest.fixture
def golden_dir() -> Path:
    return shared_path("reference", "golden")


def pytest_configure(config: pytest.Config) -> None:
    """Tests are small: one thread (for every fixture scope) avoids oversubscribing the 2-core CI machine.

    ``TORCHCERT_TEST_DEVICE=cuda`` makes CUDA the default device of every tensor the tests create (a smoke run
    of the whole suite on a GPU machine; see ``benchmarks/gpu_check.sh``). Tests written for the CPU then also
    meet CPU/GPU mixing, so a failure there is a lead to read, not by itself a bug.
    """
    torch.set_num_threads(1)
    device = os.environ.get("TORCHCERT_TEST_DEVICE")
    if device:
        torch.set_default_device(device)
