"""Splitting a verification run across processes: which samples a shard takes, its file, and the merge.

Shard ``i`` of ``n`` takes the samples ``start + i, start + i + n, ...`` below ``end`` (strided, so easy and hard
regions of the test set spread over the shards) and appends its records to its own file
``<results stem>.shard<i>of<n>.jsonl`` (same settings header as the results file, so a killed shard resumes
where it stopped). When every shard's samples are on disk, :func:`merge_shards` writes them into the results
file (header, then the records sorted by index; atomically) and removes the shard files. Shards come from
``torchrun`` (``RANK``/``WORLD_SIZE``, see :func:`launcher`) or ``--shard I/N`` (e.g. a SLURM array).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from .results import read_jsonl


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0 <= index < count)."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if not (self.count >= 1 and 0 <= self.index < self.count):
            raise ValueError(f"a shard is I/N with 0 <= I < N, got {self.index}/{self.count}")

    def indices(self, start: int, end: int) -> range:
        """The sample indices of this shard in ``[start, end)``."""
        return range(start + self.index, end, self.count)

    def path(self, results: Path) -> Path:
        """This shard's records file beside ``results`` (the results file itself when there is one shard)."""
        if self.count == 1:
            return results
        return results.with_name(f"{results.stem}.shard{self.index}of{self.count}{results.suffix}")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """``"2/8"`` -> Shard(2, 8); ValueError saying the format otherwise."""
    index, sep, count = text.partition("/")
    try:
        return Shard(int(index), int(count))
    except ValueError:
        raise ValueError(f"--shard takes I/N with 0 <= I < N (e.g. 0/4 for the first of four), got {text!r}") from None


@dataclass(frozen=True)
class Launch:
    """What ``torchrun`` tells a process: its ``rank`` among ``world`` processes, its ``local_rank`` on the node."""

    rank: int
    world: int
    local_rank: int


def launcher(env: Mapping[str, str]) -> Optional[Launch]:
    """The torchrun launch described by ``env`` (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``), or None without one."""
    if "RANK" not in env or "WORLD_SIZE" not in env:
        return None
    return Launch(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", env["RANK"])))


def _shard_records(path: Path, settings: Dict[str, Any]) -> Dict[int, Dict[str, Any]]:
    """Records of a shard file written under ``settings`` ({} if it is missing or holds other settings)."""
    try:
        header, records = read_jsonl(path)
    except FileNotFoundError:  # not written yet, or merged by another shard meanwhile
        return {}
    return records if header == settings else {}


def merge_shards(results: Path, settings: Dict[str, Any], count: int, start: int, end: int,
                 done: Mapping[int, Dict[str, Any]]) -> Optional[Dict[int, Dict[str, Any]]]:
    """Merge the ``count`` shard files of ``results`` into it when together with ``done`` (the results file's
    reusable records) they hold every sample of ``[start, end)``; returns all records of the merged file, or None
    (nothing written) while a shard is unfinished."""
    shards = [Shard(i, count) for i in range(count)]
    parts = [_shard_records(s.path(results), settings) for s in shards]
    for shard, part in zip(shards, parts):
        if any(i not in part and i not in done for i in shard.indices(start, end)):
            return None
    _, on_disk = read_jsonl(results) if results.exists() else (None, {})
    merged: Dict[int, Dict[str, Any]] = dict(on_disk)
    for part in parts:
        merged.update(part)
    _write_sorted(results, settings, merged)
    for shard in shards:
        shard.path(results).unlink(missing_ok=True)
    return merged


def _write_sorted(path: Path, settings: Dict[str, Any], records: Dict[int, Dict[str, Any]]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.merge")
    lines: List[str] = [json.dumps({"settings": settings})] + [json.dumps(records[i]) for i in sorted(records)]
    tmp.write_text("".join(line + "\n" for line in lines))
    os.replace(tmp, path)


def split_evenly(indices: List[int], size: int) -> List[List[int]]:
    """``indices`` in consecutive batches of at most ``size``."""
    return [indices[i:i + size] for i in range(0, len(indices), size)]

