"""Verifying a checkpoint with resumable JSONL results, in batches, optionally as one shard of several (the library
side of ``torchcert verify``)."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import torch

from .batched import error_result, verify_batch
from .cascade import VerifyResult, parse_methods, verify_sample
from .config import VerifyConfig
from .results import ResultStore, format_table, record_of, summarise
from .setup import DTYPES, EvalSetup, load_setup
from .shards import Shard, merge_shards, split_evenly
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


def check_numbers(eps: Optional[float], timeout: Optional[float], start: int, end: int, pgd_steps: Optional[int],
                  pgd_step_size: Optional[float], spec_batch: Optional[int]) -> None:
    """Refuse numbers that cannot be meant, before anything is loaded or written (ValueError naming the option;
    None: not given)."""
    given = lambda v: v is not None  # noqa: E731
    rules = [(eps is None or (math.isfinite(eps) and 0 <= eps <= 1), f"--eps must lie in [0, 1] (pixel scale), got {eps}"),
             (not given(timeout) or (math.isfinite(timeout) and timeout > 0),
              f"--timeout must be a positive number of seconds, got {timeout}"),
             (start >= 0, f"--start must be >= 0, got {start}"),
             (end == -1 or end >= start, f"--end must be -1 (all) or >= --start ({start}), got {end}"),
             (not given(pgd_steps) or pgd_steps >= 0, f"--pgd-steps must be >= 0, got {pgd_steps}"),
             (not given(pgd_step_size) or (math.isfinite(pgd_step_size) and pgd_step_size > 0),
              f"--pgd-step-size must be > 0, got {pgd_step_size}"),
             (spec_batch is None or spec_batch >= 1, f"--spec-batch must be >= 1, got {spec_batch}")]
    for ok, message in rules:
        if not ok:
            raise ValueError(message)


def verify_settings(checkpoint: PathLike, setup: EvalSetup, config: VerifyConfig, dtype: str) -> Dict[str, Any]:
    """Everything that can change a verdict, as stored in the results file's header and the summary (not the
    batch size: batching changes no verdict)."""
    from torchcert import __version__

    return {"checkpoint_sha256": file_sha256(checkpoint), "dataset": setup.info.name, "eps": setup.eps,
            "model": setup.model_name, "methods": list(config.ordered_methods), "timeout": float(config.timeout),
            "pgd_steps": int(config.pgd.steps), "pgd_step_size": float(config.pgd.step_size),
            "seed": int(config.seed), "dtype": dtype, "device": setup.device.type,
            "bab": _plain(dataclasses.asdict(config.bab)), "alpha_iterations": config.alpha.iterations,
            "verdict": VERDICT_POLICY, "torchcert": __version__, "bound_dtype": config.bound_dtype}


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value))


def resolve_config(config: Optional[VerifyConfig], **given: Any) -> VerifyConfig:
    """``config`` (default: :class:`VerifyConfig`'s defaults) with the arguments that were given (not None)
    replacing its fields; ``pgd_steps``/``pgd_step_size`` set ``pgd.*``; validated."""
    cfg = config or VerifyConfig()
    pgd = {k: given.pop(f"pgd_{k}") for k in ("steps", "step_size") if given.get(f"pgd_{k}") is not None}
    given = {k: v for k, v in given.items() if v is not None}
    if "methods" in given:
        methods = given["methods"]
        given["methods"] = parse_methods(methods if isinstance(methods, str) else ",".join(methods))
    cfg = dataclasses.replace(cfg, pgd=dataclasses.replace(cfg.pgd, **pgd), **given)
    cfg.validate()
    return dataclasses.replace(cfg, methods=cfg.ordered_methods)


def verify(checkpoint: PathLike, preset: Optional[str] = None, *, dataset: Optional[str] = None,
           model: Optional[str] = None, model_params: str = "", eps: Optional[float] = None,
           methods: Union[str, Sequence[str], None] = None, timeout: Optional[float] = None, start: int = 0,
           end: int = -1, resume: bool = True, data_dir: Optional[PathLike] = None, device: str = "cpu",
           dtype: str = "float32", out: Optional[PathLike] = None, pgd_steps: Optional[int] = None,
           pgd_step_size: Optional[float] = None, spec_batch: Optional[int] = None, seed: Optional[int] = None,
           progress: bool = True, bound_dtype: Optional[str] = None, config: Optional[VerifyConfig] = None,
           batch_size: Optional[int] = None, shard: Optional[Shard] = None, merge: bool = True,
           download: bool = False) -> Dict[str, Any]:
    """Run the cascade on samples [start, end) of the test split; returns the summary (also written as JSON).

    How to verify comes from ``config`` (:class:`.config.VerifyConfig`; default: its defaults), each explicit
    argument (``methods``, ``timeout``, ``pgd_steps``, ``pgd_step_size``, ``spec_batch``, ``seed``,
    ``bound_dtype``, ``batch_size``) replacing its field. Model, dataset and ε come from ``preset``, else
    ``config.yaml`` beside the checkpoint, overridden by the explicit arguments; ``download`` fetches a missing
    dataset. Bounds are computed in the bound dtype (float64: sound against their own rounding; float32: several
    times faster on CPUs, with an estimated allowance, see :mod:`.verdict`). Records already in the results file
    are reused only if they were computed with the same settings (see :class:`ResultStore`); with ``resume``
    False the samples of [start, end) are recomputed and the file's other records are kept.

    ``shard`` (:class:`.shards.Shard`): verify only that shard's samples, into its own file; with ``merge`` the
    shard that finds all shards finished merges them into the results file and writes the summary (the summary
    returned by an unmerged shard covers its own samples and has ``"merged": False``).
    """
    check_numbers(eps, timeout, start, end, pgd_steps, pgd_step_size, spec_batch)
    cfg = resolve_config(config, methods=methods, timeout=timeout, pgd_steps=pgd_steps, pgd_step_size=pgd_step_size,
                         spec_batch=spec_batch, seed=seed, bound_dtype=bound_dtype, batch_size=batch_size)
    shard = shard or Shard()
    setup = load_setup(checkpoint, preset=preset, dataset=dataset, model=model, model_params=model_params, eps=eps,
                       data_dir=data_dir, device=device, dtype=dtype, download=download)
    end = len(setup.split) if end < 0 else end
    if end > len(setup.split):
        raise ValueError(f"--end {end} is past the split's {len(setup.split)} samples")
    settings = verify_settings(checkpoint, setup, cfg, dtype)
    path = Path(out) if out else results_path(checkpoint, setup.eps, cfg.methods, settings)
    check_writable(path)
    main = ResultStore(path, settings, resume)  # the results file: read only, unless there is a single shard
    store = main if shard.count == 1 else ResultStore(shard.path(path), settings, resume)
    if not resume:
        main.forget(range(start, end))
        store.forget(range(start, end))
    if store.retried or main.retried:
        LOG.info("%s: the timeout grew from %s s; re-trying its timed-out samples, keeping decided verdicts",
                 path, main.settings["timeout"])
    mine = [i for i in shard.indices(start, end) if i not in store and i not in main]
    _verify_indices(setup, cfg, mine, store, progress)
    records = dict(main.records)
    if shard.count > 1:
        merged = merge_shards(path, settings, shard.count, start, end, main.records) if merge else None
        if merged is None:
            records.update(store.records)
            own = [records[i] for i in shard.indices(start, end) if i in records]
            return _summary(own, cfg, setup.eps, start, end, store.path, settings) | {"merged": False,
                                                                                      "shard": str(shard)}
        records = merged
    summary = _summary([records[i] for i in range(start, end) if i in records], cfg, setup.eps, start, end, path,
                       settings)
    summary_path = path.with_name(path.stem + "_summary.json")
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _summary(records: List[Dict[str, Any]], cfg: VerifyConfig, eps: float, start: int, end: int, path: Path,
             settings: Dict[str, Any]) -> Dict[str, Any]:
    summary = summarise(records)
    summary.update({"eps": eps, "methods": list(cfg.methods), "timeout": cfg.timeout, "start": start, "end": end,
                    "results": str(path), "table": format_table(summary, cfg.methods), "settings": settings})
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


def _verify_indices(setup: EvalSetup, cfg: VerifyConfig, indices: List[int], store: ResultStore,
                    progress: bool) -> None:
    """Verify ``indices`` in batches of ``cfg.batch_size``, appending each sample's record to ``store``."""
    from torchcert.progress import Progress

    bound_model = bound_copy(setup.model, DTYPES[cfg.bound_dtype])  # the copy for the bounds, made once
    batches = split_evenly(indices, cfg.batch_size)
    bar = Progress(batches, len(batches), f"verify (batches of {cfg.batch_size})", progress, every=10.0)
    verified = done = 0
    for batch in bar:
        results = _verify_batch(setup, cfg, batch, bound_model)
        store.add_many([record_of(idx, int(setup.split.labels[idx]), r) for idx, r in zip(batch, results)])
        verified, done = verified + sum(r.verified for r in results), done + len(results)
        bar.update(verified=f"{verified}/{done}")


def _generators(setup: EvalSetup, seed: int, indices: Sequence[int]) -> List[torch.Generator]:
    """One generator per sample, seeded ``seed·1000003 + idx``: a resumed, batched or sharded run draws the same."""
    return [torch.Generator(setup.device).manual_seed(seed * 1_000_003 + idx) for idx in indices]


def _verify_batch(setup: EvalSetup, cfg: VerifyConfig, batch: List[int], bound_model: torch.nn.Module
                  ) -> List[VerifyResult]:
    """The batched cascade on ``batch``; if a batched stage raises, each sample alone, whose exception (if any) is
    recorded as its ``error`` result (never verified, never a timeout)."""
    options = dict(methods=cfg.methods, timeout=cfg.timeout, pgd_steps=cfg.pgd.steps,
                   pgd_step_size=cfg.pgd.step_size, spec_chunk=cfg.spec_batch, bab=cfg.bab_settings(),
                   bound_model=bound_model, alpha_iterations=cfg.alpha.iterations)
    try:
        x, lower, upper, labels = setup.samples(batch)
        return verify_batch(setup.model, lower, upper, labels, x=x, generators=_generators(setup, cfg.seed, batch),
                            record_errors=True, **options)
    except Exception as exc:  # noqa: BLE001 -- retried sample by sample below
        if len(batch) > 1:
            LOG.warning("a batched stage failed on samples %d..%d (%s: %s); verifying them one by one", batch[0],
                        batch[-1], type(exc).__name__, exc)
    results = []
    for idx in batch:
        try:
            x, lower, upper, label = setup.sample(idx)
            results.append(verify_sample(setup.model, lower, upper, label, x=x,
                                         generator=_generators(setup, cfg.seed, [idx])[0], **options))
        except Exception as exc:  # noqa: BLE001 -- recorded on the sample
            LOG.warning("sample %d: %s: %s (recorded as an error)", idx, type(exc).__name__, exc)
            results.append(error_result(exc))
    return results
