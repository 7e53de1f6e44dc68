"""IBP against golden values of the original code (auto_LiRPA 0.7.1)."""
from __future__ import annotations

import pytest
import torch

from bounds_helpers import golden_model, load_case
from torchcert.bounds import Box, capture_bn_stats, ibp, input_box, margin_matrix

CASES = ["A", "B", "D"]
TOL = dict(rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", CASES)
def test_input_box_and_spec_match_golden(golden_dir, name):
    case = load_case(golden_dir, name)
    box = input_box(case["x"], case["eps"], case["mean"], case["std"], case["data_min"], case["data_max"])
    assert torch.equal(box.lower, case["x_lb"]) and torch.equal(box.upper, case["x_ub"])
    assert torch.equal(margin_matrix(case["labels"], case["num_class"]), case["C"])


@pytest.mark.parametrize("name", CASES)
def test_eval_ibp_matches_golden(golden_dir, name):
    case = load_case(golden_dir, name)
    model = golden_model(case).eval()
    box = Box(case["x_lb"], case["x_ub"])
    with torch.no_grad():
        merged = ibp(model, box, case["C"])
        logits = ibp(model, box)
        torch.testing.assert_close(model(case["x"]), case["eval"]["logits"], **TOL)
    torch.testing.assert_close(merged.lower, case["eval"]["ibp_lb"], **TOL)
    torch.testing.assert_close(merged.upper, case["eval"]["ibp_ub"], **TOL)
    torch.testing.assert_close(logits.lower, case["eval"]["ibp_logits_lb"], **TOL)
    torch.testing.assert_close(logits.upper, case["eval"]["ibp_logits_ub"], **TOL)


@pytest.mark.parametrize("name", CASES)
def test_train_ibp_with_adversarial_stats_matches_golden(golden_dir, name):
    """Clean forward, adversarial forward (stats captured), IBP; gradients flow through the stats."""
    case = load_case(golden_dir, name)
    model = golden_model(case).train()
    model(case["x"])
    with capture_bn_stats(model) as stats:
        adv_logits = model(case["x_adv"])
    torch.testing.assert_close(adv_logits, case["train"]["adv_logits"], **TOL)
    for module_name, expected in case["train"]["bn_stats_used_by_ibp"].items():
        mean, var = stats[model.get_submodule(module_name)]
        torch.testing.assert_close(mean, expected["mean"], **TOL)
        torch.testing.assert_close(var, expected["var"], **TOL)
    lb = ibp(model, Box(case["x_lb"], case["x_ub"]), case["C"], bn_stats=stats).lower
    torch.testing.assert_close(lb, case["train"]["ibp_lb"], **TOL)
    lb.sum().backward()
    assert model[0 if name != "D" else 1].weight.grad.abs().sum() > 0


def test_train_mode_batchnorm_without_stats_is_an_error(golden_dir):
    case = load_case(golden_dir, "A")
    model = golden_model(case).train()
    with pytest.raises(ValueError, match="capture_bn_stats"):
        ibp(model, Box(case["x_lb"], case["x_ub"]), case["C"])


def test_train_stats_gradient_reaches_earlier_layers_through_statistics(golden_dir):
    """Detaching the statistics changes the gradient of the first conv (they must stay in the graph)."""
    case = load_case(golden_dir, "A")
    grads = []
    for detach in (False, True):
        model = golden_model(case).train()
        with capture_bn_stats(model) as stats:
            model(case["x_adv"])
        if detach:
            stats = {m: (mu.detach(), v.detach()) for m, (mu, v) in stats.items()}
        ibp(model, Box(case["x_lb"], case["x_ub"]), case["C"], bn_stats=stats).lower.sum().backward()
        grads.append(model[0].weight.grad.clone())
    assert (grads[0] - grads[1]).abs().max() > 1e-3 * grads[0].abs().max()
