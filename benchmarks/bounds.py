"""Benchmark of torchcert.bounds: median time of forward, IBP, CROWN-IBP, CROWN and alpha-CROWN.

    PYTHONPATH=src python benchmarks/bounds.py            # full table (CNN7 CROWN takes minutes)
    PYTHONPATH=src python benchmarks/bounds.py --quick    # batch 1/32 only, no CNN7 CROWN / alpha
    PYTHONPATH=src python benchmarks/bounds.py --models cnn7-cifar --batches 1 --threads 1 \
        --cifar-eps 0.0313725 --lirpa-python /work/lirpa-venv/bin/python   # + auto_LiRPA CROWN head-to-head

Models have random (untrained) weights, BatchNorm in eval mode; inputs uniform in [0, 1], normalised;
eps in pixel units (MNIST 0.1, CIFAR 2/255 by default). Times are medians of wall seconds; CROWN rows
also print CPU seconds (``time.process_time``, steadier on a shared machine) and the peak RSS.

``--lirpa-python`` (optional) names the Python of a separate environment with auto_LiRPA installed. For
every CNN7 case with CROWN, the model weights, box and specification are saved to a temporary folder and
a small script (the template below, run by that Python in a subprocess, with the same thread count)
times ``BoundedModule(...).compute_bounds(method="CROWN")`` on exactly the same problem; the benchmark
then prints its times, the speed ratio and the largest difference between the two lower bounds.
This process never imports auto_LiRPA.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import tempfile
import time
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch import nn

from torchcert.bounds import BoundGraph, Box, alpha_crown, crown, ibp, input_box, margin_matrix

CIFAR = ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))


def cnn_7layer_bn2(in_ch: int, in_dim: int, width: int = 64, linear_size: int = 512) -> nn.Sequential:
    w = width
    convs = [(in_ch, w, 1), (w, w, 1), (w, 2 * w, 2), (2 * w, 2 * w, 1), (2 * w, 2 * w, 1)]
    layers: List[nn.Module] = []
    for cin, cout, stride in convs:
        layers += [nn.Conv2d(cin, cout, 3, stride, 1), nn.BatchNorm2d(cout), nn.ReLU()]
    layers += [nn.Flatten(), nn.Linear(2 * w * (in_dim // 2) ** 2, linear_size), nn.BatchNorm1d(linear_size),
               nn.ReLU(), nn.Linear(linear_size, 10)]
    return nn.Sequential(*layers).eval()


def small_cnn() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(1, 16, 4, 2, 1), nn.ReLU(), nn.Conv2d(16, 32, 4, 2, 1), nn.ReLU(),
                         nn.Flatten(), nn.Linear(1568, 100), nn.ReLU(), nn.Linear(100, 10)).eval()


def _resnet_small() -> nn.Module:
    """The registry's resnet_small for CIFAR shapes (residual graph: the DAG walk, dense rows)."""
    from torchcert.models import build_model

    return build_model("resnet_small", 3, 32, 10).eval()


