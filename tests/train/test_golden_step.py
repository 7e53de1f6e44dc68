"""Golden values of the original code (cases A, B, D): one training step of every method, the L1 term, the
training-time attack, the BatchNorm running statistics after the step, and the Shi et al. regulariser."""
import pytest
import torch
from torch import nn

from torchcert.attacks import eval_mode, per_example_ce, pgd
from torchcert.bounds import capture_bn_stats, ibp_with_relu_inputs, input_box
from torchcert.losses import get_loss, l1_penalty
from torchcert.models import build_model
from torchcert.train.loop import BatchEps, Meter, StepSettings, micro_step
from torchcert.train.regularisers import shi_terms

CASES = ("A", "B", "D")
METHODS = {"cc-ibp": "ccibp", "mtl-ibp": "mtlibp", "exp-ibp": "expibp", "sabr": "sabr"}
TOL = dict(rtol=1e-5, atol=1e-5)


def _load(golden_dir, letter):
    return torch.load(golden_dir / f"case_{letter}.pt", weights_only=True)


def _model(case):
    kwargs = dict(case["model"]["kwargs"])
    model = build_model(case["model"]["name"], kwargs.pop("in_ch", 1), kwargs.pop("in_dim", 28), **kwargs)
    model.load_state_dict(case["state_dict"])
    return model.train()


def _settings(case, method, attack_steps=2):
    info = case["x_adv_info"]  # every method of the public set uses coefficient 0.3
    return StepSettings(loss=get_loss(method), coeff=case["train"]["ccibp"]["coeff"],
                        l1_coeff=case["train"]["l1_coeff"], bounding="ibp", num_class=case["num_class"],
                        std=case["std"], data_min=case["data_min"], data_max=case["data_max"],
                        attack_steps=attack_steps, attack_step_size=info["step_size"])


def _step(case, method):
    """The step as the original runs it: the attack draws its start from the global RNG seeded as recorded."""
    model, meter = _model(case), Meter()
    eps = case["eps"]
    assert case["x_adv_info"]["n_steps"] == 2 and case["x_adv_info"]["attack_eps"] == eps
    torch.manual_seed(case["x_adv_info"]["seed"])
    loss = micro_step(model, case["x"], case["labels"], BatchEps(eps, eps, eps, eps), _settings(case, method), meter)
    loss.backward()
    return model, loss, meter


def _zero_grad_biases(model):
    """Biases of Conv2d/Linear layers directly followed by a BatchNorm (analytically zero gradient)."""
    names = list(dict(model.named_children()))
    out = set()
    for i, name in enumerate(names[:-1]):
        if isinstance(model[i], (nn.Conv2d, nn.Linear)) and isinstance(model[i + 1], (nn.BatchNorm1d, nn.BatchNorm2d)):
            out.add(f"{name}.bias")
    return out


@pytest.mark.parametrize("letter", CASES)
@pytest.mark.parametrize("method", list(METHODS))
def test_training_step_losses_and_gradients(golden_dir, letter, method):
    case = _load(golden_dir, letter)
    ref, train = case["train"][METHODS[method]], case["train"]
    model, loss, meter = _step(case, method)
    assert loss.item() == pytest.approx(ref["loss_total"], rel=1e-5, abs=1e-5)
    assert meter.mean("nat_loss") == pytest.approx(train["nat_ce"], rel=1e-5, abs=1e-5)
    assert meter.mean("adv_loss") == pytest.approx(train["adv_ce"], rel=1e-5, abs=1e-5)
    assert 1 - meter.mean("nat_acc") == pytest.approx(train["nat_err"]) and 1 - meter.mean("adv_acc") == pytest.approx(train["adv_err"])
    robust = ref["robust_loss"] if method == "sabr" else train["ibp_robust_loss"]
    assert meter.mean("ver_loss") == pytest.approx(robust, rel=1e-5, abs=1e-5)
    if "grad" not in ref:
        return
    largest = max(g.abs().max().item() for g in ref["grad"].values())
    zero_biases = _zero_grad_biases(model)
    for name, param in model.named_parameters():
        scale = largest if name in zero_biases else ref["grad"][name].abs().max().item()
        assert (param.grad - ref["grad"][name]).abs().max().item() <= 1e-4 * scale, name


