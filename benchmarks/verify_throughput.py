"""Throughput of the batched verification cascade and of sharded runs (``python benchmarks/verify.py --throughput``).

For each network (untrained, seeded): ``torchcert.verify`` with methods ibp,crown on the first N MNIST test images,
once with ``batch_size=1`` (the per-sample cascade) and once batched; the verdicts of the two runs are compared
(they must agree) and samples per second printed with the ratio. Then the small CNN's batched run as two torchrun
processes (gloo; one thread each) against one process with one thread, wall time including start-up.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Tuple

import torch

NETWORKS = (("small CNN", "cnn_small"), ("CNN7", "cnn_7layer_bn2"))
VERDICT_KEYS = ("status", "method", "clean_ok", "pgd_ok", "ibp_ok", "crown_ok")


def _checkpoint(name: str, folder: Path) -> Path:
    from torchcert.models import build_model, save_checkpoint
    from torchcert.train.init import initialise

    torch.manual_seed(0)
    model = build_model(name, 1, 28, 10)
    initialise(model, "ibp")
    path = folder / f"{name}.pt"
    save_checkpoint(path, model.state_dict(), epoch=0)
    return path


def _run(checkpoint: Path, model: str, data_dir: str, samples: int, batch: int, eps: float, out: Path,
         device: str = "cpu") -> Tuple[float, Dict[int, dict], dict]:
    from torchcert import verify

    began = time.perf_counter()
    summary = verify(checkpoint, dataset="mnist", model=model, eps=eps, methods="ibp,crown", end=samples,
                     data_dir=data_dir, out=out, batch_size=batch, resume=False, progress=False, device=device)
    wall = time.perf_counter() - began
    records = {r["idx"]: r for r in map(json.loads, out.read_text().splitlines()[1:])}
    return wall, records, summary


def _agree(a: Dict[int, dict], b: Dict[int, dict]) -> int:
    """Samples whose verdict fields differ between two runs."""
    return sum(any(a[i][k] != b[i][k] for k in VERDICT_KEYS) for i in a)


def _stages(summary: dict) -> str:
    return (f"natural {100 * summary['natural']:.1f}%, pgd {100 * summary['pgd']:.1f}%, "
            f"verified {100 * summary['verified']:.1f}%")


def batched_rows(folder: Path, data_dir: str, samples: Dict[str, int], batch: int, eps: float,
                 device: str = "cpu") -> List[str]:
    rows = []
    for label, name in NETWORKS:
        n = samples[name]
        if n < 1:  # left out
            continue
        ckpt = _checkpoint(name, folder)
        _run(ckpt, name, data_dir, min(n, 8), batch, eps, folder / f"{name}_warm.jsonl", device)  # imports, caches
        one, rec_one, _ = _run(ckpt, name, data_dir, n, 1, eps, folder / f"{name}_1.jsonl", device)
        many, rec_many, summary = _run(ckpt, name, data_dir, n, batch, eps, folder / f"{name}_b.jsonl", device)
        rows.append(f"{label:<10} | {n:>7} | {n / one:>14.1f} | {n / many:>14.1f} | {one / many:>6.2f} | "
                    f"{_agree(rec_one, rec_many):>9} | {_stages(summary)}")
        print(rows[-1], flush=True)
    return rows


def sharded_row(folder: Path, data_dir: str, n: int, batch: int, eps: float) -> str:
    ckpt = _checkpoint("cnn_small", folder)
    base = ["verify", "--checkpoint", str(ckpt), "--dataset", "mnist", "--model", "cnn_small", "--eps", str(eps),
            "--methods", "ibp,crown", "--end", str(n), "--data-dir", data_dir, "--batch-size", str(batch),
            "--no-progress", "--no-resume", "--threads", "1"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    walls = {}
    for procs in (1, 2):
        out = folder / f"shard{procs}.jsonl"
        launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(procs)]
        began = time.perf_counter()
        subprocess.run(launch + ["-m", "torchcert", *base, "--out", str(out)], check=True, env=env,
                       capture_output=True)
        walls[procs] = time.perf_counter() - began
    a, b = ({r["idx"]: r for r in map(json.loads, (folder / f"shard{p}.jsonl").read_text().splitlines()[1:])}
            for p in (1, 2))
    return (f"small CNN, {n} samples, batch {batch}: 1 process {n / walls[1]:.1f} samples/s, 2 processes "
            f"{n / walls[2]:.1f} samples/s (x{walls[1] / walls[2]:.2f}; wall incl. start-up {walls[1]:.1f} s vs "
            f"{walls[2]:.1f} s); verdicts differing: {_agree(a, b)}")


def throughput(data_dir: str, samples: int, cnn7_samples: int, batch: int, eps: float, threads: int,
               device: str = "cpu") -> None:
    """Batched vs per-sample rows; then (on the CPU only) 2 torchrun shards vs 1 process."""
    torch.set_num_threads(threads)
    print(f"MNIST test images, eps {eps}, methods ibp,crown (+ clean check, PGD-40), untrained seeded networks, "
          f"{threads} thread(s), batch {batch}, device {device}")
    header = (f"{'network':<10} | {'samples':>7} | {'per-sample /s':>14} | {'batched /s':>14} | {'ratio':>6} | "
              f"{'verdicts≠':>9} | stages (batched run)")
    print(header)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rows = batched_rows(folder, data_dir, {"cnn_small": samples, "cnn_7layer_bn2": cnn7_samples}, batch, eps,
                            device)
        shard = sharded_row(folder, data_dir, samples, batch, eps) if device == "cpu" else ""
    print()
    print(header)
    print("-" * len(header))
    print("\n".join(rows))
    print(shard)
