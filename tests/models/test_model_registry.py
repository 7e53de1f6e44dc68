"""Every registered model builds for the shapes it is meant for and maps (B, C, H, W) to (B, K)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from torchcert.models import Flatten, build_model, list_models, model_options, model_spec, register_model

ORIGINAL_NAMES = [
    "cnn_7layer", "cnn_7layer_bn", "cnn_7layer_bn2", "cnn", "cnn_wide", "cnn_7layer_imagenet",
    "cnn_7layer_bn_imagenet", "cnn_6layer", "cnn_6layer_bn2", "cnn_large",
]


def _cases():
    """(name, in_ch, in_dim, num_class) for every registry entry and every shape it is meant for."""
    for name in list_models():
        spec = model_spec(name)
        classes = (200, 1000) if spec.num_class == 200 else (spec.num_class,)
        for in_ch, in_dim in spec.input_shapes:
            for num_class in classes:
                yield pytest.param(name, in_ch, in_dim, num_class, id=f"{name}-{in_ch}x{in_dim}-K{num_class}")


def _small_options(name: str) -> dict:
    options = model_options(name)
    return {k: v for k, v in (("width", 4), ("linear_size", 16)) if k in options}


def test_every_original_name_is_registered():
    assert set(ORIGINAL_NAMES) <= set(list_models())
    assert {"cnn_small", "mlp", "mlp_784_50_50_10"} <= set(list_models())


@pytest.mark.parametrize("name,in_ch,in_dim,num_class", list(_cases()))
def test_forward_shape_small_width(name, in_ch, in_dim, num_class):
    torch.manual_seed(0)
    model = build_model(name, in_ch, in_dim, num_class, **_small_options(name))
    assert isinstance(model, nn.Module)
    x = torch.rand(3, in_ch, in_dim, in_dim)
    model.train()
    assert model(x).shape == (3, num_class)
    model.eval()
    out = model(x)
    assert out.shape == (3, num_class) and torch.isfinite(out).all()


@pytest.mark.parametrize("name,in_ch,in_dim,num_class", list(_cases()))
def test_forward_shape_default_options(name, in_ch, in_dim, num_class):
    """Default (paper-sized) options, shapes only: built and run on the meta device, no memory."""
    with torch.device("meta"):
        model = build_model(name, in_ch, in_dim, num_class)
        out = model(torch.empty(2, in_ch, in_dim, in_dim))
    assert out.shape == (2, num_class)


def test_default_num_class_follows_the_original():
    assert build_model("cnn_7layer_bn2", 3, 32, width=4, linear_size=8)[-1].out_features == 10
    assert build_model("cnn_7layer_bn_imagenet", 3, 64, width=4, linear_size=8)[-1].out_features == 200
    assert build_model("cnn_7layer_imagenet", 3, 64, width=4, linear_size=8)[-1].out_features == 200
    assert build_model("cnn_7layer_bn_imagenet", 3, 64, 1000, width=4, linear_size=8)[-1].out_features == 1000


def test_num_classes_synonym_of_cnn_large():
    with torch.device("meta"):
        assert build_model("cnn_large", 1, 28, num_classes=7)[-1].out_features == 7
    with pytest.raises(ValueError, match="disagree"):
        build_model("cnn_large", 1, 28, num_class=5, num_classes=7)


def test_alias_and_wide_variant():
    with torch.device("meta"):
        cnn = build_model("cnn", 3, 32).state_dict()
        bn2 = build_model("cnn_7layer_bn2", 3, 32).state_dict()
        wide = build_model("cnn_wide", 3, 32).state_dict()
    assert {k: v.shape for k, v in cnn.items()} == {k: v.shape for k, v in bn2.items()}
    assert wide["0.weight"].shape == (128, 3, 3, 3) and wide["16.weight"].shape == (512, 256 * 16 * 16)


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="unknown model 'resnet18'.*cnn_7layer_bn2"):
        build_model("resnet18", 3, 32)


def test_unknown_option_lists_valid_options():
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['depth'\].*width=64.*linear_size=512"):
        build_model("cnn_7layer_bn2", 3, 32, depth=3)
    with pytest.raises(ValueError, match="options are: none"):
        build_model("cnn_small", 1, 28, width=8)


@pytest.mark.parametrize("bad", [{"width": 0}, {"width": 2.5}, {"linear_size": -1}, {"width": True}])
def test_bad_option_values(bad):
    with pytest.raises(ValueError, match="positive integer"):
        build_model("cnn_7layer", 3, 32, **bad)


def test_bad_input_shape_values():
    with pytest.raises(ValueError, match="in_dim must be a positive integer"):
        build_model("cnn_small", 1, 0)


def test_golden_mlp_name_fixes_its_sizes():
    model = build_model("mlp_784_50_50_10", 1, 28)
    assert [type(m).__name__ for m in model] == ["Flatten", "Linear", "ReLU", "Linear", "ReLU", "Linear"]
    with pytest.raises(ValueError, match="784"):
        build_model("mlp_784_50_50_10", 3, 32)


def test_mlp_depth_and_width():
    model = build_model("mlp", 3, 8, 4, width=7, depth=3)
    shapes = [tuple(p.shape) for n, p in model.named_parameters() if n.endswith("weight")]
    assert shapes == [(7, 192), (7, 7), (7, 7), (4, 7)]


def test_duplicate_registration_refused():
    with pytest.raises(ValueError, match="already registered"):
        register_model("cnn_7layer")(lambda in_ch, in_dim, num_class: nn.Sequential())


def test_flatten_is_a_view_in_chw_order():
    flat = Flatten()
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).view(2, 3, 4, 5)
    y = flat(x)
    assert y.shape == (2, 60) and y.data_ptr() == x.data_ptr()
    assert torch.equal(y[1], x[1].reshape(-1))
    assert list(flat.parameters()) == [] and flat.state_dict() == {}
