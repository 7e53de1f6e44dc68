"""ImageNet64: synthetic npz batches; the string-sorted class order of the original ImageFolder pipeline."""
from __future__ import annotations

import numpy as np
import pytest

from torchcert.data import load_dataset
from torchcert.data.imagenet64 import folder_class_index


def test_folder_class_index_by_hand():
    lookup = folder_class_index()
    # folders "0", "1", "10", "100".."109", "11", ... ; "9" is first of the 111 names starting with 9; "999" last
    hand = {0: 0, 1: 1, 10: 2, 100: 3, 109: 12, 11: 13, 9: 889, 99: 989, 999: 999, 2: 112}
    assert {label: int(lookup[label]) for label in hand} == hand
    assert sorted(lookup.tolist()) == list(range(1000))
    names = sorted(str(i) for i in range(1000))
    assert all(names[lookup[i]] == str(i) for i in range(1000))


def _write(path, labels, first_id):
    """Sample k: all three planes constant, R = id, G = id + 1, B = 255 - id; pixel (0, 1) of R is id + 2."""
    n = len(labels)
    ids = np.arange(first_id, first_id + n, dtype=np.uint8)[:, None]
    data = np.concatenate([np.repeat(ids, 4096, 1), np.repeat(ids + 1, 4096, 1), np.repeat(255 - ids, 4096, 1)], 1)
    data[:, 1] = ids[:, 0] + 2
    np.savez(path, data=data, labels=np.array(labels))


def test_synthetic_npz(tmp_path):
    train_dir = tmp_path / "Imagenet64_train_npz"
    train_dir.mkdir()
    _write(train_dir / "train_data_batch_10.npz", [2, 101], 20)
    _write(train_dir / "train_data_batch_1.npz", [11, 1, 2], 0)
    _write(train_dir / "train_data_batch_2.npz", [10, 12], 10)
    (tmp_path / "val").mkdir()
    _write(tmp_path / "val" / "val_data.npz", [1000, 10, 1], 50)
    train = load_dataset("imagenet64", "train", data_dir=tmp_path)
    # 1-based label -> folder str(label - 1) -> index: 1->"0"->0, 2->"1"->1, 11->"10"->2, 101->"100"->3,
    # 12->"11"->13, 10->"9"->889. Within a class, batches 1, 2, ..., 10 in numeric order.
    assert train.labels.tolist() == [0, 1, 1, 2, 3, 13, 889]
    assert train.images[:, 0, 0, 0].tolist() == [1, 2, 20, 0, 21, 11, 10]
    assert train.images[:, 1, 5, 5].tolist() == [2, 3, 21, 1, 22, 12, 11]
    assert train.images[:, 2, 63, 63].tolist() == [254, 253, 235, 255, 234, 244, 245]
    assert train.images[:, 0, 0, 1].tolist() == [3, 4, 22, 2, 23, 13, 12]
    test = load_dataset("imagenet64", "test", data_dir=tmp_path)
    assert test.labels.tolist() == [0, 889, 999] and test.images[:, 0, 9, 9].tolist() == [52, 51, 50]
    assert (tmp_path / "torchcert-cache" / "train-images.npy").is_file()
    for path in train_dir.iterdir():  # served from the memory-mapped cache from now on
        path.unlink()
    again = load_dataset("imagenet64", "train", data_dir=tmp_path)
    assert again.labels.tolist() == train.labels.tolist() and bool((again.images == train.images).all())


def test_bad_labels_and_missing(tmp_path):
    _write(tmp_path / "val_data.npz", [0, 3], 0)
    with pytest.raises(ValueError, match="1..1000"):
        load_dataset("imagenet64", "test", data_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="train_data_batch_1..10.npz") as info:
        load_dataset("imagenet64", "train", data_dir=tmp_path / "none", download=True)
    assert str(tmp_path / "none") in str(info.value) and "image-net.org" in str(info.value)
