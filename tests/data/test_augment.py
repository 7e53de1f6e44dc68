"""Augmentation: exact flip/crop semantics on hand-made tensors, distribution, reproducibility, no per-sample loop."""
from __future__ import annotations

import sys

import pytest
import torch
import torch.nn.functional as F

from torchcert.data import AUGMENTATIONS, augment, augmentation_for, flip_crop

IMG = torch.tensor([[1, 2, 3], [4, 5, 6], [7, 8, 9]], dtype=torch.uint8).view(1, 1, 3, 3)


def _crop(images, flip, top, left, padding):
    b = images.shape[0]
    return flip_crop(images, torch.tensor([flip] * b), torch.tensor([top] * b), torch.tensor([left] * b), padding)


def test_edge_padded_crop_by_hand():
    assert _crop(IMG, False, 0, 0, 1)[0, 0].tolist() == [[1, 1, 2], [1, 1, 2], [4, 4, 5]]
    assert _crop(IMG, False, 1, 1, 1)[0, 0].tolist() == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert _crop(IMG, False, 2, 0, 1)[0, 0].tolist() == [[4, 4, 5], [7, 7, 8], [7, 7, 8]]
    # padding 2, offset (0, 4): two replicated top rows, shifted two columns right-to-left with edge values
    assert _crop(IMG, False, 0, 4, 2)[0, 0].tolist() == [[3, 3, 3], [3, 3, 3], [3, 3, 3]]


def test_flip_happens_before_crop():
    assert _crop(IMG, True, 1, 1, 1)[0, 0].tolist() == [[3, 2, 1], [6, 5, 4], [9, 8, 7]]
    # flipped image [[3,2,1],[6,5,4],[9,8,7]], then the crop at (2, 2) of its edge-padded version
    assert _crop(IMG, True, 2, 2, 1)[0, 0].tolist() == [[5, 4, 4], [8, 7, 7], [8, 7, 7]]


def test_matches_pad_then_slice_reference():
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (6, 3, 8, 8), generator=gen, dtype=torch.uint8)
    flip = torch.tensor([True, False, True, False, True, False])
    top, left = torch.tensor([0, 4, 2, 1, 3, 4]), torch.tensor([4, 0, 2, 3, 1, 4])
    out = flip_crop(images, flip, top, left, 2)
    for n in range(6):
        img = images[n].flip(-1) if flip[n] else images[n]
        padded = F.pad(img[None].float(), (2, 2, 2, 2), mode="replicate")[0]
        expected = padded[:, top[n]:top[n] + 8, left[n]:left[n] + 8]
        assert torch.equal(out[n].float(), expected)


@pytest.mark.parametrize("kind,shape", [("cifar", (5, 3, 32, 32)), ("imagenet", (3, 3, 64, 64)), ("none", (4, 1, 28, 28))])
def test_shape_dtype_and_reproducibility(kind, shape):
    images = torch.randint(0, 256, shape, dtype=torch.uint8)
    a = augment(images, kind, torch.Generator().manual_seed(7))
    b = augment(images, kind, torch.Generator().manual_seed(7))
    assert a.shape == images.shape and a.dtype == torch.uint8 and torch.equal(a, b)
    if kind == "none":
        assert torch.equal(a, images)


def test_offsets_and_flips_are_uniform():
    """Recover (flip, top, left) of every sample of a batch of copies of an image with distinct pixels."""
    padding, size, batch = AUGMENTATIONS["cifar"], 12, 4000
    images = torch.arange(size * size).view(1, 1, size, size).expand(batch, 1, size, size)
    out = augment(images, "cifar", torch.Generator().manual_seed(1))[:, 0]
    centre = out[:, 6, 6]
    flipped = (out[:, 6, 7] - centre) == -1
    row, col = centre // size, centre % size
    col = torch.where(flipped, size - 1 - col, col)
    top, left = row - 6 + padding, col - 6 + padding
    assert abs(flipped.float().mean().item() - 0.5) < 0.05
    counts = torch.bincount(top * 5 + left, minlength=25)
    assert counts.numel() == 25 and counts.min() > 0.6 * batch / 25 and counts.max() < 1.4 * batch / 25


def test_generator_changes_the_draw():
    images = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    a = augment(images, "cifar", torch.Generator().manual_seed(1))
    b = augment(images, "cifar", torch.Generator().manual_seed(2))
    assert not torch.equal(a, b)


def _python_calls(fn) -> int:
    calls = []
    sys.setprofile(lambda frame, event, arg: calls.append(event))
    try:
        fn()
    finally:
        sys.setprofile(None)
    return len(calls)


def test_no_python_loop_over_samples():
    gen_small, gen_large = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    small = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    large = torch.zeros(512, 3, 32, 32, dtype=torch.uint8)
    assert _python_calls(lambda: augment(small, "cifar", gen_small)) == \
        _python_calls(lambda: augment(large, "cifar", gen_large))


def test_kind_of_each_dataset():
    assert [augmentation_for(n) for n in ("mnist", "digits", "cifar10", "cifar", "tinyimagenet", "imagenet64")] == \
        ["none", "none", "cifar", "cifar", "imagenet", "imagenet"]
    assert AUGMENTATIONS["cifar"] == 2 and AUGMENTATIONS["imagenet"] == 4
    with pytest.raises(ValueError, match="valid kinds"):
        augment(IMG, "mixup")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu_with_a_cpu_generator():
    from torchcert.data import iterate_batches, load_dataset
    images = torch.randint(0, 256, (64, 3, 64, 64), dtype=torch.uint8)
    on_gpu = augment(images.cuda(), "imagenet", torch.Generator().manual_seed(4))
    assert on_gpu.is_cuda and torch.equal(on_gpu.cpu(), augment(images, "imagenet", torch.Generator().manual_seed(4)))
    assert augment(images.cuda(), "cifar", torch.Generator("cuda").manual_seed(4)).is_cuda
    split = load_dataset("digits", "test", device="cuda")
    x, y = next(iterate_batches(split, 50, True, torch.Generator().manual_seed(0)))
    assert x.is_cuda and y.is_cuda and x.shape == (50, 1, 8, 8)
