"""Reconciliation (đối soát): match the register's card payments to the bank's statement.

>>> from ecrlink.reconcile import reconcile                   # doctest: +SKIP
>>> report = reconcile("statement.xlsx", invoices="invoices.csv")
>>> report.summary[Category.BANK_ONLY].count
0

Every payment is matched by invoice code + amount, else card last 4 + approval code
+ amount, else bank reference number (``engine`` has the rules, on polars), and every
row ends in exactly one ``Category``. Importing this package imports polars: the
command line imports it only when it reconciles.
"""

from .api import Resolver, reconcile
from .columns import FIELDS, SYNONYMS, ColumnMapping, load_mapping
from .engine import DEFAULT_WINDOW
from .model import Category, MatchKey
from .report import ADVICE, LABELS, Lang, Record, Report, ReportRow, Totals
from .sources import MAX_CELL_CHARS, rows_from_entries
from .values import Kind
from .writers import json_chunks, write_csv, write_json, write_report, write_xlsx
from .xlsx import MAX_XLSX_BYTES, MAX_XLSX_CELLS

__all__ = [
    "ADVICE",
    "DEFAULT_WINDOW",
    "FIELDS",
    "LABELS",
    "MAX_CELL_CHARS",
    "MAX_XLSX_BYTES",
    "MAX_XLSX_CELLS",
    "SYNONYMS",
    "Category",
    "ColumnMapping",
    "Kind",
    "Lang",
    "MatchKey",
    "Record",
    "Report",
    "ReportRow",
    "Resolver",
    "Totals",
    "json_chunks",
    "load_mapping",
    "reconcile",
    "rows_from_entries",
    "write_csv",
    "write_json",
    "write_report",
    "write_xlsx",
]
