"""Reading run folders and verification results for a report, tolerant of runs still in progress.

A run folder (see :mod:`torchcert.train.run`) holds ``config.yaml``, ``metrics.jsonl`` (one JSON line per epoch)
and, once finished, ``summary.json``; ``torchcert verify`` writes ``<checkpoint stem>_verify/*.jsonl`` beside the
checkpoint (a settings header, then one record per sample) with a ``*_summary.json`` at the end. A run being
written to may have a torn last line, no summary yet, or no metrics yet: each is read as what it is so far.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import yaml

from torchcert.verify.results import read_jsonl

PathLike = Union[str, Path]
#: a file in a ``*_verify`` folder that is a summary, not a results file
SUMMARY_SUFFIX = "_summary"


@dataclass(frozen=True)
class VerifyFile:
    """One verification results file: its settings header (None if not written yet), records sorted by sample
    index, and the summary JSON written at the end of a ``verify`` (None while it runs)."""

    path: Path
    settings: Optional[Dict[str, Any]]
    records: List[Dict[str, Any]]
    summary: Optional[Dict[str, Any]]


@dataclass(frozen=True)
class RunFolder:
    """What a training run folder holds so far; ``summary`` is None until the run has finished."""

    path: Path
    config: Dict[str, Any]
    metrics: List[Dict[str, Any]]
    summary: Optional[Dict[str, Any]]
    verifications: List[VerifyFile] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.resolve().name

    @property
    def planned_epochs(self) -> Optional[int]:
        """``run.epochs`` of the config, None when the config is not there."""
        return self.config.get("run", {}).get("epochs")


def read_metrics(path: Path) -> List[Dict[str, Any]]:
    """The epoch records of a ``metrics.jsonl`` in epoch order; a torn line (a run killed or still writing) is
    skipped, and a later line of the same epoch supersedes an earlier one. Empty when the file is absent."""
    if not path.exists():
        return []
    by_epoch: Dict[int, Dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "epoch" in record:
            by_epoch[int(record["epoch"])] = record
    return [by_epoch[e] for e in sorted(by_epoch)]


def read_json(path: Path) -> Optional[Dict[str, Any]]:
    """A JSON object from ``path``; None when it is absent or not complete JSON yet."""
    try:
        value = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


def read_verify_file(path: PathLike) -> VerifyFile:
    """A results file of ``torchcert verify`` with its summary JSON if that exists."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such verification results file")
    header, records = read_jsonl(path)
    summary = read_json(path.with_name(path.stem + SUMMARY_SUFFIX + ".json"))
    return VerifyFile(path, header, [records[i] for i in sorted(records)], summary)


def find_verify_files(run_dir: Path) -> List[Path]:
    """The results files ``torchcert verify`` writes by default beside the checkpoints of ``run_dir``."""
    found = [p for p in sorted(run_dir.glob("*_verify/*.jsonl")) if not p.stem.endswith(SUMMARY_SUFFIX)]
    return [p for p in found if p.is_file()]


def read_run(run_dir: PathLike) -> RunFolder:
    """A run folder as it is now; FileNotFoundError when it is not one (no config.yaml and no metrics.jsonl)."""
    path = Path(run_dir)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such run folder (give the --out folder of `torchcert train` or "
                                "`torchcert quickstart`)")
    config_file, metrics_file = path / "config.yaml", path / "metrics.jsonl"
    if not config_file.exists() and not metrics_file.exists():
        raise FileNotFoundError(f"{path} is not a run folder: it has neither config.yaml nor metrics.jsonl")
    config = yaml.safe_load(config_file.read_text()) if config_file.exists() else {}
    return RunFolder(path, config or {}, read_metrics(metrics_file), read_json(path / "summary.json"),
                     [read_verify_file(p) for p in find_verify_files(path)])


def checkpoint_sha256(run: RunFolder) -> Optional[str]:
    """SHA-256 of the run's checkpoint now (what a verify header records), None when it has none."""
    from torchcert.train.checkpoint import CHECKPOINT_NAME
    from torchcert.verify.run import file_sha256

    path = run.path / CHECKPOINT_NAME
    return file_sha256(path) if path.is_file() else None


def attach_results(runs: List[RunFolder], paths: List[PathLike]) -> List[RunFolder]:
    """``runs`` with each results file of ``paths`` (``verify --out`` elsewhere) added to the run whose checkpoint
    it verified (by the SHA-256 in its header); ValueError when no run has that checkpoint."""
    hashes = [checkpoint_sha256(run) for run in runs]
    runs = list(runs)
    for path in paths:
        results = read_verify_file(path)
        sha = (results.settings or {}).get("checkpoint_sha256")
        if sha is None or sha not in hashes:
            raise ValueError(f"{path} verified a checkpoint (SHA-256 {str(sha)[:12]}...) that is none of the runs' "
                             "current checkpoints; give the run folder it belongs to")
        i = hashes.index(sha)
        runs[i] = replace(runs[i], verifications=[*runs[i].verifications, results])
    return runs


def is_number(value: Any) -> bool:
    """A finite int or float (metrics may hold NaN, summaries None)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
