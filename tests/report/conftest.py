"""A small real run for the report tests: the digits preset with tiny overrides (as tests/train/test_run.py),
then a short ``verify`` of its checkpoint with every stage of the cascade."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

#: the overrides of tests/train/test_run.py (3 epochs on 96 images, test at epochs 2 and 3)
TINY = ["data.train_limit=96", "data.test_limit=40", "data.batch_size=32", "run.epochs=3", "eps.start=1",
        "eps.length=2", "run.progress=false", "optim.lr_milestones=[2]", "attack.test_steps=2", "run.test_interval=2"]
VERIFY_END = 12


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory) -> Path:
    """A finished run folder with one verification results file (of samples 0..VERIFY_END-1)."""
    pytest.importorskip("sklearn")
    from torchcert.config import load_config
    from torchcert.train.config import TrainConfig
    from torchcert.train.run import train
    from torchcert.verify.run import verify

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # session fixtures run outside the per-test one-thread setting
    try:
        out = tmp_path_factory.mktemp("report") / "tiny"
        result = train(load_config(TrainConfig, "digits/cc-ibp", TINY), out, device="cpu")
        verify(result.checkpoint, end=VERIFY_END, timeout=1.0, progress=False)
    finally:
        torch.set_num_threads(threads)
    return out


@pytest.fixture
def run_copy(finished_run, tmp_path) -> Path:
    """A copy of the finished run that a test may change (e.g. to make it look unfinished)."""
    return Path(shutil.copytree(finished_run, tmp_path / "copy"))
