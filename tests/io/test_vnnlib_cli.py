"""End to end: ``torchcert vnnlib`` / ``torchcert vnncomp`` on the shared test nets and a few mnist_fc instances
that solve in seconds (verdicts checked against the consensus of labels-dev.csv, witnesses against onnxruntime),
and the soundness pieces of :mod:`torchcert.verify.instance`."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from io_helpers import VNNCOMP, ort_outputs, vnncomp_path

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from torchcert.cli import main  # noqa: E402
from torchcert.io.files import read_bytes  # noqa: E402
from torchcert.io.onnx import load_onnx  # noqa: E402
from torchcert.io.vnnlib import load_vnnlib, parse_vnnlib, read_sexprs, tokenize  # noqa: E402
from torchcert.verify.instance import group_disjuncts, rounded_box  # noqa: E402


def test_rounded_box_outward_contains_and_inward_is_contained():
    lower = torch.tensor([0.1, -1 / 3, 0.0, 2.0 ** -30 + 2.0 ** -60], dtype=torch.float64)
    upper = lower + torch.tensor([0.2, 1e-9, 0.0, 2.0 ** -60], dtype=torch.float64)
    lo, hi = rounded_box(lower, upper, torch.float32, outward=True)
    assert bool((lo.double() <= lower).all() and (hi.double() >= upper).all())
    lo, hi = rounded_box(lower, upper, torch.float32, outward=False)
    keep = lo <= hi  # an inward box may be empty where no float32 lies inside
    assert bool((lo.double()[keep] >= lower[keep]).all() and (hi.double()[keep] <= upper[keep]).all())
    assert not bool(keep[3])


def test_group_disjuncts_merges_single_rows_of_one_box():
    header = "(declare-const X_0 Real)(declare-const Y_0 Real)(declare-const Y_1 Real)(declare-const Y_2 Real)"
    prop = parse_vnnlib(header + "(assert (>= X_0 0))(assert (<= X_0 1))"
                        "(assert (or (and (>= Y_1 Y_0)) (and (>= Y_2 Y_0)) (and (>= Y_1 1) (>= Y_2 1))))")
    merged, rest = group_disjuncts(prop)
    assert len(merged) == 1 and merged[0].A.shape == (2, 3) and len(rest) == 1 and rest[0].A.shape == (2, 3)


def _labels():
    path = vnncomp_path("labels-dev.csv")
    with path.open(newline="") as f:
        return {(r["benchmark"], r["onnx"], r["vnnlib"]): r["consensus"] for r in csv.DictReader(f)}


def _witness(path):
    lines = path.read_text().split("\n", 1)
    pairs = read_sexprs(tokenize(lines[1]))[0]
    values = {name: float(v) for name, v in pairs}
    xs = [values[k] for k in sorted((k for k in values if k[0] == "X"), key=lambda k: int(k[2:]))]
    ys = [values[k] for k in sorted((k for k in values if k[0] == "Y"), key=lambda k: int(k[2:]))]
    return lines[0], torch.tensor(xs, dtype=torch.float32), torch.tensor(ys, dtype=torch.float64)


def _check_sat_file(result_file, onnx_path, spec_path):
    """The written witness: in the box, onnxruntime's output satisfies the counterexample, and Y is that output."""
    first, x, y = _witness(result_file)
    assert first == "sat"
    net, prop = load_onnx(onnx_path), load_vnnlib(spec_path)
    y_ort = torch.from_numpy(ort_outputs(read_bytes(onnx_path), net, x.view(1, *net.in_shape))).reshape(-1)
    assert prop.counterexample_disjunct(x, y_ort) is not None
    np.testing.assert_allclose(y.numpy(), y_ort.double().numpy(), rtol=1e-6, atol=1e-6)


def test_vnnlib_command_writes_a_confirmed_witness(tmp_path, capsys):
    folder = vnncomp_path("2021", "test")
    out = tmp_path / "sat.txt"
    assert main(["vnnlib", str(folder / "test_sat.onnx"), str(folder / "test_prop.vnnlib"), "--timeout", "30",
                 "--out", str(out), "--threads", "1"]) == 0
    assert capsys.readouterr().out.startswith("sat ")
    _check_sat_file(out, folder / "test_sat.onnx", folder / "test_prop.vnnlib")
    out_unsat = tmp_path / "unsat.txt"
    assert main(["vnnlib", str(folder / "test_unsat.onnx"), str(folder / "test_prop.vnnlib"), "--timeout", "30",
                 "--out", str(out_unsat), "--threads", "1"]) == 0
    assert out_unsat.read_text() == "unsat\n"


