"""normalize / data_range / train_valid_split / iterate_batches / Split checks."""
from __future__ import annotations

import pytest
import torch

from torchcert.data import Split, data_range, dataset_info, iterate_batches, normalize, train_valid_split


def _split(n: int) -> Split:
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 8, 8).contiguous()
    return Split(images, torch.arange(n), dataset_info("digits"))


def test_normalize_by_hand():
    info = dataset_info("cifar10")
    x = torch.tensor([255, 0, 51], dtype=torch.uint8).view(1, 3, 1, 1)
    out = normalize(x, info)
    expected = [(1 - 0.4914) / 0.2023, (0 - 0.4822) / 0.1994, (0.2 - 0.4465) / 0.2010]
    assert out.dtype == torch.float32
    assert torch.allclose(out.view(3), torch.tensor(expected), atol=1e-6)
    mnist = normalize(torch.tensor([0, 255, 51], dtype=torch.uint8).view(3, 1, 1, 1), dataset_info("mnist"))
    assert mnist.view(3).tolist() == pytest.approx([0.0, 1.0, 0.2])


def test_data_range():
    lo, hi = data_range(dataset_info("tinyimagenet"), dtype=torch.float64)
    assert lo.shape == hi.shape == (1, 3, 1, 1) and lo.dtype == torch.float64
    assert lo.view(3).tolist() == pytest.approx([-0.4802 / 0.2302, -0.4481 / 0.2265, -0.3975 / 0.2262])
    assert hi.view(3).tolist() == pytest.approx([0.5198 / 0.2302, 0.5519 / 0.2265, 0.6025 / 0.2262])
    full = torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1).expand(2, 3, 1, 1)
    x = normalize(full, dataset_info("tinyimagenet"), torch.float64)
    assert torch.allclose(x[0:1], lo) and torch.allclose(x[1:2], hi)


def test_valid_share_is_the_training_share():
    train, valid = train_valid_split(_split(10), 0.8)
    assert train.labels.tolist() == list(range(8)) and valid.labels.tolist() == [8, 9]
    train, valid = train_valid_split(_split(10), 0.55)  # int(5.5) = 5 training samples
    assert len(train) == 5 and valid.labels.tolist() == [5, 6, 7, 8, 9]
    assert torch.equal(train.images[:, 0, 0, 0], train.labels.to(torch.uint8))


def test_shuffled_split():
    train, valid = train_valid_split(_split(50), 0.8, shuffle=True, seed=3)
    perm = torch.randperm(50, generator=torch.Generator().manual_seed(3))
    assert train.labels.tolist() == perm[:40].tolist() and valid.labels.tolist() == perm[40:].tolist()
    again, _ = train_valid_split(_split(50), 0.8, shuffle=True, seed=3)
    assert torch.equal(again.labels, train.labels)
    for share in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="kept for training"):
            train_valid_split(_split(10), share)


def test_batches_keep_the_last_partial_batch():
    batches = list(iterate_batches(_split(10), 4))
    assert [b[1].tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert [len(b[1]) for b in iterate_batches(_split(10), 4, drop_last=True)] == [4, 4]
    images, labels = batches[2]
    assert images.shape == (2, 1, 8, 8) and images.dtype == torch.uint8


def test_shuffled_batches_are_a_reproducible_permutation():
    run = lambda: torch.cat([y for _, y in iterate_batches(_split(23), 5, True, torch.Generator().manual_seed(9))])
    order = run()
    assert torch.equal(order, torch.randperm(23, generator=torch.Generator().manual_seed(9)))
    assert torch.equal(order, run())
    for images, labels in iterate_batches(_split(23), 5, True, torch.Generator().manual_seed(9)):
        assert torch.equal(images[:, 0, 0, 0].long(), labels)
    with pytest.raises(ValueError, match="positive"):
        next(iterate_batches(_split(3), 0))


def test_split_checks_its_tensors():
    with pytest.raises(ValueError, match="uint8"):
        Split(torch.zeros(2, 1, 8, 8), torch.zeros(2, dtype=torch.int64), dataset_info("digits"))
    with pytest.raises(ValueError, match="labels"):
        Split(torch.zeros(2, 1, 8, 8, dtype=torch.uint8), torch.zeros(3, dtype=torch.int64), dataset_info("digits"))
