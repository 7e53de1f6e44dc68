"""Helpers of the io tests: the shared VNN-COMP folder, small ONNX graphs, comparison with onnxruntime.

(``tests/io`` is not a package, so that its modules never shadow the standard library's ``io``.)"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
import pytest
import torch

#: ``../shared/vnncomp`` beside the clone (see tests/conftest.py)
VNNCOMP = Path(__file__).resolve().parents[2].parent / "shared" / "vnncomp"


def vnncomp_path(*parts: str) -> Path:
    """A path under the shared VNN-COMP folder; skips the calling test (with the reason) when it is absent."""
    path = VNNCOMP.joinpath(*parts)
    if not path.exists() and not path.with_name(path.name + ".gz").exists():
        pytest.skip(f"{path} not found: this test needs the project's shared/vnncomp folder beside the clone")
    return path


def shared_files(pattern: str) -> List[str]:
    """Paths (relative to the VNN-COMP folder) matching ``pattern``; [] when the folder is absent."""
    return sorted(p.relative_to(VNNCOMP).as_posix() for p in VNNCOMP.glob(pattern)) if VNNCOMP.is_dir() else []


def make_model(nodes: list, inits: Dict[str, np.ndarray], in_shape: Sequence, out_name: str = "y",
               opset: int = 13, in_name: str = "x"):
    """A one-input, one-output ONNX model (float32 initializers; shapes may hold symbolic names)."""
    from onnx import TensorProto, helper, numpy_helper

    init = [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()]
    graph = helper.make_graph(nodes, "test", [helper.make_tensor_value_info(in_name, TensorProto.FLOAT, list(in_shape))],
                              [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, None)], init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def ort_outputs(model_bytes: bytes, net, xs: torch.Tensor) -> np.ndarray:
    """onnxruntime's outputs ``(N, K)`` for the samples ``xs (N, *in)``, one run per sample."""
    import onnxruntime

    session = onnxruntime.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    rows: List[np.ndarray] = []
    for x in xs:
        out = session.run(None, {net.input_name: x.numpy().astype(np.float32).reshape(net.onnx_shape)})[0]
        rows.append(np.asarray(out).reshape(1, -1))
    return np.concatenate(rows)


def assert_matches_ort(model_bytes: bytes, net, samples: int = 4, seed: int = 0) -> None:
    """The converted module equals onnxruntime to 1e-5 (relative to the output scale) on random inputs."""
    gen = torch.Generator().manual_seed(seed)
    xs = torch.rand((samples, *net.in_shape), generator=gen) * 2 - 0.5
    with torch.no_grad():
        ours = net.module(xs).numpy()
    ref = ort_outputs(model_bytes, net, xs)
    scale = max(1.0, float(np.abs(ref).max()))
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5 * scale)
