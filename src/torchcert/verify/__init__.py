"""Verification: the per-sample cascade (clean, PGD, IBP, CROWN, α-CROWN) and complete branch and bound.

Entry points: :func:`verify_sample` -> :class:`VerifyResult`, :func:`branch_and_bound` -> :class:`BabResult`,
:class:`ResultStore` / :func:`summarise` for JSONL results.
"""
from .bab import BabResult, BabSettings, branch_and_bound
from .cascade import METHODS, VerifyResult, parse_methods, verify_sample
from .domain_bounds import OptimSettings
from .results import ResultStore, format_table, record_of, summarise

__all__ = [
    "BabResult", "BabSettings", "METHODS", "OptimSettings", "ResultStore", "VerifyResult", "branch_and_bound",
    "format_table", "parse_methods", "record_of", "summarise", "verify_sample",
]
