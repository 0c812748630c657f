"""The benchmark's data, small: every planted discrepancy found."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from ecrlink.reconcile import reconcile

BENCH = Path(__file__).parents[2] / "bench" / "bench_reconcile.py"


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_reconcile", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_planted_counts_are_found(tmp_path: Path) -> None:
    files = _bench().generate(tmp_path, 3000, seed=11)
    report = reconcile(files["bank"], invoices=files["register"])
    assert {c.value: t.count for c, t in report.summary.items()} == files["expected"]
    assert all(files["expected"].values())  # every category was planted
