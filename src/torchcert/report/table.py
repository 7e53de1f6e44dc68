"""The across-runs table, in the layout of Table 1 of the paper (standard, PGD and verified accuracy per model),
as Markdown and CSV.

Each run gives one row for the evaluation at the end of training (``summary.json``: standard, PGD and
IBP-verified accuracy on the test split; for a run in progress, the last test epoch of ``metrics.jsonl``) and one
row per verification results file (the cascade of ``torchcert verify`` on its samples, summarised with the same
function ``verify`` uses, :func:`torchcert.verify.results.summarise`). ``verified`` is the strongest verification
that row ran: IBP for training rows, the whole chosen cascade for verify rows.
"""
from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Dict, List, Optional, Sequence

from torchcert.verify.results import summarise

from .presets import preset_of
from .runs import RunFolder, VerifyFile, checkpoint_sha256, is_number

#: accuracy columns (fractions in rows, percentages in the tables)
ACCURACY_COLUMNS = ("standard", "pgd", "ibp", "crown", "alpha_crown", "verified")
HEADERS = {"run": "run", "preset": "preset", "dataset": "dataset", "method": "method", "eps": "ε",
           "evaluation": "evaluated by", "samples": "samples", "standard": "standard", "pgd": "PGD", "ibp": "IBP",
           "crown": "CROWN", "alpha_crown": "α-CROWN", "verified": "verified", "seconds_per_sample": "s/sample",
           "training_seconds": "training time", "status": "status"}


@dataclass(frozen=True)
class Row:
    """One table row; accuracies are fractions, None where the evaluation did not compute them."""

    run: str
    preset: str
    dataset: str
    method: str
    eps: Optional[float]
    evaluation: str
    samples: Optional[int]
    standard: Optional[float]
    pgd: Optional[float]
    ibp: Optional[float]
    crown: Optional[float]
    alpha_crown: Optional[float]
    verified: Optional[float]
    seconds_per_sample: Optional[float]
    training_seconds: Optional[float]
    status: str


def _run_facts(run: RunFolder, name: str) -> Dict[str, Any]:
    """The columns a run's rows share: names, method, training time and state."""
    cfg, summary, last = run.config, run.summary or {}, (run.metrics[-1] if run.metrics else {})
    method = cfg.get("method", {}).get("loss") or summary.get("method") or "?"
    if cfg.get("method", {}).get("bounding") == "crown-ibp":
        method += " (CROWN-IBP)"
    if run.summary is not None:
        status, seconds = "finished", summary.get("wall_seconds")
    else:
        status = f"unfinished (running or stopped): epoch {last.get('epoch', 0)} of {run.planned_epochs or '?'}"
        seconds = last.get("time")
    return {"run": name, "preset": preset_of(cfg), "method": method,
            "dataset": cfg.get("data", {}).get("dataset") or summary.get("dataset") or "?",
            "training_seconds": seconds, "status": status}


def training_row(run: RunFolder, name: str) -> Row:
    """The run's own evaluation: ``summary.json``, else the last epoch with test metrics (None values if none)."""
    facts = _run_facts(run, name)
    eps = run.config.get("eps", {}).get("value")
    if run.summary is not None:
        s = run.summary
        acc = (s.get("nat_acc"), s.get("pgd_acc"), s.get("ibp_verified_acc"))
        samples, eps = s.get("test_samples"), s.get("eps", eps)
        evaluation = f"training ({_split(run)})"
    else:
        tested = [r for r in run.metrics if isinstance(r.get("test"), dict)]
        test = tested[-1]["test"] if tested else {}
        acc = (test.get("nat_acc"), test.get("adv_acc"), test.get("ver_acc"))
        samples = None
        evaluation = f"training ({_split(run)}, epoch {tested[-1]['epoch']})" if tested else "training (no test yet)"
    return Row(**facts, eps=eps, evaluation=evaluation, samples=samples, standard=acc[0], pgd=acc[1], ibp=acc[2],
               crown=None, alpha_crown=None, verified=acc[2], seconds_per_sample=None)


