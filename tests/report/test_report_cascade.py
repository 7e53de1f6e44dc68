"""Cascade categories and the series of the plots, on hand-written records."""
from __future__ import annotations

import pytest

from torchcert.report.cascade import CATEGORIES, category, decided_by, seconds_by_category, shares
from torchcert.report.series import metric_series, top_level_series

RECORDS = [
    {"idx": 0, "status": "falsified", "method": "clean", "seconds": 0.001},
    {"idx": 1, "status": "falsified", "method": "pgd", "seconds": 0.01},
    {"idx": 2, "status": "verified", "method": "ibp", "seconds": 0.02},
    {"idx": 3, "status": "verified", "method": "ibp", "seconds": 0.03},
    {"idx": 4, "status": "verified", "method": "alpha", "seconds": 0.2},
    {"idx": 5, "status": "verified", "method": "bab", "seconds": 1.5},
    {"idx": 6, "status": "falsified", "method": "bab", "seconds": 0.7},
    {"idx": 7, "status": "timeout", "method": "bab", "seconds": 5.0},
    {"idx": 8, "status": "unknown", "method": "none", "seconds": 0.04},
    {"idx": 9, "status": "error", "method": "crown", "seconds": 0.05},
]


def test_each_record_counted_once_in_its_stage():
    counts = decided_by(RECORDS)
    assert list(counts) == [name for name, _ in CATEGORIES]
    assert counts == {"clean": 1, "PGD": 1, "IBP": 2, "CROWN": 0, "α-CROWN": 1, "BaB verified": 1,
                      "BaB falsified": 1, "timeout": 1, "unknown": 1, "other": 1}
    assert shares(counts)["IBP"] == pytest.approx(0.2) and shares(decided_by([]))["IBP"] == 0.0
    assert category({"status": "verified", "method": "crown"}) == "CROWN"


def test_seconds_grouped_by_category():
    grouped = seconds_by_category(RECORDS)
    assert grouped["IBP"] == ([2, 3], [0.02, 0.03]) and grouped["timeout"] == ([7], [5.0])
    assert "CROWN" not in grouped


def test_series_skip_epochs_without_the_value():
    records = [{"epoch": 1, "lr": 0.1, "train": {"nat_acc": 0.5}},
               {"epoch": 2, "lr": 0.1, "train": {"nat_acc": 0.6}, "test": {"nat_acc": 0.55}}]
    assert metric_series(records, "train", "nat_acc") == ([1, 2], [0.5, 0.6])
    assert metric_series(records, "test", "nat_acc") == ([2], [0.55])
    assert top_level_series(records, "lr") == ([1, 2], [0.1, 0.1])
    with pytest.raises(ValueError, match="valid: train, test"):
        metric_series(records, "valid", "nat_acc")
