"""Per-sample verification records as JSON lines (flushed after each sample, so runs resume), and summaries.

Record keys: ``idx``, ``label``, ``clean_ok``, ``pgd_ok``, ``ibp_ok``, ``crown_ok``, ``alpha_ok``, ``verified``,
``status``, ``method``, ``seconds``, ``lower_bound``, ``bounds`` (min-margin bound per stage), ``domains``.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Union

from .cascade import VerifyResult

PathLike = Union[str, Path]
COLUMNS = (("natural", "clean_ok"), ("pgd", "pgd_ok"), ("ibp", "ibp_ok"), ("crown", "crown_ok"),
           ("alpha-crown", "alpha_ok"), ("verified", "verified"))


def _finite(value: float) -> Optional[float]:
    """JSON has no infinities: store them as None."""
    return None if value is None or not math.isfinite(value) else float(value)


def record_of(idx: int, label: int, result: VerifyResult) -> Dict[str, Any]:
    """The JSON record of one sample."""
    return {
        "idx": int(idx), "label": int(label), "clean_ok": result.clean_ok, "pgd_ok": result.pgd_ok,
        "ibp_ok": result.ibp_ok, "crown_ok": result.crown_ok, "alpha_ok": result.alpha_ok,
        "verified": result.verified, "status": result.status, "method": result.method,
        "seconds": round(result.seconds, 4), "lower_bound": _finite(result.lower_bound),
        "bounds": {k: _finite(v) for k, v in result.bounds.items()}, "domains": result.domains,
    }


class ResultStore:
    """Append-only JSONL file of records keyed by ``idx``; a torn last line (killed run) is ignored."""

    def __init__(self, path: PathLike, resume: bool = True) -> None:
        self.path = Path(path)
        self.records: Dict[int, Dict[str, Any]] = {}
        if resume and self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                self.records[int(record["idx"])] = record
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._rewrite()

    def _rewrite(self) -> None:
        """Start the file afresh with the valid records (drops a torn line, or everything with resume off)."""
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in self.records.values()))
        os.replace(tmp, self.path)

    def __contains__(self, idx: int) -> bool:
        return int(idx) in self.records

    def add(self, record: Dict[str, Any]) -> None:
        """Append one record and flush it to disk before returning."""
        self.records[int(record["idx"])] = record
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def select(self, indices: Iterable[int]) -> List[Dict[str, Any]]:
        return [self.records[i] for i in indices if i in self.records]


def summarise(records: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Accuracies (fractions) of each column, timeouts, unknowns and mean seconds over ``records``."""
    n = len(records)
    out: Dict[str, Any] = {"samples": n}
    for name, key in COLUMNS:
        out[name] = sum(bool(r.get(key)) for r in records) / n if n else 0.0
    out["timeouts"] = sum(r["status"] == "timeout" for r in records)
    out["unknown"] = sum(r["status"] == "unknown" for r in records)
    out["mean_seconds"] = sum(r["seconds"] for r in records) / n if n else 0.0
    return out


def format_table(summary: Dict[str, Any], methods: Iterable[str] = ("ibp", "crown", "alpha", "bab")) -> str:
    """A two-line text table of a summary (percentages), with the columns of the methods that ran."""
    wanted = set(methods) | {"natural", "pgd", "verified"}
    alias = {"alpha-crown": "alpha"}
    cols = [name for name, _ in COLUMNS if alias.get(name, name) in wanted]
    head = ["samples"] + cols + ["timeouts", "mean s"]
    vals = [str(summary["samples"])] + [f"{100 * summary[c]:.2f}" for c in cols] + \
           [str(summary["timeouts"]), f"{summary['mean_seconds']:.3f}"]
    widths = [max(len(h), len(v)) for h, v in zip(head, vals)]
    return "\n".join(" | ".join(x.rjust(w) for x, w in zip(row, widths)) for row in (head, vals))
