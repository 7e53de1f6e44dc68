"""Plots and tables from run folders and verification results (``torchcert report``).

Reading (:mod:`.runs`), series and cascade counts (:mod:`.series`, :mod:`.cascade`) and the table
(:mod:`.table`) are pure Python; only :mod:`.plots` needs matplotlib (the ``plot`` extra), imported when a
figure is drawn.
"""
from .build import Report, build_report, default_out
from .runs import RunFolder, VerifyFile, read_run, read_verify_file
from .table import Row, table_rows, to_csv, to_markdown

__all__ = ["Report", "Row", "RunFolder", "VerifyFile", "build_report", "default_out", "read_run",
           "read_verify_file", "table_rows", "to_csv", "to_markdown"]
