"""Verification: the cascade (clean, PGD, IBP, CROWN batched over samples; α-CROWN) and complete branch and bound.

Entry points: :func:`verify_sample` -> :class:`VerifyResult`, :func:`branch_and_bound` -> :class:`BabResult`,
:func:`verify` (a checkpoint, resumable JSONL results -> summary), :class:`ResultStore` / :func:`summarise`.
"""
from .bab import BabResult, BabSettings, branch_and_bound
from .batched import verify_batch
from .cascade import METHODS, VerifyResult, parse_methods, verify_sample
from .config import VerifyConfig
from .domain_bounds import OptimSettings
from .results import ResultStore, format_table, record_of, summarise
from .run import results_path, verify
from .shards import Shard, parse_shard

__all__ = [
    "BabResult", "BabSettings", "METHODS", "OptimSettings", "ResultStore", "Shard", "VerifyConfig", "VerifyResult",
    "branch_and_bound", "format_table", "parse_methods", "parse_shard", "record_of", "results_path", "summarise",
    "verify", "verify_batch", "verify_sample",
]
