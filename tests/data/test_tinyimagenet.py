"""TinyImageNet: synthetic folders in the official zip layout and in the original script's layout."""
from __future__ import annotations

import shutil
import sys

import numpy as np
import pytest

from torchcert.data import load_dataset

Image = pytest.importorskip("PIL.Image")

WNIDS = ["n1000", "n0200", "n0100"]  # sorted string order: n0100 (0), n0200 (1), n1000 (2)
TRAIN_KS = [2, 10, 0, 1]  # file names sorted as strings: _0, _1, _10, _2


def _colour(wnid: str, k: int):
    return (int(wnid[1:3]) * 10 + k, 100 + k, 200 - k)


def _save(path, colour, grey=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", (64, 64), colour)
    (img.convert("L") if grey else img).save(path, format="JPEG", quality=95)


def _official_layout(root):
    for wnid in WNIDS:
        (root / "train" / wnid).mkdir(parents=True)
        (root / "train" / wnid / f"{wnid}_boxes.txt").write_text("ignored")
        for k in TRAIN_KS:
            _save(root / "train" / wnid / "images" / f"{wnid}_{k}.JPEG", _colour(wnid, k))
    val = [("val_3.JPEG", "n0200"), ("val_0.JPEG", "n1000"), ("val_2.JPEG", "n0100"), ("val_1.JPEG", "n0200")]
    for i, (name, wnid) in enumerate(val):
        _save(root / "val" / "images" / name, (10 * (i + 1), 20 * (i + 1), 30 * (i + 1)), grey=(i == 0))
    (root / "val" / "val_annotations.txt").write_text("".join(f"{n}\t{w}\t0\t0\t63\t63\n" for n, w in val))
    (root / "wnids.txt").write_text("\n".join(WNIDS))


def _check(train, test):
    assert train.images.shape == (12, 3, 64, 64) and train.info.num_class == 200
    assert train.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    expected = [_colour(w, k) for w in sorted(WNIDS) for k in (0, 1, 10, 2)]
    assert np.abs(train.images[:, :, 32, 32].numpy().astype(int) - np.array(expected)).max() <= 3
    # val: by class, then file name: n0100 val_2; n0200 val_1, val_3; n1000 val_0
    assert test.labels.tolist() == [0, 1, 1, 2]
    red = test.images[:, 0, 32, 32].numpy().astype(int)
    # val_3 was saved grey-scale (L = 0.299 R + 0.587 G + 0.114 B = 18 for (10, 20, 30)): three equal channels
    assert np.abs(red - np.array([30, 40, 18, 20])).max() <= 3
    grey = test.images[2, :, 32, 32]
    assert grey[0] == grey[1] == grey[2]
    assert test.images[0, :, 32, 32].tolist() != [int(test.images[0, 0, 32, 32])] * 3


def test_official_zip_layout_and_cache(tmp_path):
    _official_layout(tmp_path / "tiny-imagenet-200")
    train = load_dataset("tinyimagenet", "train", data_dir=tmp_path)
    test = load_dataset("tinyimagenet", "test", data_dir=tmp_path)
    _check(train, test)
    shutil.rmtree(tmp_path / "tiny-imagenet-200" / "train" / "n0100" / "images")  # cache answers from now on
    assert bool((load_dataset("tinyimagenet", "train", data_dir=tmp_path).images == train.images).all())


def test_reorganised_layout_of_the_original_script(tmp_path):
    root = tmp_path / "tiny-imagenet-200"
    _official_layout(root)
    for wnid in WNIDS:
        for path in (root / "train" / wnid / "images").iterdir():
            path.rename(root / "train" / wnid / path.name)
        (root / "train" / wnid / "images").rmdir()
    for line in (root / "val" / "val_annotations.txt").read_text().splitlines():
        name, wnid = line.split("\t")[:2]
        (root / "val" / wnid).mkdir(exist_ok=True)
        (root / "val" / "images" / name).rename(root / "val" / wnid / name)
    (root / "val" / "images").rmdir()
    (root / "val" / "val_annotations.txt").unlink()
    _check(load_dataset("tinyimagenet", "train", data_dir=root), load_dataset("tinyimagenet", "test", data_dir=root))


def test_missing_data_and_missing_pillow(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="tiny-imagenet-200.zip") as info:
        load_dataset("tinyimagenet", "train", data_dir=tmp_path / "none")
    assert str(tmp_path / "none") in str(info.value)
    _official_layout(tmp_path / "tiny-imagenet-200")
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match=r"torchcert\[imagenet\]"):
        load_dataset("tinyimagenet", "test", data_dir=tmp_path)