def _sync() -> None:
    """Wait for queued CUDA kernels, so that a wall time covers the work and not only its launch."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def timed(fn: Callable[[], object], repeats: int) -> Tuple[float, float, object]:
    """Median wall and CPU seconds of ``fn()`` over ``repeats`` calls (after a warm-up if repeated)."""
    walls, cpus, out = [], [], None
    if repeats > 1:
        fn()  # warm-up
    for _ in range(repeats):
        _sync()
        start, cpu = time.perf_counter(), time.process_time()
        out = fn()
        _sync()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus), out


def median_time(fn: Callable[[], object], repeats: int) -> float:
    return timed(fn, repeats)[0]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


LIRPA_SCRIPT = r'''
import json, resource, sys, time, warnings
warnings.filterwarnings("ignore")
import torch
from torch import nn
from auto_LiRPA import BoundedModule, BoundedTensor
from auto_LiRPA.perturbations import PerturbationLpNorm

torch.set_num_threads(int(sys.argv[2]))
p = torch.load(sys.argv[1] + "/problem.pt", weights_only=True)
in_ch, in_dim, w, lin = p["arch"].tolist()


class Flatten(nn.Module):
    def forward(self, x):
        return x.view(x.size(0), -1)


convs = [(in_ch, w, 1), (w, w, 1), (w, 2 * w, 2), (2 * w, 2 * w, 1), (2 * w, 2 * w, 1)]
mods = []
for cin, cout, stride in convs:
    mods += [nn.Conv2d(cin, cout, 3, stride, 1), nn.BatchNorm2d(cout), nn.ReLU()]
mods += [Flatten(), nn.Linear(2 * w * (in_dim // 2) ** 2, lin), nn.BatchNorm1d(lin), nn.ReLU(), nn.Linear(lin, 10)]
model = nn.Sequential(*mods)
model.load_state_dict(p["state_dict"])
model.eval()
x = (p["lb"] + p["ub"]) / 2
lirpa = BoundedModule(model, x, bound_opts={"relu": "adaptive"}, device="cpu")
walls, cpus = [], []
for _ in range(int(sys.argv[3])):
    xt = BoundedTensor(x, PerturbationLpNorm(norm=float("inf"), x_L=p["lb"], x_U=p["ub"]))
    t0, c0 = time.perf_counter(), time.process_time()
    with torch.no_grad():
        lower, _ = lirpa.compute_bounds(x=(xt,), C=p["C"], method="CROWN", bound_upper=False)
    walls.append(time.perf_counter() - t0)
    cpus.append(time.process_time() - c0)
torch.save(lower, sys.argv[1] + "/lower.pt")
print(json.dumps(dict(wall=walls, cpu=cpus, peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)))
'''


def lirpa_crown(python: str, model: nn.Module, arch: List[int], box: Box, C: torch.Tensor, threads: int,
                repeats: int = 1) -> Optional[Dict[str, object]]:
    """Time auto_LiRPA CROWN on the same model/box in a subprocess run by ``python``; None if it fails."""
    with tempfile.TemporaryDirectory() as tmp:
        torch.save(dict(state_dict=model.state_dict(), lb=box.lower, ub=box.upper, C=C,
                        arch=torch.tensor(arch)), os.path.join(tmp, "problem.pt"))
        script = os.path.join(tmp, "lirpa_crown.py")
        with open(script, "w") as f:
            f.write(LIRPA_SCRIPT)
        proc = subprocess.run([python, script, tmp, str(threads), str(repeats)], capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"auto_LiRPA run failed (rc {proc.returncode}): {proc.stderr.strip()[-800:]}")
            return None
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        result["lower"] = torch.load(os.path.join(tmp, "lower.pt"), weights_only=True)
        return result


def make_box(shape, batch: int, eps: float, device: str = "cpu") -> Box:
    channels = shape[0]
    mean, std = (torch.tensor(CIFAR[0]), torch.tensor(CIFAR[1])) if channels == 3 else (torch.zeros(1), torch.ones(1))
    mean, std = mean.to(device), std.to(device)
    x01 = torch.rand((batch,) + tuple(shape), device=device)
    x = (x01 - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)
    lo, hi = ((0 - mean) / std).view(1, -1, 1, 1), ((1 - mean) / std).view(1, -1, 1, 1)
    return input_box(x, eps, mean, std, lo, hi)


def run_case(name: str, model: nn.Module, shape, eps: float, batch: int, args) -> Dict[str, float]:
    box = make_box(shape, batch, eps, args.device)
    C = margin_matrix(torch.randint(0, 10, (batch,)), 10).to(args.device)
    heavy = batch in args.crown_batches and (name == "small" or not args.quick)
    row: Dict[str, float] = {}
    with torch.no_grad():
        row["forward"] = median_time(lambda: model(box.center), args.repeats)
        row["ibp"] = median_time(lambda: ibp(model, box, C), args.repeats)
        row["crown_ibp"] = median_time(lambda: crown(model, box, C, intermediate="ibp"), args.repeats)
        if heavy:
            reps = 1 if name.startswith(("cnn7", "resnet")) else args.repeats
            row["crown"], row["crown_cpu"], out = timed(lambda: crown(model, box, C), reps)
            row["crown_rss_mb"] = peak_rss_mb()
            if args.lirpa_python and name.startswith("cnn7") and args.device == "cpu":
                head_to_head(args.lirpa_python, model, shape, box, C, out.lower, row)
            if args.alpha_iters >= 0:
                row["alpha"] = median_time(lambda: alpha_crown(model, box, C, iterations=args.alpha_iters), reps)
    return row


def head_to_head(python: str, model: nn.Module, shape, box: Box, C: torch.Tensor, lower: torch.Tensor,
                 row: Dict[str, float]) -> None:
    """Run auto_LiRPA CROWN on the same problem and print times, speed ratio and bound difference."""
    print(f"   [{os.getloadavg()}] auto_LiRPA CROWN on the same problem ...", flush=True)
    start, cpu = time.perf_counter(), time.process_time()
    res = lirpa_crown(python, model, [shape[0], shape[1], 64, 512], box, C, torch.get_num_threads())
    if res is None:
        return
    ours_wall, ours_cpu = row["crown"], row["crown_cpu"]
    diff = (res["lower"] - lower).abs()
    print(f"   auto_LiRPA CROWN wall {min(res['wall']):.1f} s cpu {min(res['cpu']):.1f} s peak "
          f"{res['peak_rss_mb']:.0f} MB | torchcert wall {ours_wall:.1f} s cpu {ours_cpu:.1f} s | "
          f"speed-up wall {min(res['wall']) / ours_wall:.2f}x cpu {min(res['cpu']) / ours_cpu:.2f}x | "
          f"max |lb diff| {diff.max().item():.3g} (rel {(diff / res['lower'].abs()).max().item():.2g})"
          f" [{os.getloadavg()}]", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="batches 1 and 32; no CNN7 CROWN/alpha-CROWN")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32, 128])
    parser.add_argument("--crown-batches", type=int, nargs="+", default=[1])
    parser.add_argument("--models", nargs="+", default=["small", "cnn7-mnist", "cnn7-cifar", "resnet-cifar", "resnet-graph"],
                        help="resnet-graph: the same ResNet as a BoundGraph (traced once, as training and "
                             "verification use it); resnet-cifar: the plain module, traced at every call")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--alpha-iters", type=int, default=20, help="alpha-CROWN iterations (-1: skip it)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (CUDA times wait for the kernels)")
    parser.add_argument("--cifar-eps", type=float, default=2 / 255, help="pixel eps of CNN7 CIFAR (default 2/255)")
    parser.add_argument("--lirpa-python", default=None,
                        help="Python with auto_LiRPA installed: also time its CROWN on the same CNN7 problems")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.batches = [b for b in args.batches if b <= 32]
    torch.manual_seed(0)
    specs = {"small": (small_cnn(), (1, 28, 28), 0.1), "cnn7-mnist": (cnn_7layer_bn2(1, 28), (1, 28, 28), 0.1),
             "cnn7-cifar": (cnn_7layer_bn2(3, 32), (3, 32, 32), args.cifar_eps),
             "resnet-cifar": (_resnet_small(), (3, 32, 32), args.cifar_eps)}
    specs["resnet-graph"] = (BoundGraph(specs["resnet-cifar"][0]), (3, 32, 32), args.cifar_eps)
    specs = {key: (model.to(args.device), shape, eps) for key, (model, shape, eps) in specs.items()}
    print(f"device {args.device}, threads {torch.get_num_threads()}, load average {os.getloadavg()}")
    cols = ["forward", "ibp", "crown_ibp", "crown", "alpha"]
    print(f"{'model':<12} {'batch':>5} " + " ".join(f"{c + ' s':>11}" for c in cols) + f" {'ibp/fwd':>8}")
    for name in args.models:
        model, shape, eps = specs[name]
        for batch in args.batches:
            row = run_case(name, model, shape, eps, batch, args)
            cells = " ".join(f"{row[c]:>11.4f}" if c in row else f"{'-':>11}" for c in cols)
            extra = (f"  crown cpu {row['crown_cpu']:.2f} s, peak RSS {row['crown_rss_mb']:.0f} MB"
                     if "crown_cpu" in row else "")
            print(f"{name:<12} {batch:>5} {cells} {row['ibp'] / row['forward']:>8.2f}{extra}", flush=True)


if __name__ == "__main__":
    main()