def _split(run: RunFolder) -> str:
    """What the training evaluation ran on: the test split, or the held-out part with ``data.valid_share``."""
    return "held-out split" if run.config.get("data", {}).get("valid_share") is not None else "test split"


def verify_row(run: RunFolder, name: str, results: VerifyFile) -> Row:
    """A verification results file: the summary of its records (the numbers ``torchcert verify`` reports)."""
    facts = _run_facts(run, name)
    settings = results.settings or {}
    methods = settings.get("methods", [])
    evaluation = f"verify {','.join(methods) or '?'}"
    if "bab" in methods:
        evaluation += f", BaB {settings.get('timeout', 0):g} s"
    if results.summary is None:
        facts["status"] += "; verify unfinished"
    return Row(**facts, eps=settings.get("eps"), evaluation=evaluation, samples=len(results.records),
               seconds_per_sample=summarise(results.records)["mean_seconds"] if results.records else None,
               **_verify_accuracies(results.records, methods))


def _verify_accuracies(records: Sequence[Dict[str, Any]], methods: Sequence[str]) -> Dict[str, Optional[float]]:
    """The accuracy columns of verify records; None for a stage that did not run, all None without records."""
    s = summarise(list(records))
    ran = {"ibp": "ibp" in methods, "crown": "crown" in methods, "alpha_crown": "alpha" in methods}
    values = {"standard": s["natural"], "pgd": s["pgd"], "ibp": s["ibp"], "crown": s["crown"],
              "alpha_crown": s["alpha-crown"], "verified": s["verified"]}
    return {k: (v if records and ran.get(k, True) else None) for k, v in values.items()}


def table_rows(runs: Sequence[RunFolder], names: Sequence[str]) -> List[Row]:
    """Rows of every run (named by ``names``): its training row, then one per verification file; a file that
    verified another checkpoint than the run's current one (the run went on after ``verify``) says so."""
    rows: List[Row] = []
    for run, name in zip(runs, names):
        rows.append(training_row(run, name))
        sha = checkpoint_sha256(run) if run.verifications else None
        for results in run.verifications:
            row = verify_row(run, name, results)
            if sha is not None and (results.settings or {}).get("checkpoint_sha256") != sha:
                row = replace(row, status=row.status + "; verified an earlier checkpoint")
            rows.append(row)
    return rows


def format_seconds(seconds: Optional[float]) -> str:
    """``"42 s"``, ``"12.5 min"``, ``"3.2 h"``; ``"—"`` when unknown."""
    if not is_number(seconds):
        return "—"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def _cell(key: str, value: Any) -> str:
    if key in ACCURACY_COLUMNS:
        return f"{100 * value:.2f}" if is_number(value) else "—"
    if key == "training_seconds":
        return format_seconds(value)
    if key == "seconds_per_sample":
        return f"{value:.3f}" if is_number(value) else "—"
    if key == "eps":
        return f"{value:g}" if is_number(value) else "—"
    return "—" if value is None else str(value)


def to_markdown(rows: Sequence[Row]) -> str:
    """A Markdown table (accuracies in %, two decimals, as the paper prints them)."""
    keys = [f.name for f in fields(Row)]
    lines = ["| " + " | ".join(HEADERS[k] for k in keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(_cell(k, getattr(row, k)) for k in keys) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def to_csv(rows: Sequence[Row]) -> str:
    """CSV with the row fields as columns; accuracies as percentages at full precision, empty when absent."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[f.name for f in fields(Row)], lineterminator="\n")
    writer.writeheader()
    for row in rows:
        values = asdict(row)
        for key in ACCURACY_COLUMNS:
            values[key] = "" if not is_number(values[key]) else repr(100 * values[key])
        writer.writerow({k: ("" if v is None else v) for k, v in values.items()})
    return buffer.getvalue()
