"""Every shipped preset loads and validates; the schema rejects unknown keys and inconsistent values."""
import pytest

from torchcert.config import ConfigError, list_presets, load_config
from torchcert.train.config import TrainConfig

ORIGINAL = {f"{d}/{m}" for d, ms in {
    "mnist-0.1": ("cc-ibp", "mtl-ibp"), "mnist-0.3": ("cc-ibp", "mtl-ibp"),
    "cifar10-2_255": ("cc-ibp", "mtl-ibp", "exp-ibp", "sabr"), "cifar10-8_255": ("cc-ibp", "mtl-ibp", "exp-ibp", "sabr"),
    "tinyimagenet-1_255": ("cc-ibp", "mtl-ibp", "exp-ibp"), "imagenet64-1_255": ("cc-ibp", "mtl-ibp", "exp-ibp"),
}.items() for m in ms}


def test_every_original_command_has_a_preset():
    assert ORIGINAL | {"digits/cc-ibp", "mnist-0.1/cc-ibp-small"} <= set(list_presets())


@pytest.mark.parametrize("name", list_presets())
def test_preset_loads_and_validates(name):
    cfg = load_config(TrainConfig, name)
    cfg.validate()
    assert cfg.method.loss in name or name.startswith("digits")


def test_preset_values_match_original_commands():
    cfg = load_config(TrainConfig, "cifar10-2_255/exp-ibp")
    assert (cfg.method.coeff, cfg.method.l1_coeff, cfg.attack.eps_factor, cfg.attack.train_steps) == (0.095, 4e-6, 2.1, 8)
    assert (cfg.eps.value, cfg.eps.start, cfg.eps.length, cfg.optim.lr_milestones, cfg.run.epochs) == (
        0.00784, 2, 80, (120, 140), 160)
    assert cfg.regulariser.enabled and cfg.model.init == "ibp" and cfg.reg_epochs == 81
    mnist = load_config(TrainConfig, "mnist-0.3/cc-ibp")
    assert (mnist.eps.train_mul, mnist.data.batch_size, mnist.method.l1_coeff) == (1.334, 256, 3e-6)
    cifar8 = load_config(TrainConfig, "cifar10-8_255/cc-ibp")  # the '0.5--test-interval 20' line
    assert (cifar8.method.coeff, cifar8.run.test_interval) == (0.5, 20)
    tiny = load_config(TrainConfig, "tinyimagenet-1_255/mtl-ibp")
    assert (tiny.regulariser.weight, tiny.model.name) == (0.2, "cnn_7layer_bn_imagenet")


def test_defaults_are_the_original_defaults():
    cfg = TrainConfig()
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.grad_clip, cfg.optim.lr_decay_factor) == ("adam", 5e-4, 10.0, 0.2)
    assert (cfg.eps.start, cfg.eps.length, cfg.run.seed, cfg.method.l1_coeff, cfg.regulariser.weight) == (2, 80, 100, 1e-5, 0.5)


@pytest.mark.parametrize("override, message", [
    ("method.loss=crown", "valid: ibp, cc-ibp"),
    ("method.coeff=1.5", "coeff"),
    ("optim.grad_acc_steps=3", "divide"),
    ("attack.test_step_size=null", "test_step_size"),
    ("optim.lr_milestones=[60,50]", "increasing"),
    ("model.name=resnet", "valid"),
    ("data.dataset=svhn", "valid"),
    ("regulariser.objectives=[relu,size]", "size"),
])
def test_invalid_values_are_rejected_with_the_choices(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(TrainConfig, "mnist-0.1/cc-ibp", [override])


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError, match="valid keys"):
        load_config(TrainConfig, "mnist-0.1/cc-ibp", ["optim.learning_rate=1"])
