"""Verification: the per-sample cascade (clean, PGD, IBP, CROWN, α-CROWN) and complete branch and bound.

Entry points: :func:`verify_sample` -> :class:`VerifyResult`, :func:`branch_and_bound` -> :class:`BabResult`,
:func:`verify` (a checkpoint, resumable JSONL results -> summary), :class:`ResultStore` / :func:`summarise`.
"""
from .bab import BabResult, BabSettings, branch_and_bound
from .cascade import METHODS, VerifyResult, parse_methods, verify_sample
from .domain_bounds import OptimSettings
from .results import ResultStore, format_table, record_of, summarise
from .run import results_path, verify

__all__ = [
    "BabResult", "BabSettings", "METHODS", "OptimSettings", "ResultStore", "VerifyResult", "branch_and_bound",
    "format_table", "parse_methods", "record_of", "results_path", "summarise", "verify", "verify_sample",
]
