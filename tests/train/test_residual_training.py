"""Residual networks train with every loss and both boundings: a step on resnet_2b / resnet_small gives a finite
loss and a gradient on every parameter; the IBP initialisation keeps the output layer of any graph."""
from __future__ import annotations

import pytest
import torch

from torchcert.bounds import BoundGraph
from torchcert.losses import LOSSES, get_loss
from torchcert.models import build_model
from torchcert.train.init import ibp_init
from torchcert.train.loop import BatchEps, Meter, StepSettings, micro_step


@pytest.mark.parametrize("name", ["resnet_2b", "resnet_small"])
@pytest.mark.parametrize("bounding", ["ibp", "crown-ibp"])
@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_every_loss_trains_a_residual_network(name, bounding, loss):
    torch.manual_seed(0)
    model = build_model(name, 1, 8, 10).train()
    ibp_init(model)
    settings = StepSettings(loss=get_loss(loss), coeff=0.5, l1_coeff=1e-5, bounding=bounding, num_class=10,
                            std=torch.ones(1), data_min=torch.zeros(1, 1, 1, 1), data_max=torch.ones(1, 1, 1, 1),
                            attack_steps=1, attack_step_size=10.0, reg_weight=0.5)
    x, labels = torch.rand(8, 1, 8, 8), torch.randint(0, 10, (8,))
    b = BatchEps(0.05, 0.05, 0.05, 0.1, reg=True)
    value = micro_step(BoundGraph(model), x, labels, b, settings, Meter(), torch.Generator().manual_seed(1))
    assert torch.isfinite(value)
    value.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not bool(p.grad.abs().sum() > 0)]
    assert not missing, missing


def test_ibp_init_keeps_the_output_layer_of_a_graph():
    torch.manual_seed(0)
    model = build_model("resnet_2b", 3, 32, 10)
    before = {n: p.clone() for n, p in model.named_parameters()}
    ibp_init(model)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    weights = {n for n in before if n.endswith("weight")}
    assert changed == weights - {"linear2.weight"}
