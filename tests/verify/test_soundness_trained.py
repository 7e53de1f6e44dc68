"""On a trained network, no sample the cascade marks verified is broken by a strong attack."""
from __future__ import annotations

import argparse

import torch

from torchcert.attacks import per_example_ce, pgd
from torchcert.bounds import margin_matrix
from torchcert.verify import verify_sample
from torchcert.verify.attack import margin_pgd, random_points
from torchcert.verify.setup import build_setup

from .conftest import EPS


def _setup(checkpoint, eps: float):
    args = argparse.Namespace(checkpoint=str(checkpoint), preset=None, dataset="digits", model="mlp",
                              model_params="width=32,depth=2", eps=eps, data_dir=None, device="cpu",
                              dtype="float32")
    return build_setup(args)


def _broken(model, lower, upper, label: int) -> bool:
    """200 margin-PGD restarts of 100 steps plus 20 CE-PGD restarts of 100 steps."""
    C = margin_matrix(torch.tensor([label]), 10)
    gen = torch.Generator().manual_seed(label)
    _, margins = margin_pgd(model, random_points(lower, upper, 200, gen), lower, upper, C, steps=100, step_size=0.05)
    if bool((margins <= 0).any()):
        return True
    low, up = lower.expand(20, -1, -1, -1), upper.expand(20, -1, -1, -1)
    adv = pgd(model, low, up, per_example_ce(torch.full((20,), label)), 100, 0.05, generator=gen)
    with torch.no_grad():
        return bool((model(adv).argmax(1) != label).any())


def test_verified_samples_survive_strong_attacks(digits_checkpoint):
    setup = _setup(digits_checkpoint, 3 * EPS)  # three times the training eps: some samples need branching
    statuses, by_bab = {}, 0
    for idx in range(30):
        x, lower, upper, label = setup.sample(idx)
        result = verify_sample(setup.model, lower, upper, label, timeout=5.0, x=x)
        statuses[result.status] = statuses.get(result.status, 0) + 1
        if result.status == "verified":
            by_bab += result.method == "bab" and result.domains > 1
            assert not _broken(setup.model, lower, upper, label), (idx, result)
        if result.status == "falsified" and result.counterexample is not None:
            with torch.no_grad():
                assert int(setup.model(result.counterexample).argmax()) != label or result.method == "bab"
    assert statuses.get("verified", 0) >= 3 and by_bab >= 1, (statuses, by_bab)
