"""Cost of one training step of each certified-training method relative to a natural step.

For CNN7 (the original ``cnn``: cnn_7layer_bn2, width 64, linear 512) on MNIST- and CIFAR-shaped batches and for
the small CNN, prints the median wall time of a natural step (forward, cross-entropy, backward, clipping, Adam
step) and of a CC-IBP, MTL-IBP, Exp-IBP and SABR step (one-step attack of size 10, IBP bounds, ε at its target,
regulariser off, as after the ramp), with their ratios to the natural step. Target: CC-IBP ≤ 4.8×.
The bounds read a :class:`~torchcert.bounds.BoundGraph` built once, as ``torchcert train`` does; the last column
is the CC-IBP step on the plain module (traced and checked at every step, as before BoundGraph) for comparison.

    python benchmarks/train_step.py            # batch 128, median of 3 timed steps (minutes on a GPU; a CPU
                                               # needs about 10 minutes for the two CNN7 rows)
    python benchmarks/train_step.py --quick    # batch 16, one timed step: about a minute on a 2-core CPU
    python benchmarks/train_step.py --threads 1 --clock process   # steadier ratios on a busy shared CPU
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable, Dict, List, Tuple

import torch
import torch.nn.functional as F

from torchcert.bounds import BoundGraph
from torchcert.losses import get_loss
from torchcert.models import build_model
from torchcert.train.loop import BatchEps, Meter, StepSettings, train_step

METHODS = ("cc-ibp", "mtl-ibp", "exp-ibp", "sabr")
MODELS: Tuple[Tuple[str, str, int, int, float], ...] = (
    # label, model name, in_ch, in_dim, eps (pixel units)
    ("CNN7 MNIST", "cnn", 1, 28, 0.1),
    ("CNN7 CIFAR", "cnn", 3, 32, 8 / 255),
    ("small CNN MNIST", "cnn_small", 1, 28, 0.1),
    ("ResNet-small CIFAR", "resnet_small", 3, 32, 8 / 255),
)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def median_time(step: Callable[[], None], repeats: int, device: torch.device, clock: Callable[[], float]) -> float:
    """Median seconds of ``step`` over ``repeats`` timed calls, after one untimed warm-up call."""
    step()
    times: List[float] = []
    for _ in range(repeats):
        _sync(device)
        start = clock()
        step()
        _sync(device)
        times.append(clock() - start)
    return statistics.median(times)


def natural_step(model, optimizer, x, labels) -> None:
    loss = F.cross_entropy(model(x), labels)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=10.0)
    optimizer.step()
    optimizer.zero_grad()


def settings_for(method: str, in_ch: int, device: torch.device) -> StepSettings:
    return StepSettings(loss=get_loss(method), coeff=0.5, l1_coeff=1e-6, bounding="ibp", num_class=10,
                        std=torch.ones(in_ch, device=device), data_min=torch.zeros(1, in_ch, 1, 1, device=device),
                        data_max=torch.ones(1, in_ch, 1, 1, device=device), attack_steps=1, attack_step_size=10.0)


def bench_model(name: str, in_ch: int, in_dim: int, eps: float, batch: int, repeats: int,
                device: torch.device, clock: Callable[[], float]) -> Dict[str, float]:
    torch.manual_seed(0)
    plain = build_model(name, in_ch, in_dim).to(device).train()
    model = BoundGraph(plain)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-4)
    x = torch.rand(batch, in_ch, in_dim, in_dim, device=device)
    labels = torch.randint(0, 10, (batch,), device=device)
    generator = torch.Generator(device).manual_seed(0)
    times = {"natural": median_time(lambda: natural_step(model, optimizer, x, labels), repeats, device, clock)}
    for method in METHODS:
        settings, b = settings_for(method, in_ch, device), BatchEps(eps, eps, eps, eps)
        times[method] = median_time(
            lambda: train_step(model, optimizer, x, labels, b, settings, Meter(), generator), repeats, device, clock)
    settings = settings_for("cc-ibp", in_ch, device)
    times["plain"] = median_time(
        lambda: train_step(plain, optimizer, x, labels, b, settings, Meter(), generator), repeats, device, clock)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="batch 16 and one timed step")
    parser.add_argument("--batch", type=int, help="batch size (default 128, 16 with --quick)")
    parser.add_argument("--repeats", type=int, help="timed repeats (default 3, 1 with --quick)")
    parser.add_argument("--only", default="", help="benchmark only the rows whose label contains this text")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: PyTorch's)")
    parser.add_argument("--clock", choices=("wall", "process"), default="wall",
                        help="wall time, or CPU time of this process (steadier on a busy shared CPU with --threads 1)")
    args = parser.parse_args()
    batch = args.batch or (16 if args.quick else 128)
    repeats = args.repeats or (1 if args.quick else 3)
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    where = torch.cuda.get_device_name() if device.type == "cuda" else f"{torch.get_num_threads()} threads"
    print(f"device {device} ({where}), batch {batch}, median {args.clock} time of {repeats} steps, one-step attack")
    header = f"{'model':<18}{'natural (ms)':>13}" + "".join(f"{m:>10}" for m in METHODS) + f"{'cc-ibp plain':>14}"
    print(header)
    print("-" * len(header))
    for label, name, in_ch, in_dim, eps in (m for m in MODELS if args.only in m[0]):
        times = bench_model(name, in_ch, in_dim, eps, batch, repeats, device, clock)
        ratios = "".join(f"{times[m] / times['natural']:>9.2f}x" for m in METHODS)
        ratios += f"{times['plain'] / times['natural']:>13.2f}x"
        print(f"{label:<18}{1000 * times['natural']:>13.1f}{ratios}")
    print("ratio = method step time / natural step time (target: CC-IBP <= 4.8x); "
          "plain = CC-IBP with the module traced at every step")


if __name__ == "__main__":
    main()
