"""The batched cascade gives each sample the verdict of the per-sample cascade (same seeds, same stages)."""
from __future__ import annotations

import argparse
import math

import pytest
import torch

from torchcert.verify import verify_sample
from torchcert.verify.batched import counterexamples, verify_batch
from torchcert.verify.verdict import bound_copy

KEYS = ("status", "method", "clean_ok", "pgd_ok", "ibp_ok", "crown_ok", "alpha_ok", "domains")


def _setup(checkpoint, eps):
    from torchcert.verify.setup import build_setup

    args = argparse.Namespace(checkpoint=str(checkpoint), preset=None, dataset="digits", model="mlp",
                              model_params="width=32,depth=2", eps=eps, data_dir=None, device="cpu",
                              dtype="float32")
    return build_setup(args)


def _same(a, b) -> None:
    for key in KEYS:
        assert getattr(a, key) == getattr(b, key), key
    assert set(a.bounds) == set(b.bounds)
    for key, value in a.bounds.items():  # batched float64 products may round differently in the last bits
        assert math.isclose(value, b.bounds[key], rel_tol=1e-9, abs_tol=1e-9), key
    assert (a.counterexample is None) == (b.counterexample is None)


@pytest.mark.parametrize("methods,eps", [(("ibp", "crown"), 0.1), (("ibp", "crown", "alpha", "bab"), 0.15),
                                         (("crown",), 0.1)])
def test_batched_cascade_matches_per_sample(digits_checkpoint, methods, eps):
    setup = _setup(digits_checkpoint, eps)
    bound_model = bound_copy(setup.model)
    idx = list(range(24))
    samples = [setup.sample(i) for i in idx]
    gens = lambda: [torch.Generator().manual_seed(1_000_003 + i) for i in idx]  # noqa: E731
    alone = [verify_sample(setup.model, lo, up, y, methods, 2.0, x=x, generator=g, bound_model=bound_model)
             for (x, lo, up, y), g in zip(samples, gens())]
    x, lower, upper = (torch.cat([s[k] for s in samples]) for k in range(3))
    labels = torch.tensor([s[3] for s in samples])
    batched = verify_batch(setup.model, lower, upper, labels, methods, 2.0, x=x, generators=gens(),
                           bound_model=bound_model)
    for a, b in zip(alone, batched):
        _same(a, b)
    statuses = {r.status for r in alone}
    assert "verified" in statuses and len(statuses) >= 2  # the comparison covers more than one outcome


def test_counterexamples_are_decided_alone():
    """A row the batched forward calls misclassified is one whose single forward says so, and ties are not."""
    model = torch.nn.Linear(3, 3)
    with torch.no_grad():
        model.weight.copy_(torch.eye(3))
        model.bias.zero_()
    x = torch.tensor([[1.0, 2.0, 0.0], [2.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    found = counterexamples(model, x, torch.tensor([0, 0, 0]))
    assert found.tolist() == [True, False, False]  # the tie in row 2 is no counterexample


def test_sample_errors_are_recorded_not_verified(digits_checkpoint):
    setup = _setup(digits_checkpoint, 0.15)
    samples = [setup.sample(i) for i in range(8)]
    x, lower, upper = (torch.cat([s[k] for s in samples]) for k in range(3))
    labels = torch.tensor([s[3] for s in samples])

    with pytest.raises(ValueError, match="iterations"):  # a bad setting that fails in the per-sample stage
        verify_batch(setup.model, lower, upper, labels, ("ibp", "alpha"), 2.0, x=x, pgd_steps=0, alpha_iterations=-1)
    results = verify_batch(setup.model, lower, upper, labels, ("ibp", "alpha"), 2.0, x=x, pgd_steps=0,
                           alpha_iterations=-1, record_errors=True)
    opened = [r for r in results if r.status not in ("verified", "falsified")]
    assert opened and all(r.status == "error" and not r.verified and "iterations" in r.error for r in opened)
