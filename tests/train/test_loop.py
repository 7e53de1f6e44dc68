"""The training step: natural warm-up, plain IBP without L1, gradient accumulation, optimiser and clipping."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from torchcert.losses import get_loss, l1_penalty
from torchcert.train.loop import BatchEps, Meter, StepSettings, micro_step, train_step


def _setup(method="cc-ibp", attack_steps=0, **extra):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 20), nn.ReLU(), nn.Linear(20, 4))
    x, labels = torch.rand(8, 1, 4, 4), torch.randint(0, 4, (8,))
    settings = StepSettings(loss=get_loss(method), coeff=0.4, l1_coeff=1e-3, bounding="ibp", num_class=4,
                            std=torch.ones(1), data_min=torch.zeros(1, 1, 1, 1), data_max=torch.ones(1, 1, 1, 1),
                            attack_steps=attack_steps, attack_step_size=0.5, **extra)
    return model, x, labels, settings


def test_natural_batch_is_cross_entropy_plus_l1():
    model, x, labels, s = _setup()
    loss = micro_step(model, x, labels, BatchEps(0.0, 0.0, 0.0, 0.1), s, Meter())
    expected = F.cross_entropy(model(x), labels) + 1e-3 * l1_penalty(model)
    assert torch.allclose(loss, expected)


def test_plain_ibp_has_no_l1_term_and_equals_the_robust_loss():
    model, x, labels, s = _setup("ibp")
    meter = Meter()
    loss = micro_step(model, x, labels, BatchEps(0.05, 0.05, 0.05, 0.1), s, meter)
    assert loss.item() == pytest.approx(meter.mean("ver_loss"))


def test_cc_ibp_at_alpha_zero_without_attack_is_natural_cross_entropy():
    model, x, labels, s = _setup()
    s = StepSettings(**{**s.__dict__, "coeff": 0.0, "l1_coeff": 0.0})
    loss = micro_step(model, x, labels, BatchEps(0.05, 0.05, 0.05, 0.1), s, Meter())
    assert torch.allclose(loss, F.cross_entropy(model(x), labels))


def test_regulariser_off_after_its_epochs_and_decays_to_zero_at_max_eps():
    model, x, labels, s = _setup("ibp", reg_weight=0.5)
    with torch.no_grad():
        model[1].weight.mul_(10.0)  # wide pre-activation bounds: the tightness term is active
    on = micro_step(model, x, labels, BatchEps(0.05, 0.05, 0.05, 0.1, reg=True), s, Meter())
    off = micro_step(model, x, labels, BatchEps(0.05, 0.05, 0.05, 0.1, reg=False), s, Meter())
    at_max = micro_step(model, x, labels, BatchEps(0.1, 0.1, 0.1, 0.1, reg=True), s, Meter())
    plain = micro_step(model, x, labels, BatchEps(0.1, 0.1, 0.1, 0.1, reg=False), s, Meter())
    assert on.item() > off.item() and at_max.item() == pytest.approx(plain.item())


def test_gradient_accumulation_matches_one_full_batch():
    grads = []
    for acc in (1, 2):
        model, x, labels, s = _setup(grad_acc_steps=acc)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
        captured = {}
        original_step = optimizer.step
        optimizer.step = lambda: captured.update({n: p.grad.clone() for n, p in model.named_parameters()}) or original_step()
        train_step(model, optimizer, x, labels, BatchEps(0.05, 0.05, 0.05, 0.1), s, Meter())
        grads.append(captured)
    for name in grads[0]:
        assert torch.allclose(grads[0][name], grads[1][name], atol=1e-6), name


def test_gradient_norm_is_clipped_before_the_step():
    model, x, labels, s = _setup(grad_clip=1e-3)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    before = [p.detach().clone() for p in model.parameters()]
    meter = Meter()
    train_step(model, optimizer, x, labels, BatchEps(0.05, 0.05, 0.05, 0.1), s, meter)
    moved = torch.sqrt(sum(((p.detach() - b) ** 2).sum() for p, b in zip(model.parameters(), before)))
    assert moved.item() == pytest.approx(1e-3, rel=1e-3) and meter.mean("grad_norm") > 1e-3


def test_attack_runs_in_eval_mode_and_leaves_train_mode():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 4))
    _, x, labels, s = _setup("sabr", attack_steps=2)
    modes = []
    model[2].register_forward_pre_hook(lambda m, i: modes.append(m.training))
    micro_step(model, x, labels, BatchEps(0.05, 0.05, 0.05, 0.1), s, Meter())
    assert modes == [True, False, False, False, True] and model.training  # clean, 3 attack evals, adversarial
