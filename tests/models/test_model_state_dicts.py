"""state_dict keys and shapes equal those of the original definitions (models/feedforward.py), so the
released checkpoints load strictly; the golden state_dicts load and reproduce the golden logits."""
from __future__ import annotations

import pytest
import torch

from torchcert.models import build_model, load_state_dict_strict


def _conv(i, out_c, in_c):
    return {f"{i}.weight": (out_c, in_c, 3, 3), f"{i}.bias": (out_c,)}


def _bn(i, c):
    return {f"{i}.weight": (c,), f"{i}.bias": (c,), f"{i}.running_mean": (c,), f"{i}.running_var": (c,),
            f"{i}.num_batches_tracked": ()}


def _linear(i, out_f, in_f):
    return {f"{i}.weight": (out_f, in_f), f"{i}.bias": (out_f,)}


def _shapes(name, in_ch, in_dim, num_class=None, **kw):
    with torch.device("meta"):
        model = build_model(name, in_ch, in_dim, num_class, **kw)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


# cnn_7layer_bn2(in_ch=3, in_dim=32): conv/BN at 0/1, 3/4, 6/7 (stride 2), 9/10, 12/13; Flatten 15;
# Linear 16 (32768 = 16*16*128 -> 512); BatchNorm1d 17; Linear 19 (512 -> 10).
CNN7_BN2_CIFAR = {
    **_conv(0, 64, 3), **_bn(1, 64), **_conv(3, 64, 64), **_bn(4, 64), **_conv(6, 128, 64), **_bn(7, 128),
    **_conv(9, 128, 128), **_bn(10, 128), **_conv(12, 128, 128), **_bn(13, 128),
    **_linear(16, 512, 32768), **_bn(17, 512), **_linear(19, 10, 512),
}
# cnn_7layer_bn2(in_ch=1, in_dim=28): Linear 16 has 14*14*128 = 25088 in-features.
CNN7_BN2_MNIST = {
    **_conv(0, 64, 1), **_bn(1, 64), **_conv(3, 64, 64), **_bn(4, 64), **_conv(6, 128, 64), **_bn(7, 128),
    **_conv(9, 128, 128), **_bn(10, 128), **_conv(12, 128, 128), **_bn(13, 128),
    **_linear(16, 512, 25088), **_bn(17, 512), **_linear(19, 10, 512),
}
# cnn_7layer_bn_imagenet(in_ch=3, in_dim=64, num_class=200): the original hard-codes 32768 in-features.
CNN7_BN_IMAGENET = {
    **_conv(0, 64, 3), **_bn(1, 64), **_conv(3, 64, 64), **_bn(4, 64), **_conv(6, 128, 64), **_bn(7, 128),
    **_conv(9, 128, 128), **_bn(10, 128), **_conv(12, 128, 128), **_bn(13, 128),
    **_linear(16, 512, 32768), **_bn(17, 512), **_linear(19, 200, 512),
}
# cnn_7layer_imagenet(in_ch=3, in_dim=64): no BN after the 5th conv (12), ReLU 13, Flatten 14, Linear 15, 17.
CNN7_IMAGENET = {
    **_conv(0, 64, 3), **_bn(1, 64), **_conv(3, 64, 64), **_bn(4, 64), **_conv(6, 128, 64), **_bn(7, 128),
    **_conv(9, 128, 128), **_bn(10, 128), **_conv(12, 128, 128),
    **_linear(15, 512, 32768), **_linear(17, 200, 512),
}
# cnn_7layer(in_ch=3, in_dim=32): convs 0, 2, 4, 6, 8; Flatten 10; Linear 11, 13.
CNN7_CIFAR = {
    **_conv(0, 64, 3), **_conv(2, 64, 64), **_conv(4, 128, 64), **_conv(6, 128, 128), **_conv(8, 128, 128),
    **_linear(11, 512, 32768), **_linear(13, 10, 512),
}
# cnn_7layer_bn(in_ch=1, in_dim=28): as bn2 without the BatchNorm1d: Linear 16, ReLU 17, Linear 18.
CNN7_BN_MNIST = {
    **_conv(0, 64, 1), **_bn(1, 64), **_conv(3, 64, 64), **_bn(4, 64), **_conv(6, 128, 64), **_bn(7, 128),
    **_conv(9, 128, 128), **_bn(10, 128), **_conv(12, 128, 128), **_bn(13, 128),
    **_linear(16, 512, 25088), **_linear(18, 10, 512),
}
# cnn_6layer_bn2(in_ch=3, in_dim=32): width 32, linear 256: convs 0/1, 3/4, 6/7, 9/10; Linear 13; BN1d 14; 16.
CNN6_BN2_CIFAR = {
    **_conv(0, 32, 3), **_bn(1, 32), **_conv(3, 32, 32), **_bn(4, 32), **_conv(6, 64, 32), **_bn(7, 64),
    **_conv(9, 64, 64), **_bn(10, 64), **_linear(13, 256, 16384), **_bn(14, 256), **_linear(16, 10, 256),
}
# cnn_large(in_ch=1, in_dim=28): convs 0, 2, 4, 6, 8 (64, 64, 128, 128, 128); Linear 11 (25088 -> 512), 13.
CNN_LARGE_MNIST = {
    **_conv(0, 64, 1), **_conv(2, 64, 64), **_conv(4, 128, 64), **_conv(6, 128, 128), **_conv(8, 128, 128),
    **_linear(11, 512, 25088), **_linear(13, 10, 512),
}
# cnn_small(in_ch=1, in_dim=28): 4x4 convs 0, 2; Flatten 4; Linear 5 (32*7*7 -> 100), 7.
CNN_SMALL_MNIST = {
    "0.weight": (16, 1, 4, 4), "0.bias": (16,), "2.weight": (32, 16, 4, 4), "2.bias": (32,),
    **_linear(5, 100, 1568), **_linear(7, 10, 100),
}


