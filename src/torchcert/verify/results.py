"""Per-sample verification records as JSON lines (flushed after each sample, so runs resume), and summaries.

The first line of a results file is ``{"settings": {...}}``: the checkpoint's hash and every setting that can change
a verdict; records are reused only under the same settings.

Record keys: ``idx``, ``label``, ``clean_ok``, ``pgd_ok``, ``ibp_ok``, ``crown_ok``, ``alpha_ok``, ``verified``,
``status``, ``method``, ``seconds``, ``lower_bound``, ``bounds`` (min-margin bound per stage), ``domains``, and
``error`` (the exception's type and message) on a sample whose status is ``error``: never verified, counted
apart from timeouts, and re-tried when the run is resumed.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

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
    } | ({"error": result.error} if result.status == "error" else {})


def read_jsonl(path: Path) -> Tuple[Optional[Dict[str, Any]], Dict[int, Dict[str, Any]]]:
    """``(settings header or None, {idx: record})`` of a results file; a torn line (killed run) is skipped and a
    later record of the same sample supersedes an earlier one."""
    header, records = None, {}
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "settings" in record and "idx" not in record:
            header = record["settings"]
        elif "idx" in record:
            records[int(record["idx"])] = record
    return header, records


def settings_differences(old: Dict[str, Any], new: Dict[str, Any]) -> Dict[str, Tuple[Any, Any]]:
    """``{key: (old, new)}`` of the settings that differ."""
    return {k: (old.get(k), new.get(k)) for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)}


class ResultStore:
    """JSONL results keyed by ``idx`` under a header line ``{"settings": {...}}`` that records everything that
    can change a verdict. Records are reused only under the same settings (``error`` records never: those
    samples are re-tried), except that a larger ``timeout`` re-tries just the samples that timed out (their
    header is updated; decided verdicts stand). Opening a store
    reads only; the file is first written when a record is added, so a run that fails before computing anything
    leaves it as it was."""

    def __init__(self, path: PathLike, settings: Dict[str, Any], resume: bool = True) -> None:
        self.path, self.settings = Path(path), dict(settings)
        self.records: Dict[int, Dict[str, Any]] = {}
        self.retried = 0
        self._on_disk: Dict[int, Dict[str, Any]] = {}
        self._fresh = True
        if self.path.exists():
            header, records = read_jsonl(self.path)
            if header is None and records:
                raise ValueError(f"{self.path} holds {len(records)} results without the settings they were computed "
                                 "with (an older torchcert); choose another --out or move that file away")
            if header is not None:
                self._check(header, records)
            self._on_disk = records
            self.records = {i: r for i, r in records.items() if r.get("status") != "error"} if resume else {}
            if resume and self.retried:
                self.records = {i: r for i, r in self.records.items() if r.get("status") != "timeout"}

    def _check(self, header: Dict[str, Any], records: Dict[int, Dict[str, Any]]) -> None:
        diff = settings_differences(header, self.settings)
        grown = set(diff) == {"timeout"} and float(self.settings["timeout"]) > float(header["timeout"])
        if grown:
            self.retried = sum(r.get("status") == "timeout" for r in records.values())
        elif diff:
            changes = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in diff.items())
            raise ValueError(f"{self.path} holds results computed with other settings ({changes}); pass another "
                             "--out, or leave --out out: the default file name is keyed on the settings")

    def __contains__(self, idx: int) -> bool:
        return int(idx) in self.records

    def forget(self, indices: Iterable[int]) -> None:
        """Recompute these samples (their old records stay on disk until new ones supersede them)."""
        for i in indices:
            self.records.pop(int(i), None)

    def _start_file(self) -> None:
        """Write the header and the records read at start (drops a torn line), atomically."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        lines = [json.dumps({"settings": self.settings})] + [json.dumps(r) for r in self._on_disk.values()]
        tmp.write_text("".join(line + "\n" for line in lines))
        os.replace(tmp, self.path)
        self._fresh = False

    def add(self, record: Dict[str, Any]) -> None:
        """Append one record and flush it to disk before returning."""
        self.add_many([record])

    def add_many(self, records: List[Dict[str, Any]]) -> None:
        """Append records (e.g. a batch's) and flush them to disk, with one ``fsync``, before returning."""
        if self._fresh:
            self._start_file()
        for record in records:
            self.records[int(record["idx"])] = record
        with self.path.open("a") as handle:
            handle.write("".join(json.dumps(record) + "\n" for record in records))
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
    out["errors"] = sum(r["status"] == "error" for r in records)
    out["mean_seconds"] = sum(r["seconds"] for r in records) / n if n else 0.0
    return out


def format_table(summary: Dict[str, Any], methods: Iterable[str] = ("ibp", "crown", "alpha", "bab")) -> str:
    """A two-line text table of a summary (percentages), with the columns of the methods that ran."""
    wanted = set(methods) | {"natural", "pgd", "verified"}
    alias = {"alpha-crown": "alpha"}
    cols = [name for name, _ in COLUMNS if alias.get(name, name) in wanted]
    errors = summary.get("errors", 0)
    head = ["samples"] + cols + ["timeouts"] + (["errors"] if errors else []) + ["mean s"]
    vals = [str(summary["samples"])] + [f"{100 * summary[c]:.2f}" for c in cols] + [str(summary["timeouts"])] + \
           ([str(errors)] if errors else []) + [f"{summary['mean_seconds']:.3f}"]
    widths = [max(len(h), len(v)) for h, v in zip(head, vals)]
    return "\n".join(" | ".join(x.rjust(w) for x, w in zip(row, widths)) for row in (head, vals))
