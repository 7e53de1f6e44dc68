"""ONNX import: every shared VNN-COMP network equals onnxruntime and traces into the bound engine; each operator
(and its attributes) on small graphs built here; errors for what is out of scope."""
from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest
import torch

from io_helpers import assert_matches_ort, make_model, shared_files, vnncomp_path

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
helper = onnx.helper

from torchcert.bounds import Box, crown, ibp  # noqa: E402
from torchcert.bounds.layers import build_layers  # noqa: E402
from torchcert.io.files import read_bytes  # noqa: E402
from torchcert.io.onnx import convert, load_onnx  # noqa: E402

SHARED_NETS = shared_files("**/*.onnx.gz")
OUT_OF_SCOPE = {"2021/eran/nets/ffnnSIGMOID__Point_6x200.onnx.gz": "Sigmoid"}


@pytest.mark.parametrize("name", SHARED_NETS or ["(shared folder absent)"])
def test_shared_network_equals_onnxruntime(name):
    path = vnncomp_path(name)
    if name in OUT_OF_SCOPE:
        with pytest.raises(ValueError, match=f"operator {OUT_OF_SCOPE[name]} .*supported: .*Conv.*Gemm"):
            load_onnx(path)
        return
    net = load_onnx(path)
    assert_matches_ort(read_bytes(path), net, samples=2)
    layers = build_layers(net.module, net.in_shape, torch.float64)  # the engine reads it
    assert layers and layers[-1].out_shape == (net.num_outputs,)


def test_plain_and_suffixless_paths(tmp_path):
    src = vnncomp_path("2021", "test", "test_tiny.onnx.gz")
    plain = tmp_path / "tiny.onnx"
    plain.write_bytes(gzip.decompress(src.read_bytes()))
    shutil.copy(src, tmp_path / "zipped.onnx.gz")
    a, b = load_onnx(plain), load_onnx(tmp_path / "zipped.onnx")  # the .gz found without its suffix
    x = torch.rand(3, *a.in_shape)
    assert torch.equal(a.module(x), b.module(x))
    with pytest.raises(FileNotFoundError, match="nor missing.onnx.gz"):
        load_onnx(tmp_path / "missing.onnx")


