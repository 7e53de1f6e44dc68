"""The CUDA path equals the CPU path: bounds, a training run, the verification cascade and branch and bound.

Every test here needs a CUDA device and is skipped without one (CI has none); they run on a lent GPU machine
(see ``benchmarks/gpu_check.sh``). Bounds are compared in float64, where CPU and GPU kernels agree to rounding.
"""
from __future__ import annotations

import json
import os

import pytest
import torch
from torch import nn

from torchcert.bounds import alpha_crown, crown, ibp, input_box, margin_matrix
from torchcert.models import build_model

from random_nets import Normalised

#: the device under test; TORCHCERT_CUDA_TEST_DEVICE=cpu dry-runs these tests on a machine without a GPU
DEVICE = os.environ.get("TORCHCERT_CUDA_TEST_DEVICE", "cuda")
pytestmark = pytest.mark.skipif(DEVICE == "cuda" and not torch.cuda.is_available(), reason="needs a CUDA device")


def _case(name: str, in_shape, seed: int = 0):
    torch.manual_seed(seed)
    model = build_model(name, in_ch=in_shape[0], in_dim=in_shape[1], num_class=10).double().eval()
    x = torch.rand(2, *in_shape, dtype=torch.float64)
    labels = torch.tensor([3, 7])
    box = input_box(x, 0.01, torch.zeros(in_shape[0]), torch.ones(in_shape[0]), 0.0, 1.0)
    return model, box, margin_matrix(labels, 10).double()


def _on(device, model, box, C):
    from torchcert.bounds import Box
    return model.to(device), Box(box.lower.to(device), box.upper.to(device)), C.to(device)


@pytest.mark.parametrize("name,in_shape", [("cnn_small", (1, 28, 28)), ("cnn", (3, 16, 16)),
                                           ("resnet_small", (1, 8, 8))])
def test_bounds_on_cuda_equal_cpu(name, in_shape):
    model, box, C = _case(name, in_shape)
    for method in (ibp, crown):
        cpu = method(*_on("cpu", model, box, C)).lower
        gpu = method(*_on(DEVICE, model, box, C)).lower
        assert gpu.device.type == DEVICE
        torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-9, atol=1e-9)


def test_alpha_crown_on_cuda_is_sound_and_close_to_cpu():
    model, box, C = _case("cnn_small", (1, 28, 28))
    cpu = alpha_crown(*_on("cpu", model, box, C), iterations=5).lower
    gpu = alpha_crown(*_on(DEVICE, model, box, C), iterations=5).lower.cpu()
    plain = crown(*_on("cpu", model, box, C)).lower
    assert torch.all(gpu >= plain - 1e-9)
    torch.testing.assert_close(gpu, cpu, rtol=1e-6, atol=1e-6)


def test_training_runs_on_cuda(tmp_path):
    pytest.importorskip("sklearn")
    from torchcert.config import load_config
    from torchcert.train.config import TrainConfig
    from torchcert.train.run import train

    config = load_config(TrainConfig, "digits/cc-ibp", [
        "data.train_limit=256", "data.test_limit=64", "data.batch_size=64", "run.epochs=2", "eps.start=1",
        "eps.length=1", "run.progress=false", "attack.test_steps=2", "run.test_interval=1"])
    result = train(config, tmp_path / "run", device=DEVICE)
    assert next(result.model.parameters()).device.type == DEVICE
    summary = json.loads((result.out_dir / "summary.json").read_text())
    assert 0.0 <= summary["ibp_verified_acc"] <= summary["nat_acc"] <= 1.0


def test_verify_on_cuda_gives_the_cpu_verdicts(tmp_path):
    pytest.importorskip("sklearn")
    from torchcert.config import load_config
    from torchcert.train.config import TrainConfig
    from torchcert.train.run import train
    from torchcert.verify.run import verify

    config = load_config(TrainConfig, "digits/cc-ibp", [
        "data.train_limit=512", "data.batch_size=64", "run.epochs=3", "eps.start=1", "eps.length=1",
        "run.progress=false", "attack.test_steps=2", "run.test_interval=3"])
    checkpoint = train(config, tmp_path / "run", device="cpu").checkpoint
    summaries = {}
    for device in ("cpu", DEVICE):
        summaries[device] = verify(checkpoint, methods="ibp,crown", end=30, device=device, progress=False,
                                   out=tmp_path / f"{device}.jsonl")
    records = {d: [json.loads(line) for line in (tmp_path / f"{d}.jsonl").read_text().splitlines()]
               for d in summaries}
    cpu, gpu = ([r["status"] for r in records[d] if "status" in r] for d in ("cpu", DEVICE))
    assert cpu == gpu and len(cpu) == 30


