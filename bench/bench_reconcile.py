"""Reconciliation at a chain's scale, beside a plain hash join of the same files.

    python bench/bench_reconcile.py                # quick check, 50,000 rows a side
    python bench/bench_reconcile.py --rows 1000000 # the issue's figure

Generates, in a temporary directory, a register side (the POS's invoice list, a
title block above Vietnamese headers, amounts written ``1.234.567``) and a bank
side (the simulator's statement format) with discrepancies of every category
planted at known counts. Then, each in its own process so peak memory is its own:

- ``ecrlink``: ``reconcile()`` in full (read both files, every key, voids,
  duplicates, summary), checked against the planted counts;
- ``join``: a plain full outer hash join of the same two files on the invoice key,
  with DuckDB (``pip install 'ecrlink[bench]'``), or pandas if that is what is
  installed, counting matched and unmatched rows.

Prints one JSON document: seconds and peak RSS of each, and their ratios (fastest
run against fastest run, and median against median: the machine may be shared).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

__all__ = ["generate", "main"]

BANK_HEADER = (
    "Transaction date,TID,MID,Card number,Amount,Approval code,RRN,Invoice,Reference,"
    "Batch,Receipt,Type"
)
REGISTER_TITLE = "BÁO CÁO HÓA ĐƠN THANH TOÁN THẺ\nCửa hàng: Chuỗi siêu thị ABC\n\n"
REGISTER_HEADER = "Mã hóa đơn,Ngày,Số tiền,Số thẻ,Mã chuẩn chi,Số tham chiếu,Loại"

# Share of transactions planted in each case (the rest match by invoice).
PLANTED = {
    "ecr_only": 0.005,
    "bank_only": 0.005,
    "amount_mismatch": 0.005,
    "duplicate": 0.003,
    "voided": 0.01,
    "by_card_approval": 0.03,
    "by_ref_no": 0.01,
}


def _vn(amount: int) -> str:
    return f"{amount:,}".replace(",", ".")


def generate(directory: Path, rows: int, seed: int = 7) -> dict[str, Any]:
    """Write ``register.csv`` and ``bank.csv``; return their paths and the expected
    category counts."""
    rng = random.Random(seed)
    start = datetime(2026, 3, 1, 8, 0, 0)
    step = timedelta(days=30) / rows
    expected = dict.fromkeys(
        ("matched", "amount_mismatch", "ecr_only", "bank_only", "duplicate", "voided"), 0
    )
    bank_lines: list[str] = [BANK_HEADER]
    reg_lines: list[str] = [REGISTER_HEADER]
    receipts = [0] * 64
    cuts: list[tuple[float, str]] = []
    acc = 0.0
    for name, share in PLANTED.items():
        acc += share
        cuts.append((acc, name))

    def bank_row(when: datetime, tid: int, card: str, amount: int, approval: str, rrn: str,
                 invoice: str, kind: str) -> None:
        receipts[tid] += 1
        bank_lines.append(
            f"{when:%d/%m/%Y %H:%M:%S},{31000000 + tid},000000100091555,970436******{card},"
            f"{amount},{approval},{rrn},{invoice},REF{tid},{1 + tid % 9:06d},"
            f"{receipts[tid]:06d},{kind}"
        )

    for n in range(rows):
        when = start + step * n
        tid = n % 64
        card = f"{rng.randrange(10000):04d}"
        amount = rng.randrange(10, 5000) * 1000
        approval = f"{rng.randrange(1_000_000):06d}"
        rrn = f"{600000000000 + n}"
        invoice = f"HD{n:08d}"
        r = rng.random()
        case = next((name for cut, name in cuts if r < cut), "by_invoice")
        reg_card = f"9704 XXXX XXXX {card}"
        reg = f"{invoice},{when:%Y-%m-%dT%H:%M:%S},{_vn(amount)},{reg_card},{approval},{rrn},Bán"
        if case == "ecr_only":
            reg_lines.append(reg)
            expected["ecr_only"] += 1
        elif case == "bank_only":
            bank_row(when, tid, card, amount, approval, rrn, f"X{n:08d}", "SALE")
            expected["bank_only"] += 1
        elif case == "amount_mismatch":
            reg_lines.append(reg)
            bank_row(when, tid, card, amount + 1000, approval, rrn, invoice, "SALE")
            expected["amount_mismatch"] += 1
        elif case == "duplicate":
            reg_lines.append(reg)
            bank_row(when, tid, card, amount, approval, rrn, invoice, "SALE")
            later = when + timedelta(minutes=2)
            bank_row(later, tid, card, amount, f"{rng.randrange(1_000_000):06d}",
                     f"7{rrn[1:]}", invoice, "SALE")
            expected["matched"] += 1
            expected["duplicate"] += 1
        elif case == "voided":
            reg_lines.append(reg)
            reg_lines.append(reg.replace(",Bán", ",Hủy"))
            bank_row(when, tid, card, amount, approval, rrn, invoice, "SALE")
            bank_row(when + timedelta(minutes=1), tid, card, amount, approval,
                     f"8{rrn[1:]}", invoice, "VOID")
            expected["voided"] += 1
        elif case == "by_card_approval":
            reg_lines.append(reg)
            bank_row(when, tid, card, amount, approval, rrn, "", "SALE")
            expected["matched"] += 1
        elif case == "by_ref_no":
            reg_lines.append(reg)
            bank_lines.append(
                f"{when:%d/%m/%Y %H:%M:%S},{31000000 + tid},000000100091555,,{amount},,"
                f"{rrn},,,000001,{n % 999999:06d},SALE"
            )
            expected["matched"] += 1
        else:
            reg_lines.append(reg)
            bank_row(when, tid, card, amount, approval, rrn, invoice, "SALE")
            expected["matched"] += 1
    register = directory / "register.csv"
    bank = directory / "bank.csv"
    register.write_text(REGISTER_TITLE + "\n".join(reg_lines) + "\n", encoding="utf-8")
    bank.write_bytes(("\ufeff" + "\n".join(bank_lines) + "\n").encode("utf-8"))
    return {
        "register": str(register),
        "bank": str(bank),
        "register_rows": len(reg_lines) - 1,
        "bank_rows": len(bank_lines) - 1,
        "expected": expected,
    }


def _peak_rss_mb() -> float:
    # ru_maxrss is in kilobytes on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child_ecrlink(register: str, bank: str, engine: str) -> dict[str, Any]:
    from ecrlink.reconcile import reconcile

    if engine != "python":
        # Imported before the clock starts, as the join's side imports duckdb.
        from ecrlink.reconcile import _fast  # noqa: F401
    t0 = time.perf_counter()
    report = reconcile(bank, invoices=register, engine=engine)  # type: ignore[arg-type]
    seconds = time.perf_counter() - t0
    return {
        "seconds": round(seconds, 3),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "engine": report.engine,
        "summary": {c.value: t.count for c, t in report.summary.items()},
    }


def _child_join(register: str, bank: str) -> dict[str, Any]:
    try:
        import duckdb
    except ImportError:
        duckdb = None
    t0 = time.perf_counter()
    if duckdb is not None:
        con = duckdb.connect()
        # Every column of both files as text (their amount formats differ), joined on
        # the invoice key and materialised, as a report needs both sides' fields.
        con.execute(
            f"""
            CREATE TABLE joined AS
            WITH r AS (SELECT * FROM read_csv('{register}', skip=3, header=true,
                                              all_varchar=true)),
                 b AS (SELECT * FROM read_csv('{bank}', header=true, all_varchar=true))
            SELECT * FROM r FULL OUTER JOIN b ON r."Mã hóa đơn" = b."Invoice"
            """
        )
        rows = con.execute(
            """SELECT "Mã hóa đơn" IS NULL AS no_register, "Invoice" IS NULL AS no_bank,
                      count(*) FROM joined GROUP BY ALL ORDER BY ALL"""
        ).fetchall()
        tool = f"duckdb {duckdb.__version__}"
    else:
        import pandas as pd

        r = pd.read_csv(register, skiprows=3, dtype=str)
        b = pd.read_csv(bank, dtype=str, encoding="utf-8-sig")
        joined = r.merge(b, how="outer", left_on="Mã hóa đơn", right_on="Invoice",
                         indicator=True)
        rows = list(joined["_merge"].value_counts().items())
        tool = f"pandas {pd.__version__}"
    seconds = time.perf_counter() - t0
    return {
        "seconds": round(seconds, 3),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "tool": tool,
        "groups": [[str(c) for c in row] for row in rows],
    }


def _in_child(kind: str, register: str, bank: str, engine: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", kind, "--register", register, "--bank", bank,
           "--engine", engine]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest run, with every run's seconds (the machine may be shared)."""
    best = dict(min(runs, key=lambda r: float(r["seconds"])))
    best["all_seconds"] = [r["seconds"] for r in runs]
    best["peak_rss_mb"] = max(float(r["peak_rss_mb"]) for r in runs)
    return best


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit 1 if the reconciliation missed a planted discrepancy."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=50_000, help="transactions (default 50000)")
    parser.add_argument("--engine", default="auto", choices=("auto", "python", "polars"))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs of each, alternated; the fastest counts (default 1)")
    parser.add_argument("--child", choices=("ecrlink", "join"), help=argparse.SUPPRESS)
    parser.add_argument("--register", help=argparse.SUPPRESS)
    parser.add_argument("--bank", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child == "ecrlink":
        print(json.dumps(_child_ecrlink(args.register, args.bank, args.engine)))
        return 0
    if args.child == "join":
        print(json.dumps(_child_join(args.register, args.bank)))
        return 0
    with tempfile.TemporaryDirectory(prefix="ecrlink-bench-") as tmp:
        t0 = time.perf_counter()
        files = generate(Path(tmp), args.rows, args.seed)
        generated = time.perf_counter() - t0
        ours_runs, join_runs = [], []
        for _ in range(args.repeat):  # alternated, so both see the same machine load
            ours_runs.append(_in_child("ecrlink", files["register"], files["bank"], args.engine))
            join_runs.append(_in_child("join", files["register"], files["bank"], args.engine))
        ours, join = _best(ours_runs), _best(join_runs)
        sizes = {k: os.path.getsize(files[k]) for k in ("register", "bank")}
    correct = all(r["summary"] == files["expected"] for r in ours_runs)
    figures = {
        "rows": {"register": files["register_rows"], "bank": files["bank_rows"]},
        "file_mb": {k: round(v / 1e6, 1) for k, v in sizes.items()},
        "generate_seconds": round(generated, 2),
        "ecrlink": ours,
        "plain_join": join,
        "ratio_time": round(ours["seconds"] / join["seconds"], 2),
        "ratio_time_median": round(
            statistics.median(ours["all_seconds"]) / statistics.median(join["all_seconds"]), 2
        ),
        "ratio_memory": round(ours["peak_rss_mb"] / join["peak_rss_mb"], 2),
        "expected": files["expected"],
        "correct": correct,
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
    }
    print(json.dumps(figures, indent=2, ensure_ascii=False))
    return 0 if correct else 1


if __name__ == "__main__":
    sys.exit(main())