@pytest.mark.parametrize("letter", CASES)
def test_l1_term(golden_dir, letter):
    case = _load(golden_dir, letter)
    assert l1_penalty(_model(case)).item() == pytest.approx(case["train"]["l1_sum"], rel=1e-5)


@pytest.mark.parametrize("letter", CASES)
def test_training_attack_and_running_statistics(golden_dir, letter):
    """The attack sees the running statistics after the clean forward; two forwards update them in total."""
    case = _load(golden_dir, letter)
    model = _model(case)
    model(case["x"])
    for key, value in case["train"]["running_stats_after_clean_forward"].items():
        assert torch.allclose(model.state_dict()[key], value, **TOL), key
    torch.manual_seed(case["x_adv_info"]["seed"])
    with eval_mode(model), torch.no_grad():
        x_adv = pgd(model, case["x_lb"], case["x_ub"], per_example_ce(case["labels"]), 2, 0.25)
    assert torch.equal(x_adv, case["x_adv"])
    model, _, _ = _step(case, "cc-ibp")
    for key, value in case["train"]["running_stats_after_step_seed_era"].items():
        assert torch.allclose(model.state_dict()[key], value, **TOL), key


@pytest.mark.parametrize("letter", ("A", "B"))
def test_shi_regulariser(golden_dir, letter):
    case = _load(golden_dir, letter)
    reg = case["reg"]
    model = _model(case)
    with capture_bn_stats(model) as stats:
        model(case["x"])
    box = input_box(case["x"], reg["eps"], None, case["std"], case["data_min"], case["data_max"])
    assert torch.equal(box.upper - case["x"], torch.min(case["x"] + reg["eps_norm"], case["data_max"]) - case["x"])
    _, relu_inputs = ibp_with_relu_inputs(model, box, case["C"], bn_stats=stats)
    terms = shi_terms(box, relu_inputs, reg["tol"])
    for name in ("tightness", "relu", "std"):
        assert terms[name].item() == pytest.approx(reg[f"L_{name}"], rel=1e-5, abs=1e-5), name


@pytest.mark.parametrize("letter", ("A", "B"))
def test_regularised_ibp_step(golden_dir, letter):
    """A pure-IBP batch with the regulariser on and no attack: loss = reg + IBP loss (the original's crosscheck)."""
    case = _load(golden_dir, letter)
    reg = case["reg"]
    settings = _settings(case, "ibp", attack_steps=0)
    settings = type(settings)(**{**settings.__dict__, "reg_weight": reg["reg_lambda"], "reg_tol": reg["tol"],
                                 "reg_objectives": tuple(reg["reg_obj"]), "reg_decay": not reg["no_reg_dec"]})
    meter = Meter()
    batch = BatchEps(reg["eps"], reg["eps"], reg["eps"], reg["max_eps"], reg=True)
    loss = micro_step(_model(case), case["x"], case["labels"], batch, settings, meter)
    assert meter.mean("ver_loss") == pytest.approx(reg["ibp_robust_loss"], rel=1e-5, abs=1e-5)
    assert loss.item() == pytest.approx(reg["reg"] + reg["ibp_robust_loss"], rel=1e-5, abs=1e-5)


@pytest.mark.parametrize("letter", CASES)
def test_crown_ibp_bounding_option_in_eval_mode(golden_dir, letter):
    """``method.bounding: crown-ibp`` calls CROWN-IBP (the original's get_bound with 'CROWN-IBP')."""
    from torchcert.train.loop import _bounds

    case = _load(golden_dir, letter)
    model = _model(case).eval()
    settings = type(_settings(case, "cc-ibp"))(**{**_settings(case, "cc-ibp").__dict__, "bounding": "crown-ibp"})
    box = input_box(case["x"], case["eps"], None, case["std"], case["data_min"], case["data_max"])
    with torch.no_grad():
        lb, _ = _bounds(model, box, case["C"], None, settings, with_relu_inputs=False)
    assert torch.allclose(lb, case["eval"]["crown_ibp_lb"], rtol=1e-5, atol=1e-5)
