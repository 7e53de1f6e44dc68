"""Verifying a checkpoint sample by sample with resumable JSONL results (the library side of ``torchcert verify``)."""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import math
import os
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Union

import torch

from .bab import BabSettings
from .cascade import ALPHA_ITERATIONS, METHODS, parse_methods, verify_sample
from .results import ResultStore, format_table, record_of, summarise
from .setup import DTYPES, EvalSetup, build_setup
from .verdict import VERDICT_POLICY, bound_copy

LOG = logging.getLogger(__name__)

PathLike = Union[str, Path]


def results_path(checkpoint: PathLike, eps: float, methods: Sequence[str],
                 settings: Optional[Dict[str, Any]] = None) -> Path:
    """Default results file: ``<dir>/<stem>_verify/eps<eps>_<m1-m2-...>_<key>.jsonl`` beside the checkpoint, where
    ``key`` hashes every setting but the timeout (a re-run with other settings gets its own file; one with a larger
    timeout finds this one and re-tries its timeouts)."""
    ckpt = Path(checkpoint)
    name = f"eps{eps:g}_{'-'.join(methods)}"
    if settings is not None:
        keyed = {k: v for k, v in settings.items() if k != "timeout"}
        name += "_" + hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()[:8]
    return ckpt.parent / f"{ckpt.stem}_verify" / f"{name}.jsonl"


def file_sha256(path: PathLike) -> str:
    """SHA-256 of a file's bytes (identifies the checkpoint the records were computed from)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_numbers(eps: Optional[float], timeout: float, start: int, end: int, pgd_steps: int,
                  pgd_step_size: float, spec_batch: Optional[int]) -> None:
    """Refuse numbers that cannot be meant, before anything is loaded or written (ValueError naming the option)."""
    rules = [(eps is None or (math.isfinite(eps) and 0 <= eps <= 1), f"--eps must lie in [0, 1] (pixel scale), got {eps}"),
             (math.isfinite(timeout) and timeout > 0, f"--timeout must be a positive number of seconds, got {timeout}"),
             (start >= 0, f"--start must be >= 0, got {start}"),
             (end == -1 or end >= start, f"--end must be -1 (all) or >= --start ({start}), got {end}"),
             (pgd_steps >= 0, f"--pgd-steps must be >= 0, got {pgd_steps}"),
             (math.isfinite(pgd_step_size) and pgd_step_size > 0, f"--pgd-step-size must be > 0, got {pgd_step_size}"),
             (spec_batch is None or spec_batch >= 1, f"--spec-batch must be >= 1, got {spec_batch}")]
    for ok, message in rules:
        if not ok:
            raise ValueError(message)


def verify_settings(checkpoint: PathLike, setup: EvalSetup, methods: Sequence[str], timeout: float,
                    pgd_steps: int, pgd_step_size: float, seed: int, dtype: str) -> Dict[str, Any]:
    """Everything that can change a verdict, as stored in the results file's header and the summary."""
    from torchcert import __version__

    return {"checkpoint_sha256": file_sha256(checkpoint), "dataset": setup.info.name, "eps": setup.eps,
            "model": setup.model_name, "methods": list(methods), "timeout": float(timeout),
            "pgd_steps": int(pgd_steps), "pgd_step_size": float(pgd_step_size), "seed": int(seed), "dtype": dtype,
            "device": setup.device.type, "bab": _plain(dataclasses.asdict(BabSettings())),
            "alpha_iterations": ALPHA_ITERATIONS, "verdict": VERDICT_POLICY, "torchcert": __version__}


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value))


