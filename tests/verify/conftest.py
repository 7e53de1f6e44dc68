"""A small network trained in seconds on scikit-learn's 8x8 digits with an IBP + natural loss, saved as a
checkpoint (shared by the soundness and CLI tests of this folder)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

EPS = 0.05


@pytest.fixture(scope="session")
def digits_checkpoint(tmp_path_factory) -> Path:
    pytest.importorskip("sklearn")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # session fixtures run outside the per-test one-thread fixture
    try:
        return _train(tmp_path_factory)
    finally:
        torch.set_num_threads(threads)


def _train(tmp_path_factory) -> Path:
    from torchcert.bounds import ibp, input_box, margin_matrix
    from torchcert.data import data_range, load_dataset, normalize
    from torchcert.losses import ibp_loss
    from torchcert.models import build_model, save_checkpoint

    torch.manual_seed(0)
    split = load_dataset("digits", "train")
    x_all, y_all = normalize(split.images, split.info), split.labels
    low, high = data_range(split.info)
    model = build_model("mlp", 1, 8, 10, width=32, depth=2)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for step in range(400):
        idx = torch.randint(0, len(split), (64,), generator=gen)
        x, y = x_all[idx], y_all[idx]
        eps = EPS * min(1.0, step / 200)
        box = input_box(x, eps, None, torch.tensor(split.info.std), low, high)
        lb = ibp(model, box, margin_matrix(y, 10)).lower
        loss = F.cross_entropy(model(x), y) + ibp_loss(lb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    path = tmp_path_factory.mktemp("digits_run") / "ckpt_last.pt"
    save_checkpoint(path, model.state_dict(), epoch=1)
    return path
