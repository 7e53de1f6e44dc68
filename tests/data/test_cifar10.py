"""CIFAR-10: synthetic batches in the official pickle format, the restricted unpickler, download + extraction."""
from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
from collections import OrderedDict

import numpy as np
import pytest

from torchcert.data import Checksum, ChecksumError, load_dataset
from torchcert.data.cifar10 import BATCHES, FOLDER, download_cifar10, read_batch


def _rows(batch: int, n: int) -> np.ndarray:
    """Row r: R plane = 10 * batch + r, G plane = 100 + r, B plane = 200 + r; pixel (0, 1) of R is 1 more."""
    rows = np.zeros((n, 3072), dtype=np.uint8)
    for r in range(n):
        rows[r, :1024], rows[r, 1024:2048], rows[r, 2048:] = 10 * batch + r, 100 + r, 200 + r
        rows[r, 1] += 1
    return rows


def _write_batches(folder) -> None:
    folder.mkdir(parents=True)
    for b, name in enumerate(BATCHES["train"] + BATCHES["test"], start=1):
        entry = {b"batch_label": name.encode(), b"data": _rows(b, 2), b"labels": [b % 10, (b + 5) % 10],
                 b"filenames": [b"a.png", b"b.png"]}
        (folder / name).write_bytes(pickle.dumps(entry, protocol=2))


def test_synthetic_batches(tmp_path):
    _write_batches(tmp_path / FOLDER)
    train = load_dataset("cifar10", "train", data_dir=tmp_path)
    assert train.images.shape == (10, 3, 32, 32)
    assert train.labels.tolist() == [1, 6, 2, 7, 3, 8, 4, 9, 5, 0]
    assert train.images[:, 0, 0, 0].tolist() == [10, 11, 20, 21, 30, 31, 40, 41, 50, 51]
    assert train.images[3, :, 5, 7].tolist() == [21, 101, 201]
    assert int(train.images[3, 0, 0, 1]) == 22  # row-major 32x32 planes
    test = load_dataset("cifar", "test", data_dir=tmp_path / FOLDER)
    assert test.labels.tolist() == [6, 1] and test.images[:, 0, 0, 0].tolist() == [60, 61]


def test_unpickler_refuses_other_globals(tmp_path):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": OrderedDict(), b"labels": []}))
    with pytest.raises(pickle.UnpicklingError, match="refusing global collections.OrderedDict"):
        read_batch(path)


def test_missing_message(tmp_path):
    with pytest.raises(FileNotFoundError, match="download=True") as info:
        load_dataset("cifar10", "test", data_dir=tmp_path)
    assert str(tmp_path / FOLDER) in str(info.value)


def _archive(tmp_path) -> bytes:
    _write_batches(tmp_path / "src" / FOLDER)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(tmp_path / "src" / FOLDER, arcname=FOLDER)
        evil = tarfile.TarInfo("../evil.txt")
        evil.size = 4
        tar.addfile(evil, io.BytesIO(b"evil"))
    return buffer.getvalue()


def test_download_and_extract(tmp_path, serve):
    data = _archive(tmp_path)
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "cifar.tgz").write_bytes(data)
    server = serve(tmp_path / "www")
    target = tmp_path / "data" / "cifar10"
    download_cifar10(target, urls=[server.url + "cifar.tgz"], checksum=Checksum("md5", hashlib.md5(data).hexdigest()))
    assert not (tmp_path / "data" / "evil.txt").exists() and not (target / "evil.txt").exists()
    assert load_dataset("cifar10", "train", data_dir=target).labels.tolist() == [1, 6, 2, 7, 3, 8, 4, 9, 5, 0]
    with pytest.raises(ChecksumError, match="refusing"):
        download_cifar10(tmp_path / "other", urls=[server.url + "cifar.tgz"], checksum=Checksum("md5", "0" * 32))


def test_numpy1_pickles_are_accepted(tmp_path):
    """The official files were written by numpy 1 (global numpy.core.multiarray._reconstruct)."""
    raw = pickle.dumps({b"data": _rows(3, 2), b"labels": [4, 5]}, protocol=2)
    raw = raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray" in raw
    (tmp_path / "test_batch").write_bytes(raw)
    images, labels = read_batch(tmp_path / "test_batch")
    assert labels.tolist() == [4, 5] and images[:, 0, 0, 0].tolist() == [30, 31]
