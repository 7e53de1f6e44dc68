"""Export round trip: a small CNN trained here on the 8x8 digits, exported with ``torchcert export`` (ONNX with
its normalisation, VNN-LIB per test sample): onnxruntime equals torch, and ``torchcert vnncomp`` on the exported
instances gives the verdicts ``torchcert verify`` gives on the checkpoint."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")
pytest.importorskip("sklearn")

from torchcert.cli import main  # noqa: E402

EPS = 0.03
SAMPLES = 16
MODEL = ["--dataset", "digits", "--model", "cnn_small", "--eps", str(EPS)]


@pytest.fixture(scope="module")
def cnn_checkpoint(tmp_path_factory):
    from torchcert.bounds import ibp, input_box, margin_matrix
    from torchcert.data import data_range, load_dataset, normalize
    from torchcert.losses import ibp_loss
    from torchcert.models import build_model, save_checkpoint

    torch.manual_seed(0)
    split = load_dataset("digits", "train")
    x_all, y_all = normalize(split.images, split.info), split.labels
    low, high = data_range(split.info)
    model = build_model("cnn_small", 1, 8, 10)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for step in range(150):
        idx = torch.randint(0, len(split), (64,), generator=gen)
        box = input_box(x_all[idx], EPS * min(1.0, step / 75), None, torch.tensor(split.info.std), low, high)
        lb = ibp(model, box, margin_matrix(y_all[idx], 10)).lower
        loss = F.cross_entropy(model(x_all[idx]), y_all[idx]) + ibp_loss(lb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    path = tmp_path_factory.mktemp("cnn_run") / "ckpt_last.pt"
    save_checkpoint(path, model.state_dict(), epoch=1)
    return path, model.eval()


def test_exported_network_equals_torch(cnn_checkpoint, tmp_path):
    from torchcert.data import dataset_info

    path, model = cnn_checkpoint
    onnx_file = tmp_path / "net.onnx"
    assert main(["export", "--checkpoint", str(path), *MODEL, "--onnx", str(onnx_file), "--threads", "1"]) == 0
    info = dataset_info("digits")
    pixels = torch.rand(5, 1, 8, 8)
    with torch.no_grad():
        ref = model((pixels - torch.tensor(info.mean).view(1, -1, 1, 1)) / torch.tensor(info.std).view(1, -1, 1, 1))
    session = onnxruntime.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    out = session.run(None, {"input": pixels.numpy()})[0]  # a symbolic batch: all five at once
    np.testing.assert_allclose(out, ref.numpy(), rtol=1e-5, atol=1e-5)


def test_vnncomp_on_exported_properties_matches_verify(cnn_checkpoint, tmp_path):
    path, _ = cnn_checkpoint
    folder = tmp_path / "bench"
    assert main(["export", "--checkpoint", str(path), *MODEL, "--vnnlib-dir", str(folder), "--samples",
                 str(SAMPLES), "--timeout", "10", "--threads", "1"]) == 0
    results = tmp_path / "results.csv"
    assert main(["vnncomp", str(folder), "--out", str(results), "--threads", "1"]) == 0
    ours = [r["result"] for r in csv.DictReader(results.open())]
    records = tmp_path / "verify.jsonl"
    assert main(["verify", "--checkpoint", str(path), *MODEL, "--end", str(SAMPLES), "--timeout", "10",
                 "--out", str(records), "--no-progress", "--threads", "1"]) == 0
    theirs = [json.loads(line)["status"] for line in records.read_text().splitlines()[1:]]
    as_vnncomp = {"verified": "unsat", "falsified": "sat", "timeout": "timeout", "unknown": "unknown"}
    assert ours == [as_vnncomp[s] for s in theirs]
    assert {"sat", "unsat"} <= set(ours)  # both verdicts occur: the comparison means something