def verify(checkpoint: PathLike, preset: Optional[str] = None, *, dataset: Optional[str] = None,
           model: Optional[str] = None, model_params: str = "", eps: Optional[float] = None,
           methods: Union[str, Sequence[str]] = METHODS, timeout: float = 60.0, start: int = 0, end: int = -1,
           resume: bool = True, data_dir: Optional[PathLike] = None, device: str = "cpu", dtype: str = "float32",
           out: Optional[PathLike] = None, pgd_steps: int = 40, pgd_step_size: float = 0.035,
           spec_batch: Optional[int] = None, seed: int = 0, progress: bool = True,
           bound_dtype: str = "float64") -> Dict[str, Any]:
    """Run the cascade on samples [start, end) of the test split; returns the summary (also written as JSON).

    Model, dataset and ε come from ``preset``, else ``config.yaml`` beside the checkpoint, overridden by the
    explicit arguments. Bounds are computed in ``bound_dtype`` (float64: sound against their own rounding; float32:
    several times faster on CPUs, with an estimated allowance, see :mod:`.verdict`). Records already in the results
    file are reused only if they were computed with the same
    settings (see :class:`ResultStore`); with ``resume`` False the samples of [start, end) are recomputed and the
    file's other records are kept.
    """
    check_numbers(eps, timeout, start, end, pgd_steps, pgd_step_size, spec_batch)
    args = argparse.Namespace(checkpoint=str(checkpoint), preset=preset, dataset=dataset, model=model,
                              model_params=model_params, eps=eps, data_dir=data_dir, device=device, dtype=dtype)
    chosen = parse_methods(methods) if isinstance(methods, str) else parse_methods(",".join(methods))
    setup = build_setup(args)  # checks the eps it resolves from a preset or config.yaml too
    end = len(setup.split) if end < 0 else end
    if end > len(setup.split):
        raise ValueError(f"--end {end} is past the split's {len(setup.split)} samples")
    if bound_dtype not in DTYPES:
        raise ValueError(f"--bound-dtype must be one of {', '.join(DTYPES)}, got {bound_dtype!r}")
    settings = verify_settings(checkpoint, setup, chosen, timeout, pgd_steps, pgd_step_size, seed, dtype)
    settings["bound_dtype"] = bound_dtype
    path = Path(out) if out else results_path(checkpoint, setup.eps, chosen, settings)
    check_writable(path)
    store = ResultStore(path, settings, resume)
    if not resume:
        store.forget(range(start, end))
    if store.retried:
        LOG.info("%s: the timeout grew from %s s; re-trying its %d timed-out samples, keeping decided verdicts",
                 path, store.settings["timeout"], store.retried)
    summary = _verify_range(setup, chosen, timeout, start, end, store, pgd_steps, pgd_step_size, spec_batch,
                            seed, progress, DTYPES[bound_dtype])
    summary["settings"] = settings
    summary_path = path.with_name(path.stem + "_summary.json")
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def check_writable(path: Path) -> None:
    """Fail before any computation if ``path`` cannot be written (its folder is created, as a run would)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"cannot create the results folder {path.parent}: {err.strerror or err}") from None
    if path.is_dir():
        raise ValueError(f"{path} is a folder; --out names a .jsonl file")
    probe = path if path.exists() else path.with_name(f".{path.name}.{os.getpid()}.probe")
    try:  # a real write test: permissions, read-only file systems and root alike
        with open(probe, "a"):
            pass
        if probe != path:
            probe.unlink()
    except OSError as err:
        raise ValueError(f"cannot write results to {path}: {err.strerror or err}") from None


def _verify_range(setup: EvalSetup, methods: tuple, timeout: float, start: int, end: int, store: ResultStore,
                  pgd_steps: int, pgd_step_size: float, spec_batch: Optional[int], seed: int,
                  progress: bool, bound_dtype: torch.dtype = torch.float64) -> Dict[str, Any]:
    from torchcert.progress import Progress

    generator = torch.Generator(setup.device)
    bound_model = bound_copy(setup.model, bound_dtype)  # the copy for the bounds, made once
    bar = Progress(range(start, end), end - start, "verify", progress, every=10.0)
    for idx in bar:
        if idx in store:
            continue
        x, lower, upper, label = setup.sample(idx)
        generator.manual_seed(seed * 1_000_003 + idx)  # per-sample seed: resumed runs give the same answers
        result = verify_sample(setup.model, lower, upper, label, methods, timeout, x=x, pgd_steps=pgd_steps,
                               pgd_step_size=pgd_step_size, spec_chunk=spec_batch, generator=generator,
                               bound_model=bound_model)
        store.add(record_of(idx, label, result))
        done = store.select(range(start, idx + 1))
        bar.update(verified=f"{sum(r['verified'] for r in done)}/{len(done)}", last=result.status)
    summary = summarise(store.select(range(start, end)))
    summary.update({"eps": setup.eps, "methods": list(methods), "timeout": timeout, "start": start, "end": end,
                    "results": str(store.path), "table": format_table(summary, methods)})
    return summary
