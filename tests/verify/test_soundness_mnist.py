"""On a small CNN trained on real MNIST (../shared), no sample the cascade marks verified is broken by a strong
attack, and every falsified verdict carries a counterexample that a forward pass confirms."""
from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from torchcert.verify import verify_sample
from torchcert.verify.setup import build_setup

from .test_soundness_trained import _broken

EPS = 0.1


def _train_small_cnn(mnist_dir: Path, out: Path) -> Path:
    """cnn_small, 300 steps of natural + IBP loss on the first 6,000 training images (seconds on one thread)."""
    from torchcert.bounds import ibp, input_box, margin_matrix
    from torchcert.data import data_range, load_dataset, normalize
    from torchcert.losses import ibp_loss
    from torchcert.models import build_model, save_checkpoint

    torch.manual_seed(0)
    split = load_dataset("mnist", "train", data_dir=mnist_dir)
    x_all, y_all = normalize(split.images[:6000], split.info), split.labels[:6000]
    low, high = data_range(split.info)
    model = build_model("cnn_small", 1, 28)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    for step in range(300):
        idx = torch.randint(0, len(x_all), (64,), generator=gen)
        x, y = x_all[idx], y_all[idx]
        box = input_box(x, EPS * min(1.0, step / 150), None, torch.tensor(split.info.std), low, high)
        loss = F.cross_entropy(model(x), y) + ibp_loss(ibp(model, box, margin_matrix(y, 10)).lower)
        opt.zero_grad()
        loss.backward()
        opt.step()
    path = out / "ckpt_last.pt"
    save_checkpoint(path, model.state_dict(), epoch=1)
    return path


def test_verified_mnist_samples_survive_strong_attacks(tmp_path, mnist_dir):
    checkpoint = _train_small_cnn(mnist_dir, tmp_path)
    args = argparse.Namespace(checkpoint=str(checkpoint), preset=None, dataset="mnist", model="cnn_small",
                              model_params="", eps=EPS, data_dir=str(mnist_dir), device="cpu", dtype="float32")
    setup = build_setup(args)
    statuses: dict[str, int] = {}
    for idx in range(20):
        x, lower, upper, label = setup.sample(idx)
        result = verify_sample(setup.model, lower, upper, label, timeout=3.0, x=x)
        statuses[result.status] = statuses.get(result.status, 0) + 1
        if result.status == "verified":
            assert not _broken(setup.model, lower, upper, label), (idx, result.method)
        if result.status == "falsified":
            assert result.counterexample is not None
            cex = result.counterexample
            assert bool(((cex >= lower) & (cex <= upper)).all()), idx
            with torch.no_grad():
                assert int(setup.model(cex).argmax()) != label, idx
    assert statuses.get("verified", 0) >= 5, statuses
