"""dataset_info values and aliases; the scikit-learn digits dataset."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from torchcert.data import DATASET_NAMES, dataset_info, default_data_dir, load_dataset


def test_infos():
    assert set(DATASET_NAMES) == {"mnist", "cifar10", "tinyimagenet", "imagenet64", "digits"}
    cifar = dataset_info("CIFAR")
    assert (cifar.name, cifar.in_ch, cifar.in_dim, cifar.num_class) == ("cifar10", 3, 32, 10)
    assert cifar.std == (0.2023, 0.1994, 0.2010)
    assert dataset_info("mnist").mean == (0.0,) and dataset_info("mnist").std == (1.0,)
    assert dataset_info("tinyimagenet").num_class == 200 and dataset_info("imagenet64").num_class == 1000
    assert dataset_info("imagenet64").mean == (0.4815, 0.4578, 0.4082)
    assert default_data_dir("cifar").as_posix() == "data/cifar10"
    with pytest.raises(ValueError, match="valid names: mnist, cifar10"):
        dataset_info("svhn")
    with pytest.raises(ValueError, match="valid splits"):
        load_dataset("digits", "valid")


def test_digits():
    sklearn = pytest.importorskip("sklearn.datasets")
    bunch = sklearn.load_digits()
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    assert train.images.shape == (1437, 1, 8, 8) and test.images.shape == (360, 1, 8, 8)
    assert torch.equal(test.labels, torch.from_numpy(bunch.target[1437:]).long())
    assert int(train.images.max()) == 255 and int(train.images.min()) == 0
    values = bunch.images[0]  # 0..16 -> round(v * 255 / 16)
    assert np.array_equal(train.images[0, 0].numpy(), np.rint(values * 255 / 16).astype(np.uint8))
    assert int(train.images[0, 0, 0, 2]) == round(bunch.images[0, 0, 2] * 255 / 16)
    assert (train.info.in_dim, train.info.in_ch, train.info.num_class) == (8, 1, 10)
