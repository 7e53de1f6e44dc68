"""Property tests: every bound holds at sampled points, box corners and PGD points (float64)."""
from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from nets import conv_net, mlp, pgd_points, random_box, sample_points, train_mode_stats
from torchcert.bounds import Box, alpha_crown, crown, crown_relu_bounds, ibp
from torchcert.bounds.rules import relu

TOL = 1e-9
SETTINGS = settings(max_examples=25, deadline=None)


def _values(model: nn.Module, C: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """``C f(x)`` for points ``(n, B, *shape)``: ``(n, B, S)``."""
    n, b = points.shape[:2]
    with torch.no_grad():
        out = model(points.reshape((n * b,) + points.shape[2:])).view(n, b, -1)
    return torch.einsum("bsk,nbk->nbs", C, out)


def _attack_points(model: nn.Module, C: torch.Tensor, box: Box) -> torch.Tensor:
    """PGD minimisers and maximisers of every specification: ``(2 S, B, *shape)``."""
    pts = []
    for s in range(C.shape[1]):
        for sign in (1.0, -1.0):
            f = lambda x, s=s: (C[:, s] * model(x)).sum(-1)  # noqa: E731
            pts.append(pgd_points(f, box, sign=sign, seed=s))
    return torch.stack(pts)


def _setup(seed: int, kind: str, width: float, bn_mode: str):
    if kind == "conv":
        model = conv_net(seed, bn=bn_mode != "none")
        box = random_box(seed, (2, 2, 6, 6), width)
    else:
        model = mlp(seed, (4, 6, 5, 3))
        box = random_box(seed, (2, 4), width)
    C = torch.randn(2, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    stats, reference = None, model
    if bn_mode == "train":
        reference, stats = train_mode_stats(model, box.center.repeat(2, *(1,) * (box.center.dim() - 1))
                                            + 0.5 * torch.randn((4,) + box.center.shape[1:], dtype=torch.float64))
    return model, reference, box, C, stats


def _all_points(reference, C, box, seed):
    return torch.cat([sample_points(box, 64, seed), _attack_points(reference, C, box)])


CASES = st.tuples(st.integers(0, 10_000), st.sampled_from(["conv", "mlp"]), st.floats(0.01, 1.0),
                  st.sampled_from(["none", "eval", "train"]))


@SETTINGS
@given(CASES)
def test_ibp_and_crown_variants_are_sound(case):
    seed, kind, width, bn_mode = case
    if kind == "mlp" and bn_mode != "none":
        bn_mode = "none"
    model, reference, box, C, stats = _setup(seed, kind, width, bn_mode)
    values = _values(reference, C, _all_points(reference, C, box, seed))
    lo_ibp = ibp(model, box, C, bn_stats=stats)
    assert torch.all(values >= lo_ibp.lower - TOL) and torch.all(values <= lo_ibp.upper + TOL)
    for intermediate in ("ibp", "crown"):
        b = crown(model, box, C, intermediate=intermediate, bn_stats=stats, bound_upper=True)
        assert torch.all(values >= b.lower - TOL) and torch.all(values <= b.upper + TOL)
    alpha = alpha_crown(model, box, C, iterations=5, bn_stats=stats).lower
    assert torch.all(values >= alpha - TOL)
    plain = crown(model, box, C, bn_stats=stats).lower
    assert torch.all(alpha >= plain - 1e-12)


@SETTINGS
@given(st.integers(0, 10_000), st.sampled_from(["conv", "mlp"]), st.floats(0.05, 1.0))
def test_random_lower_slopes_are_sound(seed, kind, width):
    model, reference, box, C, _ = _setup(seed, kind, width, "eval")
    values = _values(reference, C, _all_points(reference, C, box, seed))
    bounds = crown_relu_bounds(model, box)
    gen = torch.Generator().manual_seed(seed)
    slopes = [torch.rand((C.shape[1],) + tuple(b.lower.shape), generator=gen, dtype=torch.float64) for b in bounds]
    lower = crown(model, box, C, lower_slopes=slopes).lower
    assert torch.all(values >= lower - TOL)


def _relu_inputs(model: nn.Module, x: torch.Tensor):
    """Pre-activations of every nn.ReLU in ``model`` at ``x``."""
    seen = []
    handles = [m.register_forward_hook(lambda mod, inp, out: seen.append(inp[0]))
               for m in model.modules() if isinstance(m, nn.ReLU)]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return seen


@SETTINGS
@given(st.integers(0, 10_000), st.sampled_from(["conv", "mlp"]), st.floats(0.2, 1.0))
def test_split_relu_bounds_are_sound_on_the_split_region(seed, kind, width):
    """Fix one unstable neuron per ReLU layer active or inactive; bound points that respect it."""
    model, reference, box, C, _ = _setup(seed, kind, width, "eval")
    root = crown_relu_bounds(model, box)
    gen = torch.Generator().manual_seed(seed)
    split, chosen = [], []
    for b in root:
        mask = relu.unstable(b).flatten(1)
        lower, upper = b.lower.clone().flatten(1), b.upper.clone().flatten(1)
        pick = torch.argmax(mask.double() + torch.rand(mask.shape, generator=gen, dtype=torch.float64), 1)
        active = bool(torch.rand(1, generator=gen) > 0.5)
        rows = torch.arange(mask.shape[0])
        (lower if active else upper)[rows, pick] = 0.0
        split.append(Box(lower.view_as(b.lower), upper.view_as(b.upper)))
        chosen.append((pick, active, mask[rows, pick]))
    points = sample_points(box, 256, seed)
    n, bsz = points.shape[:2]
    pre = _relu_inputs(reference, points.reshape((n * bsz,) + points.shape[2:]))
    ok = torch.ones(n, bsz, dtype=torch.bool)
    for z, (pick, active, _) in zip(pre, chosen):
        z = z.view(n, bsz, -1)[:, torch.arange(bsz), pick]
        ok &= (z >= 0) if active else (z <= 0)
    values = _values(reference, C, points)
    for intermediate in ("ibp", "crown"):
        lower = crown(model, box, C, intermediate=intermediate, relu_bounds=split).lower
        assert torch.all((values >= lower - TOL) | ~ok.unsqueeze(-1))
    lower = alpha_crown(model, box, C, iterations=3, relu_bounds=split).lower
    assert torch.all((values >= lower - TOL) | ~ok.unsqueeze(-1))


@SETTINGS
@given(st.integers(0, 10_000), st.sampled_from(["conv", "mlp"]), st.floats(0.05, 1.0))
def test_preact_terms_bound_the_augmented_objective(seed, kind, width):
    """lower <= C f(x) + sum_i <beta_i, z_i(x)> at every point; zero terms give plain CROWN."""
    model, reference, box, C, _ = _setup(seed, kind, width, "eval")
    bounds = crown_relu_bounds(model, box)
    gen = torch.Generator().manual_seed(seed)
    terms = [torch.randn((C.shape[1],) + tuple(b.lower.shape), generator=gen, dtype=torch.float64) for b in bounds]
    lower = crown(model, box, C, intermediate="given", relu_bounds=bounds, preact_terms=terms).lower
    points = sample_points(box, 64, seed)
    n, bsz = points.shape[:2]
    pre = _relu_inputs(reference, points.reshape((n * bsz,) + points.shape[2:]))
    extra = sum(torch.einsum("sbf,nbf->nbs", t.flatten(2), z.reshape(n, bsz, -1)) for t, z in zip(terms, pre))
    assert torch.all(_values(reference, C, points) + extra >= lower - TOL)
    zero = [torch.zeros_like(t) for t in terms]
    torch.testing.assert_close(crown(model, box, C, relu_bounds=bounds, intermediate="given", preact_terms=zero).lower,
                               crown(model, box, C).lower)
