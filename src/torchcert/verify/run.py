"""Verifying a checkpoint sample by sample with resumable JSONL results (the library side of ``torchcert verify``)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Union

import torch

from .cascade import METHODS, parse_methods, verify_sample
from .results import ResultStore, format_table, record_of, summarise
from .setup import EvalSetup, build_setup
from .verdict import bound_copy

PathLike = Union[str, Path]


def results_path(checkpoint: PathLike, eps: float, methods: Sequence[str]) -> Path:
    """Default results file: ``<dir>/<stem>_verify/eps<eps>_<m1-m2-...>.jsonl`` beside the checkpoint."""
    ckpt = Path(checkpoint)
    return ckpt.parent / f"{ckpt.stem}_verify" / f"eps{eps:g}_{'-'.join(methods)}.jsonl"


def verify(checkpoint: PathLike, preset: Optional[str] = None, *, dataset: Optional[str] = None,
           model: Optional[str] = None, model_params: str = "", eps: Optional[float] = None,
           methods: Union[str, Sequence[str]] = METHODS, timeout: float = 60.0, start: int = 0, end: int = -1,
           resume: bool = True, data_dir: Optional[PathLike] = None, device: str = "cpu", dtype: str = "float32",
           out: Optional[PathLike] = None, pgd_steps: int = 40, pgd_step_size: float = 0.035,
           spec_batch: Optional[int] = None, seed: int = 0, progress: bool = True) -> Dict[str, Any]:
    """Run the cascade on samples [start, end) of the test split; returns the summary (also written as JSON).

    Model, dataset and ε come from ``preset``, else ``config.yaml`` beside the checkpoint, overridden by the
    explicit arguments. Records already in the results file are kept unless ``resume`` is False.
    """
    args = argparse.Namespace(checkpoint=str(checkpoint), preset=preset, dataset=dataset, model=model,
                              model_params=model_params, eps=eps, data_dir=data_dir, device=device, dtype=dtype)
    chosen = parse_methods(methods) if isinstance(methods, str) else parse_methods(",".join(methods))
    setup = build_setup(args)
    path = Path(out) if out else results_path(checkpoint, setup.eps, chosen)
    summary = _verify_range(setup, chosen, timeout, start, end, ResultStore(path, resume), pgd_steps,
                            pgd_step_size, spec_batch, seed, progress)
    path.with_name(path.stem + "_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _verify_range(setup: EvalSetup, methods: tuple, timeout: float, start: int, end: int, store: ResultStore,
                  pgd_steps: int, pgd_step_size: float, spec_batch: Optional[int], seed: int,
                  progress: bool) -> Dict[str, Any]:
    from tqdm import tqdm

    end = len(setup.split) if end < 0 else min(end, len(setup.split))
    if not 0 <= start <= end:
        raise ValueError(f"start {start} must lie in [0, {end}] (the split has {len(setup.split)} samples)")
    generator = torch.Generator(setup.device)
    bound_model = bound_copy(setup.model)  # float64 copy for the bounds, made once
    bar = tqdm(range(start, end), disable=None if progress else True, dynamic_ncols=True)
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
        bar.set_description(f"verified {sum(r['verified'] for r in done)}/{len(done)}")
    summary = summarise(store.select(range(start, end)))
    summary.update({"eps": setup.eps, "methods": list(methods), "timeout": timeout, "start": start, "end": end,
                    "results": str(store.path), "table": format_table(summary, methods)})
    return summary
