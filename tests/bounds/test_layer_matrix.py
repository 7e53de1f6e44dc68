"""Every bounding method and option over the full layer matrix (``random_nets.matrix_net``, float64).

Two checks per random network: (1) the conv fast paths (patches, fused first step, windows cropped at borders,
full-map expansion before split terms) give the bounds of the same network rewritten as a dense MLP, whose
back-substitution is plain ``A @ W`` (CROWN for every neuron, and given bounds with split terms: the options that
choose neurons by an IBP box are left out, since IBP through a merged dense stretch is tighter); (2) every lower bound holds at sampled, corner and PGD points of the box,
with split terms (``preact_terms``) evaluated at the recorded ReLU inputs. A bigger sweep is marked slow.
"""
from __future__ import annotations

import pytest
import torch

from nets import random_box
from random_nets import FAMILIES, dense_mlp, matrix_net, reached_values
from torchcert.bounds import Box, alpha_crown, crown, crown_relu_bounds, ibp

TOL = 1e-8
OPTIONS = [("crown", "unstable"), ("crown", "all"), ("crown", "hybrid"), ("ibp", "unstable")]


def _case(seed: int, family: str = ""):
    model, shape = matrix_net(seed, family)
    box = random_box(seed, (2,) + shape, 0.05 + 0.5 * (seed % 5) / 4)
    C = torch.randn(2, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    return model, shape, box, C


def _flat(box: Box) -> Box:
    return Box(box.lower.flatten(1), box.upper.flatten(1))


def _terms(bounds, seed: int):
    gen = torch.Generator().manual_seed(seed + 1)
    return [torch.randn((2,) + tuple(b.lower.shape), generator=gen, dtype=torch.float64) for b in bounds]


def _assert_close(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    torch.testing.assert_close(a.reshape(b.shape), b, rtol=1e-7, atol=1e-7, msg=what)


def check_against_dense(seed: int, family: str = "") -> None:
    model, shape, box, C = _case(seed, family)
    dense = dense_mlp(model, shape)
    with torch.no_grad():
        for intermediate, neurons in [("crown", "all")]:  # the other options start from IBP boxes, which differ
            fast = crown_relu_bounds(model, box, intermediate, neurons=neurons)
            ref = crown_relu_bounds(dense, _flat(box), intermediate, neurons=neurons)
            assert len(fast) == len(ref)
            for j, (a, b) in enumerate(zip(fast, ref)):
                _assert_close(a.lower.flatten(1), b.lower, f"seed {seed} {neurons} relu {j} lower")
                _assert_close(a.upper.flatten(1), b.upper, f"seed {seed} {neurons} relu {j} upper")
            out = crown(model, box, C, intermediate, neurons=neurons, bound_upper=True)
            out_ref = crown(dense, _flat(box), C, intermediate, neurons=neurons, bound_upper=True)
            _assert_close(out.lower, out_ref.lower, f"seed {seed} {neurons} final")
            _assert_close(out.upper, out_ref.upper, f"seed {seed} {neurons} final upper")
        bounds = crown_relu_bounds(model, box)
        terms = _terms(bounds, seed)
        split = crown(model, box, C, "given", relu_bounds=bounds, preact_terms=terms).lower
        split_ref = crown(dense, _flat(box), C, "given", relu_bounds=[_flat(b) for b in bounds],
                          preact_terms=[t.flatten(2) for t in terms]).lower
        _assert_close(split, split_ref, f"seed {seed} preact_terms")
        zero = crown(model, box, C, "given", relu_bounds=bounds, preact_terms=[0 * t for t in terms]).lower
        plain = crown(model, box, C, "given", relu_bounds=bounds).lower
        torch.testing.assert_close(zero, plain, rtol=1e-12, atol=1e-12, msg=f"seed {seed}: zero terms change it")


def check_sound(seed: int, family: str = "") -> None:
    model, shape, box, C = _case(seed, family)
    n, b, values, pre = reached_values(model, box, C, shape, seed)
    with torch.no_grad():
        lowers = {"ibp": ibp(model, box, C).lower}
        for intermediate, neurons in OPTIONS:
            lowers[f"crown-{intermediate}-{neurons}"] = crown(model, box, C, intermediate, neurons=neurons).lower
        bounds = crown_relu_bounds(model, box)
        for j, (bx, z) in enumerate(zip(bounds, pre)):
            z = z.view((n, b) + tuple(bx.lower.shape[1:]))
            assert bool((z >= bx.lower - TOL).all() and (z <= bx.upper + TOL).all()), f"seed {seed} relu {j}"
        terms = _terms(bounds, seed)
        split = crown(model, box, C, "given", relu_bounds=bounds, preact_terms=terms).lower
    lowers["alpha"] = alpha_crown(model, box, C, iterations=5).lower
    for name, lower in lowers.items():
        assert bool((lower <= values + TOL).all()), f"seed {seed} ({shape}): {name} above a reached value"
    extra = sum(torch.einsum("sb...,nb...->nbs", t, z.view((n, b) + tuple(t.shape[2:]))) for t, z in
                zip(terms, pre)) if pre else 0
    assert bool((split <= values + extra + TOL).all()), f"seed {seed}: split-term bound above a reached value"


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("seed", range(8))
def test_fast_paths_equal_dense_reference(seed, family):
    check_against_dense(1000 + seed, family)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("seed", range(8))
def test_every_bound_holds_at_reached_points(seed, family):
    check_sound(2000 + seed, family)


@pytest.mark.slow
def test_layer_matrix_sweep():
    """A fresh 2,000-network sweep of both checks (every family, new seeds)."""
    for seed in range(2000):
        check_against_dense(50_000 + seed)
        check_sound(60_000 + seed)