def test_vnnlib_command_error_result_for_an_out_of_scope_network(tmp_path, capsys):
    eran = vnncomp_path("2021", "eran")
    spec = next(p for p in (eran / "specs" / "mnist").iterdir())
    out = tmp_path / "r.txt"
    assert main(["vnnlib", str(eran / "nets" / "ffnnSIGMOID__Point_6x200.onnx"), str(spec), "--out", str(out),
                 "--threads", "1"]) == 2
    assert out.read_text() == "error\n" and "Sigmoid" in capsys.readouterr().err


def _samples_agree(onnx_path, spec_path, count=2000):
    """No sampled point of any disjunct box is a counterexample by onnxruntime (a check of unsat verdicts)."""
    net, prop = load_onnx(onnx_path), load_vnnlib(spec_path)
    gen = torch.Generator().manual_seed(0)
    for dj in prop.disjuncts:
        xs = dj.lower + (dj.upper - dj.lower) * torch.rand(count, dj.lower.numel(), generator=gen, dtype=torch.float64)
        ys = torch.from_numpy(ort_outputs(read_bytes(onnx_path), net, xs.float().view(count, *net.in_shape)))
        assert not any(dj.satisfied_by(x, y) for x, y in zip(xs.float(), ys))


def test_vnncomp_runs_the_test_benchmark_and_resumes(tmp_path, capsys):
    folder = vnncomp_path("2021", "test")
    out = tmp_path / "results.csv"
    assert main(["vnncomp", str(folder), "--out", str(out), "--timeout-scale", "0.5", "--threads", "1"]) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 5 and all(r["benchmark"] == "test" for r in rows)
    verdict = {(r["onnx"], r["vnnlib"]): r["result"] for r in rows}
    assert verdict[("test_sat.onnx", "test_prop.vnnlib")] == "sat"  # the benchmark's designed answers
    assert verdict[("test_unsat.onnx", "test_prop.vnnlib")] == "unsat"
    for (net, spec), result in verdict.items():
        assert result in ("sat", "unsat")
        if result == "unsat":
            _samples_agree(folder / net, folder / spec, 500)
    assert "test: 5 instances" in capsys.readouterr().out
    assert main(["vnncomp", str(folder), "--out", str(out), "--threads", "1"]) == 0  # resumed: nothing redone
    assert list(csv.DictReader(out.open())) == rows


FAST_MNISTFC = [("mnist-net_256x2.onnx", "prop_11_0.03.vnnlib"), ("mnist-net_256x2.onnx", "prop_1_0.05.vnnlib"),
                ("mnist-net_256x2.onnx", "prop_0_0.03.vnnlib"), ("mnist-net_256x2.onnx", "prop_0_0.05.vnnlib")]


@pytest.mark.parametrize("net,spec", FAST_MNISTFC)
def test_mnistfc_instances_match_the_consensus(tmp_path, net, spec):
    folder = vnncomp_path("2021", "mnistfc")
    expected = _labels()[("mnistfc", net, spec)]
    out = tmp_path / "r.txt"
    assert main(["vnnlib", str(folder / net), str(folder / spec), "--timeout", "60", "--out", str(out),
                 "--threads", "1"]) == 0
    result = out.read_text().split("\n", 1)[0]
    assert result == expected, f"{net} {spec}: ours {result}, consensus {expected}"
    if result == "sat":
        _check_sat_file(out, folder / net, folder / spec)
    assert VNNCOMP.is_dir()


def test_real_arithmetic_drops_only_the_float32_execution_tolerance():
    """mnist 256x6, prop_10_0.03 (consensus unsat): CROWN's margin bound is positive but below the rounding
    tolerance of the float32 network, so the strict policy leaves it open and real arithmetic proves it."""
    from torchcert.verify.instance import verify_instance

    folder = vnncomp_path("2021", "mnistfc")
    assert _labels()[("mnistfc", "mnist-net_256x6.onnx", "prop_10_0.03.vnnlib")] == "unsat"
    net, prop = load_onnx(folder / "mnist-net_256x6.onnx"), load_vnnlib(folder / "prop_10_0.03.vnnlib")
    strict = verify_instance(net, prop, 60, methods=("ibp", "crown"))
    real = verify_instance(net, prop, 60, methods=("ibp", "crown"), real_arithmetic=True)
    assert strict.result == "unknown" and real.result == "unsat"
