"""IBP initialisation: every Conv/Linear weight but the last is redrawn with std sqrt(2π)/fan_in."""
import math

import pytest
import torch

from torchcert.models import build_model
from torchcert.train.init import ibp_init, initialise


def test_ibp_init_std_and_untouched_parameters():
    torch.manual_seed(0)
    model = build_model("cnn_7layer_bn2", 3, 32, width=16, linear_size=64)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ibp_init(model)
    after = model.state_dict()
    weights = [n for n, p in model.named_parameters() if n.endswith("weight") and p.dim() > 1]
    for name in weights[:-1]:
        w = after[name]
        fan_in = w.shape[1] * math.prod(w.shape[2:])
        assert w.std().item() == pytest.approx(math.sqrt(2 * math.pi) / fan_in, rel=0.1), name
        assert w.mean().abs().item() < 3 * w.std().item() / math.sqrt(w.numel()) + 1e-12
    untouched = [weights[-1]] + [n for n in before if not n.endswith("weight") or after[n].dim() == 1]
    for name in untouched:
        assert torch.equal(before[name], after[name]), name


def test_ibp_init_is_seeded_by_the_global_rng():
    models = []
    for _ in range(2):
        torch.manual_seed(3)
        models.append(build_model("cnn_small", 1, 28))
        initialise(models[-1], "ibp")
    for (name, a), b in zip(models[0].state_dict().items(), models[1].state_dict().values()):
        assert torch.equal(a, b), name
    with pytest.raises(ValueError, match="valid: default, ibp, kaiming"):
        initialise(models[0], "xavier")
