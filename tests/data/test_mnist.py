"""MNIST: the real files from ../shared, the IDX reader, and the missing-data message."""
from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest
import torch

from torchcert.data import load_dataset
from torchcert.data.mnist import read_idx


def test_real_mnist_train(mnist_dir):
    split = load_dataset("mnist", "train", data_dir=mnist_dir)
    assert split.images.shape == (60000, 1, 28, 28) and split.images.dtype == torch.uint8
    assert split.labels.dtype == torch.int64
    assert split.labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert split.info.name == "mnist" and split.info.num_class == 10


def test_real_mnist_test(mnist_dir):
    split = load_dataset("mnist", "test", data_dir=mnist_dir)
    assert split.images.shape == (10000, 1, 28, 28)
    assert split.labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    counts = torch.bincount(split.labels, minlength=10).tolist()
    assert counts == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert int(split.images.max()) == 255 and int(split.images.min()) == 0


def test_raw_and_torchvision_layout(mnist_dir, tmp_path):
    """Uncompressed files in torchvision's MNIST/raw folder are found and read identically."""
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for stem in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        with gzip.open(mnist_dir / (stem + ".gz"), "rb") as src, open(raw / stem, "wb") as dst:
            shutil.copyfileobj(src, dst)
    a = load_dataset("mnist", "test", data_dir=tmp_path)
    b = load_dataset("mnist", "test", data_dir=mnist_dir)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)


def test_read_idx_hand_made(tmp_path):
    header = bytes([0, 0, 8, 3]) + np.array([2, 2, 3], dtype=">i4").tobytes()
    (tmp_path / "x").write_bytes(header + bytes(range(12)))
    np.testing.assert_array_equal(read_idx(tmp_path / "x"), np.arange(12, dtype=np.uint8).reshape(2, 2, 3))
    (tmp_path / "short").write_bytes(header + bytes(range(11)))
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "short")
    (tmp_path / "bad").write_bytes(b"\x00\x00\x0d\x01" + bytes(8))
    with pytest.raises(ValueError, match="not an IDX"):
        read_idx(tmp_path / "bad")


def test_missing_data_message(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_dataset("mnist", "train", data_dir=tmp_path / "nowhere")
    message = str(info.value)
    assert str(tmp_path / "nowhere") in message
    assert "download=True" in message and "--download" in message