def _rand(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _check(model, bounds_sound=True):
    """Converted == onnxruntime; IBP and CROWN bounds contain sampled outputs (the engine bounds it)."""
    net = convert(model)
    data = model.SerializeToString()
    assert_matches_ort(data, net)
    if bounds_sound:
        torch.manual_seed(0)
        centre = torch.rand(1, *net.in_shape)
        box = Box(centre - 0.1, centre + 0.1)
        double = net.module.double()
        pts = box.lower + (box.upper - box.lower) * torch.rand(64, *net.in_shape, dtype=torch.float64)
        with torch.no_grad():
            ys = double(pts.double())
            for bound in (ibp(double, Box(box.lower.double(), box.upper.double())),
                          crown(double, Box(box.lower.double(), box.upper.double()),
                                torch.eye(net.num_outputs, dtype=torch.float64)[None])):
                assert bool((ys >= bound.lower - 1e-9).all() and (ys <= bound.upper + 1e-9).all())
        net.module.float()
    return net


def test_gemm_attributes_and_flatten_of_a_column_input():
    # input [1, 6, 1] (like mnist_fc's [1, 784, 1]) -> Flatten -> Gemm transB=0 alpha/beta -> Relu -> Gemm transB=1
    nodes = [helper.make_node("Flatten", ["x"], ["f"], axis=1),
             helper.make_node("Gemm", ["f", "W1", "b1"], ["h"], alpha=0.5, beta=2.0),
             helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Gemm", ["r", "W2", "b2"], ["y"], transB=1)]
    model = make_model(nodes, {"W1": _rand(6, 5), "b1": _rand(1, 5, seed=1), "W2": _rand(3, 5, seed=2),
                               "b2": _rand(3, seed=3)}, [1, 6, 1])
    net = _check(model)
    assert net.in_shape == (6, 1) and net.num_outputs == 3


def test_matmul_add_with_symbolic_batch_folds_the_bias():
    nodes = [helper.make_node("MatMul", ["x", "W"], ["m"]), helper.make_node("Add", ["m", "b"], ["a"]),
             helper.make_node("Relu", ["a"], ["r"]), helper.make_node("MatMul", ["r", "W2"], ["y"])]
    model = make_model(nodes, {"W": _rand(4, 6), "b": _rand(6, seed=1), "W2": _rand(6, 2, seed=2)}, ["N", 4])
    net = _check(model)
    assert [type(m).__name__ for m in net.module] == ["Linear", "ReLU", "Linear"]  # the Add went into the bias


def test_conv_asymmetric_pads_pool_pad_batchnorm_and_normalisation():
    c = 3
    nodes = [helper.make_node("Sub", ["x", "mean"], ["s"]), helper.make_node("Div", ["s", "std"], ["n"]),
             helper.make_node("Conv", ["n", "W", "B"], ["c"], pads=[0, 1, 1, 0], strides=[2, 1], dilations=[1, 2]),
             helper.make_node("BatchNormalization", ["c", "g", "be", "mu", "var"], ["bn"], epsilon=1e-3),
             helper.make_node("Relu", ["bn"], ["r"]),
             helper.make_node("Pad", ["r", "pads", "val"], ["p"], mode="constant"),
             helper.make_node("AveragePool", ["p"], ["a"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("MaxPool", ["a"], ["mp"], kernel_shape=[2, 2], strides=[1, 1], pads=[1, 1, 1, 1]),
             helper.make_node("Mul", ["mp", "k"], ["mk"]),
             helper.make_node("Reshape", ["mk", "shape"], ["y"])]
    inits = {"mean": np.array([0.5], np.float32), "std": np.array([[[0.25]], [[0.5]]], np.float32),
             "W": _rand(c, 2, 3, 3), "B": _rand(c, seed=1), "g": _rand(c, seed=2), "be": _rand(c, seed=3),
             "mu": _rand(c, seed=4), "var": np.abs(_rand(c, seed=5)) + 0.5,
             "pads": np.array([0, 0, 1, 0, 0, 0, 0, 1], np.int64), "val": np.array(0.25, np.float32),
             "k": np.array([[[2.0]], [[-1.0]], [[0.5]]], np.float32), "shape": np.array([1, -1], np.int64)}
    net = _check(make_model(nodes, inits, [1, 2, 9, 8]))
    assert net.in_shape == (2, 9, 8)


def test_residual_add_and_concat_give_a_traced_graph():
    nodes = [helper.make_node("Conv", ["x", "W1"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a"], ["ra"]),
             helper.make_node("Conv", ["ra", "W2"], ["b"], pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["b", "x"], ["res"]),
             helper.make_node("Sub", ["res", "ra"], ["d"]),
             helper.make_node("Concat", ["d", "ra"], ["cat"], axis=1),
             helper.make_node("Flatten", ["cat"], ["f"]),
             helper.make_node("Gemm", ["f", "W3"], ["y"], transB=1)]
    model = make_model(nodes, {"W1": _rand(2, 2, 3, 3), "W2": _rand(2, 2, 3, 3, seed=1),
                               "W3": _rand(4, 4 * 5 * 5, seed=2)}, [1, 2, 5, 5])
    net = _check(model)
    assert type(net.module).__name__ == "OnnxGraph"


def test_constant_folding_of_shape_operators():
    # the weight goes through Transpose / Unsqueeze / Squeeze / Identity / Constant arithmetic before its MatMul
    weight = helper.make_tensor("Wc", onnx.TensorProto.FLOAT, [3, 4], _rand(3, 4).reshape(-1).tolist())
    nodes = [helper.make_node("Constant", [], ["W"], value=weight),
             helper.make_node("Transpose", ["W"], ["Wt"], perm=[1, 0]),
             helper.make_node("Unsqueeze", ["Wt", "ax"], ["Wu"]),
             helper.make_node("Squeeze", ["Wu", "ax"], ["Ws"]),
             helper.make_node("Mul", ["Ws", "two"], ["W2"]),
             helper.make_node("Identity", ["x"], ["xi"]),
             helper.make_node("Unsqueeze", ["xi", "ax2"], ["xu"]),
             helper.make_node("Squeeze", ["xu", "ax2"], ["xs"]),
             helper.make_node("MatMul", ["xs", "W2"], ["y"])]
    model = make_model(nodes, {"ax": np.array([0], np.int64), "two": np.array(2.0, np.float32),
                               "ax2": np.array([2], np.int64)}, [1, 4])
    net = _check(model)
    assert [type(m).__name__ for m in net.module] == ["Linear"]


def test_unbatched_vector_input_as_in_the_vnncomp_test_nets():
    nodes = [helper.make_node("MatMul", ["W", "x"], ["m"]), helper.make_node("Add", ["m", "b"], ["y"])]
    net = _check(make_model(nodes, {"W": _rand(2, 3), "b": _rand(2, seed=1)}, [3]))
    assert net.in_shape == (3,) and net.onnx_shape == (3,)


@pytest.mark.parametrize("nodes,inits,shape,message", [
    ([helper.make_node("Sigmoid", ["x"], ["y"])], {}, [1, 3], "operator Sigmoid .*supported: Add, AveragePool"),
    ([helper.make_node("Mul", ["x", "x"], ["y"])], {}, [1, 3], "of two activations only Add/Sub"),
    ([helper.make_node("Reshape", ["x", "s"], ["r"]), helper.make_node("Add", ["r", "c"], ["y"])],
     {"s": np.array([1, 2, 3], np.int64), "c": np.ones((2, 1), np.float32)}, [1, 6], "reshapes to \\(batch, n\\)"),
    ([helper.make_node("Transpose", ["x"], ["y"], perm=[0, 2, 1])], {}, [1, 2, 3], "unit dimensions"),
    ([helper.make_node("Add", ["x", "c"], ["y"])], {"c": np.ones((1, 2, 3), np.float32)}, [1, 1, 3],
     "enlarging"),
])
def test_out_of_scope_graphs_raise_one_clear_error(nodes, inits, shape, message):
    with pytest.raises(ValueError, match=message):
        convert(make_model(nodes, inits, shape))


def test_inexact_folds_are_kept_apart_so_the_network_is_the_files_function():
    # alpha = 0.3 would round W in float32; Gemm bias + Add of a constant would round the sum: both stay separate
    nodes = [helper.make_node("Gemm", ["x", "W", "b"], ["g"], alpha=0.3, transB=1),
             helper.make_node("Gemm", ["g", "W2", "b2"], ["h"], transB=1),
             helper.make_node("Add", ["h", "c"], ["y"])]
    inits = {"W": _rand(3, 4), "b": _rand(3, seed=1), "W2": _rand(2, 3, seed=2),
             "b2": np.array([1.0, 2.0 ** -30], np.float32), "c": np.array([2.0 ** -30, 1.0], np.float32)}
    net = _check(make_model(nodes, inits, [1, 4]))
    assert [type(m).__name__ for m in net.module] == ["Linear", "ChannelAffine", "Linear", "ChannelAffine"]
    assert float(net.module[1].constants()[0]) == float(np.float32(0.3)) and net.module[0].weight.dtype == torch.float32