@pytest.mark.parametrize(
    "expected,args",
    [
        (CNN7_BN2_CIFAR, ("cnn_7layer_bn2", 3, 32)),
        (CNN7_BN2_CIFAR, ("cnn", 3, 32)),
        (CNN7_BN2_MNIST, ("cnn_7layer_bn2", 1, 28)),
        (CNN7_BN_IMAGENET, ("cnn_7layer_bn_imagenet", 3, 64, 200)),
        (CNN7_IMAGENET, ("cnn_7layer_imagenet", 3, 64)),
        (CNN7_CIFAR, ("cnn_7layer", 3, 32)),
        (CNN7_BN_MNIST, ("cnn_7layer_bn", 1, 28)),
        (CNN6_BN2_CIFAR, ("cnn_6layer_bn2", 3, 32)),
        (CNN_LARGE_MNIST, ("cnn_large", 1, 28)),
        (CNN_SMALL_MNIST, ("cnn_small", 1, 28)),
    ],
    ids=lambda v: v[0] + f"-{v[1]}x{v[2]}" if isinstance(v, tuple) else "",
)
def test_keys_and_shapes_match_the_original(expected, args):
    got = _shapes(*args)
    assert list(got) == list(expected)  # same keys in the same order
    assert got == expected


def test_imagenet_in_features_computed_for_other_widths():
    """At width w the 5th conv leaves 2w channels of (in_dim/4)^2 pixels."""
    assert _shapes("cnn_7layer_bn_imagenet", 3, 64, width=16, linear_size=32)["16.weight"] == (32, 2 * 16 * 16 * 16)
    assert _shapes("cnn_7layer_imagenet", 3, 64, width=8, linear_size=32)["15.weight"] == (32, 2 * 8 * 16 * 16)


@pytest.mark.parametrize("case", ["A", "B", "D"])
def test_golden_state_dicts_load_strictly_and_reproduce_logits(golden_dir, case):
    data = torch.load(golden_dir / f"case_{case}.pt", weights_only=True)
    kwargs = dict(data["model"]["kwargs"])
    in_ch, in_dim = kwargs.pop("in_ch", 1), kwargs.pop("in_dim", 28)
    model = build_model(data["model"]["name"], in_ch, in_dim, data["num_class"], **kwargs)
    load_state_dict_strict(model, data["state_dict"])
    model.load_state_dict(data["state_dict"], strict=True)  # torch's own strict check agrees
    model.eval()
    with torch.no_grad():
        logits = model(data["x"])
    torch.testing.assert_close(logits, data["eval"]["logits"], rtol=1e-5, atol=1e-5)
