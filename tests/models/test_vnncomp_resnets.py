"""resnet_2b / resnet_4b are VNN-COMP's cifar10_resnet networks: the ONNX files' weights load into them strictly
(same names and shapes) and the loaded networks compute what onnxruntime computes on the ONNX files."""
from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch

from torchcert.bounds import BoundGraph, Box, crown, ibp
from torchcert.models import build_model


def _onnx_model(vnncomp_dir, name: str):
    onnx = pytest.importorskip("onnx")
    path = vnncomp_dir / "2021" / "cifar10_resnet" / "onnx" / f"{name}.onnx.gz"
    return onnx.load_from_string(gzip.decompress(path.read_bytes()))


@pytest.mark.parametrize("name", ["resnet_2b", "resnet_4b"])
def test_vnncomp_weights_load_and_match_onnxruntime(vnncomp_dir, name):
    proto = _onnx_model(vnncomp_dir, name)
    from onnx import numpy_helper

    model = build_model(name, 3, 32).eval()
    weights = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in proto.graph.initializer}
    model.load_state_dict(weights, strict=True)
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).uniform(-2, 2, (1, 3, 32, 32)).astype(np.float32)
    expected = session.run(None, {session.get_inputs()[0].name: x})[0]
    with torch.no_grad():
        got = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["resnet_2b", "resnet_4b"])
def test_vnncomp_resnets_are_bounded_soundly(name):
    """IBP and CROWN (float64) contain the outputs of points sampled in the box; a point box is exact."""
    torch.manual_seed(0)
    model = BoundGraph(build_model(name, 3, 32).double().eval())
    x = torch.rand(1, 3, 32, 32, dtype=torch.float64)
    box = Box(x - 2 / 255, x + 2 / 255)
    points = box.lower + (box.upper - box.lower) * torch.rand(32, 3, 32, 32, dtype=torch.float64)
    points[:2] = torch.stack([box.lower[0], box.upper[0]])
    with torch.no_grad():
        out = model(points)
    C = torch.eye(10, dtype=torch.float64).unsqueeze(0)
    for method in (ibp, crown):
        bound = method(model, box, C)
        assert bool((bound.lower[0] <= out.min(0).values + 1e-9).all())
        assert bool((bound.upper[0] >= out.max(0).values - 1e-9).all())
    point = crown(model, Box(x, x), C)
    torch.testing.assert_close(point.lower, model(x), rtol=1e-9, atol=1e-9)
