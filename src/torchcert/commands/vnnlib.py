"""``torchcert vnnlib`` (one ONNX network, one VNN-LIB property) and ``torchcert vnncomp`` (a benchmark folder's
``instances.csv``, resumable, one CSV row per instance)."""
from __future__ import annotations

import argparse
import csv
import logging
import time
from pathlib import Path
from typing import Dict, Optional, Tuple

LOG = logging.getLogger(__name__)
CSV_FIELDS = ("benchmark", "onnx", "vnnlib", "result", "time", "method")
REAL_HELP = ("unsat about the network in real arithmetic, as VNN-COMP tools take it (the rounding of its float32 "
             "execution is not covered; default: it is); sat witnesses are confirmed in float32 either way")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    one = subparsers.add_parser(
        "vnnlib", help="verify one ONNX network against one VNN-LIB property (VNN-COMP result file)",
        description="Attack, IBP, CROWN, alpha-CROWN, branch and bound on one instance. Prints the verdict and the "
                    "time; --out writes the VNN-COMP result file (sat with its witness, unsat, timeout, unknown, "
                    "error). Files may be gzipped and named with or without .gz.")
    one.add_argument("network", metavar="NETWORK.onnx")
    one.add_argument("spec", metavar="SPEC.vnnlib")
    one.add_argument("--timeout", type=float, default=60.0, help="seconds for the instance (default 60)")
    one.add_argument("--out", metavar="RESULT", help="VNN-COMP result file to write")
    one.add_argument("--seed", type=int, default=0, help="seed of the attacks' random starts")
    one.add_argument("--real-arithmetic", action="store_true", help=REAL_HELP)
    one.set_defaults(run=run_vnnlib)
    many = subparsers.add_parser(
        "vnncomp", help="run a VNN-COMP benchmark folder's instances.csv (resumable CSV of results)",
        description="Each row of BENCHMARK_DIR/instances.csv (onnx,vnnlib,timeout) through `torchcert vnnlib`; one "
                    "CSV row per instance (benchmark,onnx,vnnlib,result,time,method) appended to --out; instances "
                    "already in --out are skipped, so an interrupted run continues.")
    many.add_argument("benchmark_dir", metavar="BENCHMARK_DIR")
    many.add_argument("--timeout-scale", type=float, default=1.0,
                      help="multiply each instance's timeout by this (e.g. 0.25 on a CPU)")
    many.add_argument("--out", default="results.csv", metavar="CSV", help="results CSV (default results.csv)")
    many.add_argument("--instances", metavar="CSV",
                      help="another instances file (paths relative to BENCHMARK_DIR; default its instances.csv)")
    many.add_argument("--seed", type=int, default=0, help="seed of the attacks' random starts")
    many.add_argument("--real-arithmetic", action="store_true", help=REAL_HELP)
    many.set_defaults(run=run_vnncomp)


def _load(network: str):
    """``(net, onnxruntime forward or None)``."""
    from torchcert.io.onnx import load_onnx, onnxruntime_forward

    net = load_onnx(network)
    return net, onnxruntime_forward(network, net)


def solve(network: str, spec: str, timeout: float, seed: int = 0, cache: Optional[Dict[str, Tuple]] = None,
          real_arithmetic: bool = False):
    """The :class:`~torchcert.verify.instance.InstanceResult` of one instance; ``result == "error"`` (with the
    reason as ``method``) when the network or property is out of scope or missing."""
    from torchcert.io.vnnlib import load_vnnlib
    from torchcert.verify.instance import InstanceResult, verify_instance

    start = time.perf_counter()
    try:
        if cache is not None and network in cache:
            net, check = cache[network]
        else:
            net, check = _load(network)
            if cache is not None:
                cache[network] = (net, check)
        prop = load_vnnlib(spec)
        left = timeout - (time.perf_counter() - start)
        result = verify_instance(net, prop, left, seed=seed, onnx_check=check, real_arithmetic=real_arithmetic)
    except (ValueError, FileNotFoundError) as err:  # out of scope, or a file the benchmark folder lacks
        return InstanceResult("error", time.perf_counter() - start, str(err))
    result.seconds = time.perf_counter() - start
    return result


def run_vnnlib(args: argparse.Namespace) -> int:
    from torchcert.io.vnnlib import result_text

    result = solve(args.network, args.spec, args.timeout, args.seed, real_arithmetic=args.real_arithmetic)
    if args.out:
        Path(args.out).write_text(result_text(result.result, result.x, result.y))
    if result.result == "error":
        raise ValueError(result.method)
    print(f"{result.result} ({result.method}) in {result.seconds:.2f} s")
    return 0


def _done(out: Path) -> Dict[Tuple[str, str], dict]:
    if not out.is_file():
        return {}
    with out.open(newline="") as f:
        return {(row["onnx"], row["vnnlib"]): row for row in csv.DictReader(f)}


def _instances(path: Path):
    with path.open(newline="") as f:
        rows = [r for r in csv.reader(f) if r and not r[0].startswith("#")]
    bad = [r for r in rows if len(r) < 3]
    if bad:
        raise ValueError(f"{path}: rows must be onnx,vnnlib,timeout; got {bad[0]}")
    return [(r[0].strip(), r[1].strip(), float(r[2])) for r in rows]


def run_vnncomp(args: argparse.Namespace) -> int:
    root = Path(args.benchmark_dir)
    listing = Path(args.instances) if args.instances else root / "instances.csv"
    if not listing.is_file():
        raise FileNotFoundError(f"{listing}: no instances file (a VNN-COMP benchmark folder has instances.csv)")
    if args.timeout_scale <= 0:
        raise ValueError(f"--timeout-scale must be > 0, got {args.timeout_scale}")
    rows, out = _instances(listing), Path(args.out)
    done = _done(out)
    counts: Dict[str, int] = {}
    for row in done.values():
        counts[row["result"]] = counts.get(row["result"], 0) + 1
    cache: Dict[str, Tuple] = {}
    new = not out.is_file()
    with out.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        if new:
            writer.writeheader()
        for i, (onnx_path, spec, timeout) in enumerate(rows):
            if (onnx_path, spec) in done:
                continue
            result = solve(str(root / onnx_path), str(root / spec), timeout * args.timeout_scale, args.seed, cache,
                           args.real_arithmetic)
            writer.writerow({"benchmark": root.name, "onnx": onnx_path, "vnnlib": spec, "result": result.result,
                             "time": f"{result.seconds:.3f}", "method": result.method[:200]})
            f.flush()
            counts[result.result] = counts.get(result.result, 0) + 1
            LOG.info("[%d/%d] %s %s: %s (%s) %.1f s", i + 1, len(rows), onnx_path, spec, result.result, result.method,
                     result.seconds)
    print(f"{root.name}: {len(rows)} instances: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return 0
