"""Run ``torchcert vnncomp`` on the instances of ``../shared/vnncomp/labels-dev.csv`` and compare with the reference.

    python benchmarks/vnncomp_labels.py --timeout 30 --per-benchmark 20 --out /tmp/vnncomp_runs
    python benchmarks/vnncomp_labels.py --out /tmp/vnncomp_runs --report      # the table only

Per benchmark: a subset of its labelled instances (evenly spread over the file, ``--per-benchmark`` of them) is
written as an instances file with the given timeout, run with ``torchcert vnncomp`` (resumable), and the table
prints solved / total beside α,β-CROWN's solved count on the same instances, and every wrong verdict (``unsat``
where the consensus is ``sat`` or the reverse).
"""
from __future__ import annotations

import argparse
import csv
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "vnncomp"


def _labels() -> dict:
    by_bench = defaultdict(list)
    with (SHARED / "labels-dev.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            by_bench[(row["year"], row["benchmark"])].append(row)
    return by_bench


def _instance_rows(folder: Path) -> dict:
    """(onnx basename, vnnlib basename) -> (onnx path, vnnlib path) as instances.csv names them."""
    out = {}
    with (folder / "instances.csv").open(newline="") as f:
        for r in csv.reader(f):
            if len(r) >= 3:
                out[(Path(r[0]).name, Path(r[1]).name)] = (r[0].strip(), r[1].strip())
    return out


def _subset(rows: list, count: int) -> list:
    if count <= 0 or count >= len(rows):
        return rows
    step = len(rows) / count
    return [rows[int(i * step)] for i in range(count)]


def run(args: argparse.Namespace) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for (year, bench), rows in sorted(_labels().items()):
        if args.benchmarks and bench not in args.benchmarks:
            continue
        folder = SHARED / year / bench
        paths = _instance_rows(folder)
        listing = out / f"{year}_{bench}_instances.csv"
        with listing.open("w", newline="") as f:
            for row in _subset(rows, args.per_benchmark):
                onnx_path, spec = paths[(row["onnx"], row["vnnlib"])]
                f.write(f"{onnx_path},{spec},{args.timeout}\n")
        cmd = [sys.executable, "-m", "torchcert", "vnncomp", str(folder), "--threads", str(args.threads),
               "--instances", str(listing), "--out", str(out / f"{year}_{bench}_results.csv")]
        cmd += ["--real-arithmetic"] if args.real_arithmetic else []
        print(" ".join(cmd), flush=True)
        subprocess.run(cmd, check=False)


def report(args: argparse.Namespace) -> int:
    out, wrong_total = Path(args.out), 0
    print("| benchmark | instances run | torchcert solved (sat/unsat) | alpha-beta-CROWN solved | consensus sat/unsat/unknown "
          "| abcrown solved within --timeout | only abcrown / only torchcert | wrong | errors |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    lost = []
    for (year, bench), rows in sorted(_labels().items()):
        results = out / f"{year}_{bench}_results.csv"
        if not results.is_file():
            continue
        label = {(r["onnx"], r["vnnlib"]): r for r in rows}
        with results.open(newline="") as f:
            ours = list(csv.DictReader(f))
        solved = sat = unsat = ab = wrong = errors = only_ab = only_us = ab_fast = 0
        cons = defaultdict(int)
        for r in ours:
            ref = label[(Path(r["onnx"]).name, Path(r["vnnlib"]).name)]
            cons[ref["consensus"]] += 1
            sat += r["result"] == "sat"
            unsat += r["result"] == "unsat"
            errors += r["result"] == "error"
            ab_solved = ref["abcrown_result"].lower() in ("sat", "unsat")
            ab += ab_solved
            ab_fast += ab_solved and float(ref["abcrown_runtime_s"]) <= args.timeout
            if ab_solved and r["result"] not in ("sat", "unsat"):
                only_ab += 1
                lost.append(f"{bench} {r['onnx']} {r['vnnlib']}: ours {r['result']} ({r['method']}, {r['time']} s); "
                            f"abcrown {ref['abcrown_result']} in {float(ref['abcrown_runtime_s']):.1f} s")
            only_us += r["result"] in ("sat", "unsat") and not ab_solved
            if {r["result"], ref["consensus"]} == {"sat", "unsat"}:
                wrong += 1
                print(f"WRONG: {r['onnx']} {r['vnnlib']}: ours {r['result']}, consensus {ref['consensus']}")
        solved = sat + unsat
        wrong_total += wrong
        print(f"| {year}/{bench} | {len(ours)} | {solved} ({sat}/{unsat}) | {ab} | {cons['sat']}/{cons['unsat']}/"
              f"{cons['unknown']} | {ab_fast} | {only_ab} / {only_us} | {wrong} | {errors} |")
    if args.losses:
        print("\nsolved by alpha-beta-CROWN, not by torchcert:")
        print("\n".join(lost))
    return 1 if wrong_total else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="/tmp/vnncomp_runs", help="folder of instance lists and result CSVs")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per instance")
    parser.add_argument("--per-benchmark", type=int, default=20, help="instances per benchmark (0: all)")
    parser.add_argument("--benchmarks", nargs="*", help="benchmark names (default: every labelled one)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads of the runs")
    parser.add_argument("--report", action="store_true", help="only print the table of the results so far")
    parser.add_argument("--real-arithmetic", action="store_true", help="pass --real-arithmetic to torchcert vnncomp")
    parser.add_argument("--losses", action="store_true", help="list the instances only alpha-beta-CROWN solved")
    args = parser.parse_args()
    if not args.report:
        run(args)
    return report(args)


if __name__ == "__main__":
    sys.exit(main())
