"""Reconciliation (đối soát): match the register's card payments to the bank's statement.

>>> from ecrlink.reconcile import reconcile                   # doctest: +SKIP
>>> report = reconcile("statement.xlsx", invoices="invoices.csv")
>>> report.summary[Category.BANK_ONLY].count
0

Every payment is matched by invoice code + amount, else card last 4 + approval code
+ amount, else bank reference number (``matcher`` has the rules), and every row ends
in exactly one ``Category``. The standard library is enough; with polars installed
(``pip install 'ecrlink[reconcile]'``) large files go through a vectorised engine
that gives the same answer.
"""

from .api import FAST_THRESHOLD_BYTES, Engine, Resolver, reconcile
from .columns import FIELDS, SYNONYMS, ColumnMapping, load_mapping
from .matcher import DEFAULT_WINDOW
from .model import Category, MatchKey
from .report import (
    ADVICE,
    LABELS,
    Lang,
    Record,
    Report,
    ReportRow,
    Totals,
    write_csv,
    write_json,
    write_report,
    write_xlsx,
)
from .sources import rows_from_entries
from .values import Kind

__all__ = [
    "ADVICE",
    "DEFAULT_WINDOW",
    "FAST_THRESHOLD_BYTES",
    "FIELDS",
    "LABELS",
    "SYNONYMS",
    "Category",
    "ColumnMapping",
    "Engine",
    "Kind",
    "Lang",
    "MatchKey",
    "Record",
    "Report",
    "ReportRow",
    "Resolver",
    "Totals",
    "load_mapping",
    "reconcile",
    "rows_from_entries",
    "write_csv",
    "write_json",
    "write_report",
    "write_xlsx",
]