def test_branch_and_bound_on_cuda_gives_the_cpu_verdict():
    from torchcert.bounds import Box
    from torchcert.verify.bab import BabSettings, branch_and_bound

    torch.manual_seed(3)
    model = nn.Sequential(nn.Flatten(), nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(),
                          nn.Linear(16, 3)).eval()
    x = torch.rand(1, 6)
    label = int(model(x).argmax())
    C = margin_matrix(torch.tensor([label]), 3)
    verdicts = {}
    for eps in (0.02, 0.3):
        for device in ("cpu", DEVICE):
            box = Box((x - eps).to(device), (x + eps).to(device))
            result = branch_and_bound(model.to(device), box, C.to(device), BabSettings(timeout=60.0))
            verdicts[eps, device] = result.status
        assert verdicts[eps, "cpu"] == verdicts[eps, DEVICE], verdicts


def test_exact_leaves_on_cuda_match_the_milp():
    """Branch and bound without attacks on the device: falsified only through the exact LP leaves."""
    pytest.importorskip("scipy")
    from torchcert.bounds import Box
    from torchcert.verify.bab import BabSettings, branch_and_bound
    from verify.milp import exact_min_margin
    from verify.test_bab_exact import _hard_eps, _net

    for seed, frac in enumerate([1.02, 0.97, 1.05, 0.9]):
        model, x, label = _net(100 + seed, 1)
        C = margin_matrix(label, 3).double()
        eps = _hard_eps(model, x, C, frac)
        exact = exact_min_margin(model, x - eps, x + eps, C)
        box = Box((x - eps).to(DEVICE), (x + eps).to(DEVICE))
        result = branch_and_bound(model.to(DEVICE), box, C.to(DEVICE), BabSettings(timeout=60, attacks=False))
        assert result.status == ("verified" if exact > 0 else "falsified"), (seed, exact, result)
        assert result.lower_bound <= exact + 1e-7


def test_full_cascade_on_cuda_agrees_with_cpu(tmp_path):
    """PGD, IBP, CROWN, alpha-CROWN and BaB on the device: no sample verified on one device and falsified on the
    other (PGD's random starts differ between devices, so only contradictions are errors), same verified set."""
    pytest.importorskip("sklearn")
    from torchcert.config import load_config
    from torchcert.train.config import TrainConfig
    from torchcert.train.run import train
    from torchcert.verify.run import verify

    config = load_config(TrainConfig, "digits/cc-ibp-resnet", [
        "data.train_limit=512", "data.batch_size=64", "run.epochs=2", "eps.start=1", "eps.length=1",
        "run.progress=false", "attack.test_steps=2", "run.test_interval=2"])
    checkpoint = train(config, tmp_path / "run", device=DEVICE).checkpoint
    status = {}
    for device in ("cpu", DEVICE):
        verify(checkpoint, methods="ibp,crown,alpha,bab", end=12, timeout=20, device=device, progress=False,
               out=tmp_path / f"{device}.jsonl")
        records = [json.loads(line) for line in (tmp_path / f"{device}.jsonl").read_text().splitlines()]
        status[device] = [r["status"] for r in records if "status" in r]
    pairs = list(zip(status["cpu"], status[DEVICE]))
    assert len(pairs) == 12
    assert not any({a, b} == {"verified", "falsified"} for a, b in pairs), pairs
    assert [a == "verified" for a, _ in pairs] == [b == "verified" for _, b in pairs], pairs


def test_max_pooling_bounds_on_cuda_equal_cpu():
    torch.manual_seed(5)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(4 * 4 * 4, 10)).double().eval()
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    from torchcert.bounds import Box
    box = Box(x - 0.05, x + 0.05)
    C = margin_matrix(torch.tensor([1, 2]), 10).double()
    for method in (ibp, crown):
        cpu = method(*_on("cpu", model, box, C)).lower
        gpu = method(*_on(DEVICE, model, box, C)).lower
        torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-9, atol=1e-9)


def test_constants_of_a_traced_forward_follow_the_device():
    from torchcert.bounds import BoundGraph, Box

    torch.manual_seed(0)
    model = Normalised().double().eval()
    x = torch.rand(2, 2, 4, 4, dtype=torch.float64)
    box, C = Box(x - 0.05, x + 0.05), torch.eye(2, dtype=torch.float64).expand(2, 2, 2)
    cpu = crown(model, box, C).lower
    for bounded in (model.to(DEVICE), BoundGraph(model.to(DEVICE))):
        gpu = crown(bounded, Box(box.lower.to(DEVICE), box.upper.to(DEVICE)), C.to(DEVICE)).lower
        torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-9, atol=1e-9)
