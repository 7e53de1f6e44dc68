"""PGD: stays in the box, is reproducible with a generator, beats the random start, keeps the best iterate;
golden case D (the original attack's output, bit for bit)."""
import pytest
import torch
from torch import nn

from torchcert.attacks import eval_mode, per_example_ce, pgd


def _setup(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 3)).eval()
    x = torch.rand(10, 3, 2, 2)
    labels = torch.randint(0, 3, (10,))
    return model, x - 0.1, x + 0.1, labels


def test_pgd_stays_in_box_and_is_reproducible():
    model, lower, upper, labels = _setup()
    runs = [pgd(model, lower, upper, per_example_ce(labels), 5, 0.25, torch.Generator().manual_seed(3)) for _ in "ab"]
    assert torch.equal(runs[0], runs[1])
    assert bool((runs[0] >= lower).all() and (runs[0] <= upper).all())


def test_pgd_loss_not_below_its_random_start():
    """The best-of rule keeps an iterate whose loss is at least that of the random start."""
    model, lower, upper, labels = _setup(1)
    loss_fn = per_example_ce(labels)
    start = torch.zeros_like(lower).uniform_(generator=torch.Generator().manual_seed(5)) * (upper - lower) + lower
    x_adv = pgd(model, lower, upper, loss_fn, 10, 0.25, torch.Generator().manual_seed(5))
    with torch.no_grad():
        assert bool((loss_fn(model(x_adv)) >= loss_fn(model(start)) - 1e-6).all())


def test_one_step_is_fgsm_from_random_start():
    model, lower, upper, labels = _setup(2)
    loss_fn = per_example_ce(labels)
    gen = torch.Generator().manual_seed(7)
    start = torch.zeros_like(lower).uniform_(generator=gen) * (upper - lower) + lower
    start.requires_grad_(True)
    grad = torch.autograd.grad(loss_fn(model(start)).sum(), start)[0]
    expected = torch.max(torch.min(start.detach() + 10.0 * (upper - lower) / 2 * grad.sign(), upper), lower)
    assert torch.equal(pgd(model, lower, upper, loss_fn, 1, 10.0, torch.Generator().manual_seed(7)), expected)


def test_pgd_rejects_zero_steps():
    model, lower, upper, labels = _setup()
    with pytest.raises(ValueError, match="at least one step"):
        pgd(model, lower, upper, per_example_ce(labels), 0, 0.1)


def test_eval_mode_restores_training_flag():
    model = nn.Sequential(nn.BatchNorm1d(3)).train()
    with eval_mode(model):
        assert not model.training
    assert model.training


def test_golden_case_d_pgd_bit_for_bit(golden_dir):
    case = torch.load(golden_dir / "case_D.pt", weights_only=True)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 50), nn.ReLU(), nn.Linear(50, 50), nn.ReLU(), nn.Linear(50, 10))
    model.load_state_dict(case["state_dict"])
    model.eval()
    ref = case["pgd"]
    torch.manual_seed(ref["seed"])  # the original draws the random start from the global RNG
    x_adv = pgd(model, case["x_lb"], case["x_ub"], per_example_ce(case["labels"]), ref["n_steps"], ref["step_size"])
    assert torch.equal(x_adv, ref["x_adv"])
    loss = per_example_ce(case["labels"])(model(x_adv))
    assert torch.allclose(loss, ref["loss_at_x_adv"], rtol=1e-5, atol=1e-5)
