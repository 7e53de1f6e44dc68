"""Which stage of the verification cascade decided each sample (pure functions over verify records).

The cascade (:mod:`torchcert.verify.cascade`) stops at the first stage that decides: a clean misclassification,
a PGD counterexample, a bound that verifies (IBP, CROWN, α-CROWN), or branch and bound (verified, falsified, or
timed out). ``unknown`` is a sample the chosen stages left undecided (no BaB, or BaB refused the network);
``other`` counts a record whose status or method this report does not know (an error, a newer torchcert).
"""
from __future__ import annotations

from typing import Any, Dict, List, Sequence, Tuple

#: category -> kind (falsified | verified | undecided), in cascade order
CATEGORIES: Tuple[Tuple[str, str], ...] = (
    ("clean", "falsified"), ("PGD", "falsified"), ("IBP", "verified"), ("CROWN", "verified"),
    ("α-CROWN", "verified"), ("BaB verified", "verified"), ("BaB falsified", "falsified"),
    ("timeout", "undecided"), ("unknown", "undecided"), ("other", "undecided"))
_BY_METHOD = {("falsified", "clean"): "clean", ("falsified", "pgd"): "PGD", ("verified", "ibp"): "IBP",
              ("verified", "crown"): "CROWN", ("verified", "alpha"): "α-CROWN", ("verified", "bab"): "BaB verified",
              ("falsified", "bab"): "BaB falsified"}


def category(record: Dict[str, Any]) -> str:
    """The category of one record (see :data:`CATEGORIES`)."""
    status = record.get("status")
    if status in ("timeout", "unknown"):
        return status
    return _BY_METHOD.get((status, record.get("method")), "other")


def decided_by(records: Sequence[Dict[str, Any]]) -> Dict[str, int]:
    """``{category: number of samples}`` for every category of :data:`CATEGORIES`, in cascade order."""
    counts = {name: 0 for name, _ in CATEGORIES}
    for record in records:
        counts[category(record)] += 1
    return counts


def shares(counts: Dict[str, int]) -> Dict[str, float]:
    """Each count as a fraction of all samples (zeros when there are none)."""
    total = sum(counts.values())
    return {k: (v / total if total else 0.0) for k, v in counts.items()}


def seconds_by_category(records: Sequence[Dict[str, Any]]) -> Dict[str, Tuple[List[int], List[float]]]:
    """``{category: (sample indices, seconds)}`` for the categories that occur (time per sample, by outcome)."""
    out: Dict[str, Tuple[List[int], List[float]]] = {}
    for record in records:
        idx, seconds = out.setdefault(category(record), ([], []))
        idx.append(int(record["idx"]))
        seconds.append(float(record["seconds"]))
    return out
