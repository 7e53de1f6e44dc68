"""Series to plot, computed from epoch records (pure: no matplotlib), so that the plots draw exactly these and
tests can compare them with ``metrics.jsonl``.

A series is ``(epochs, values)``; an epoch whose record lacks the value (test metrics exist only at test epochs)
is left out, so test curves are drawn through their test epochs only.
"""
from __future__ import annotations

from typing import Any, Dict, List, Sequence, Tuple

Series = Tuple[List[int], List[float]]

#: metric key -> label, for accuracies and for losses (keys of ``train.loop.summarise``)
ACCURACIES = (("nat_acc", "standard"), ("adv_acc", "PGD"), ("ver_acc", "IBP-verified"))
LOSSES = (("loss", "total (training objective)"), ("nat_loss", "standard CE"), ("adv_loss", "PGD CE"),
          ("ver_loss", "IBP-verified CE"))
SPLITS = ("train", "test")


def metric_series(records: Sequence[Dict[str, Any]], split: str, key: str) -> Series:
    """``record[split][key]`` against ``record["epoch"]`` over the records that have it."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    pairs = [(int(r["epoch"]), float(r[split][key])) for r in records
             if isinstance(r.get(split), dict) and r[split].get(key) is not None]
    return [e for e, _ in pairs], [v for _, v in pairs]


def top_level_series(records: Sequence[Dict[str, Any]], key: str) -> Series:
    """``record[key]`` (``train_eps``, ``lr``, ``epoch_seconds``, ``time``) against the epoch."""
    pairs = [(int(r["epoch"]), float(r[key])) for r in records if r.get(key) is not None]
    return [e for e, _ in pairs], [v for _, v in pairs]


def labelled_series(records: Sequence[Dict[str, Any]], keys: Sequence[Tuple[str, str]]) -> Dict[str, Series]:
    """``{"train standard": series, "test standard": ..., ...}`` for every (key, label) of ``keys`` with data;
    percentages are not applied here (values are fractions as in ``metrics.jsonl``)."""
    out: Dict[str, Series] = {}
    for split in SPLITS:
        for key, label in keys:
            series = metric_series(records, split, key)
            if series[0]:
                out[f"{split} {label}"] = series
    return out
