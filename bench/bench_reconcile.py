"""Reconciliation beside DuckDB and polars doing a plain join of the same files, and
beside a floor: polars reading only what the rules read.

    python bench/bench_reconcile.py                   # 10k, 100k, 1M rows; CSV and XLSX
    python bench/bench_reconcile.py --sizes 100000    # one size
    python bench/bench_reconcile.py --big             # also 10M rows (minutes, ~20 GB disk)

Generates a register side (the POS's invoice list: a title block above Vietnamese
headers, amounts written ``1.234.567``) and a bank side (the simulator's statement)
with discrepancies of every category planted at known counts, as CSV, and at 100k
rows also as XLSX. Then runs, each in its own process (so its peak memory is its
own), alternating, the same work three ways (plus the floor, below):

- ``json``: ``ecrlink reconcile --json`` (read both, every key, voids, duplicates,
  every row written as JSON to a file), against DuckDB and polars each doing a full
  outer join on invoice + amount and writing every joined row as JSON to a file;
- ``summary``: ``ecrlink reconcile`` (counts and totals per category, the first
  discrepancies), against the same joins reduced to counts;
- ``xlsx`` (100k): ``ecrlink reconcile --json`` on XLSX files, against polars reading
  them with calamine (``pl.read_excel``), joining and writing JSON. (DuckDB reads
  XLSX only through an extension it downloads: not here.)

The goals (``GOALS``, issue 14) compare ecrlink's whole rule set, which parses every
column the rules read, with a bare join that reads two columns a side. The ``floor``
contender shows what reading the rules' columns alone costs: polars parsing the seven
columns a side the rules need (invoice, date, amount, card's last 4, approval code,
RRN, type), one full outer join on invoice + amount, then the same output as the
baselines (summary: counts that use every parsed column, so none is pruned; JSON:
every raw and parsed column). It does less than ecrlink (one key, no voids, no
duplicates): a floor for a polars program that applies the rules. The table shows
ecrlink ÷ floor beside ecrlink ÷ faster (the goal's ratio).

Times are wall clock of the whole process (start-up and imports included, for
everyone), best of ``--repeat``; memory is the process's peak RSS. ecrlink's answer
is checked against the planted counts. Prints a table (Markdown) and, with
``--json``, the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

__all__ = ["generate", "main", "run_reconcile"]

BANK_HEADER = (
    "Transaction date,TID,MID,Card number,Amount,Approval code,RRN,Invoice,Reference,"
    "Batch,Receipt,Type"
)
REGISTER_TITLE = "BÁO CÁO HÓA ĐƠN THANH TOÁN THẺ\nCửa hàng: Chuỗi siêu thị ABC\n\n"
REGISTER_HEADER = "Mã hóa đơn,Ngày,Số tiền,Số thẻ,Mã chuẩn chi,Số tham chiếu,Loại"
TITLE_ROWS = 3

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
SIZES = (10_000, 100_000, 1_000_000)
BIG = 10_000_000
XLSX_SIZE = 100_000


def _vn(amount: int) -> str:
    return f"{amount:,}".replace(",", ".")


def generate(directory: Path, rows: int, seed: int = 7) -> dict[str, Any]:
    """Write ``register.csv`` and ``bank.csv`` (streamed: any size fits in memory);
    return their paths and the expected category counts."""
    rng = random.Random(seed)
    start = datetime(2026, 3, 1, 8, 0, 0)
    step = timedelta(days=30) / rows
    expected = dict.fromkeys(
        ("matched", "amount_mismatch", "ecr_only", "bank_only", "duplicate", "voided"), 0
    )
    register = directory / "register.csv"
    bank = directory / "bank.csv"
    counts = {"register": 0, "bank": 0}
    receipts = [0] * 64
    cuts: list[tuple[float, str]] = []
    acc = 0.0
    for name, share in PLANTED.items():
        acc += share
        cuts.append((acc, name))
    with open(register, "w", encoding="utf-8", newline="\n") as reg_out, \
            open(bank, "w", encoding="utf-8-sig", newline="\n") as bank_out:
        reg_out.write(REGISTER_TITLE + REGISTER_HEADER + "\n")
        bank_out.write(BANK_HEADER + "\n")

        def reg_line(line: str) -> None:
            reg_out.write(line + "\n")
            counts["register"] += 1

        def bank_line(line: str) -> None:
            bank_out.write(line + "\n")
            counts["bank"] += 1

        def bank_row(when: datetime, tid: int, card: str, amount: int, approval: str,
                     rrn: str, invoice: str, kind: str) -> None:
            receipts[tid] += 1
            bank_line(
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
            reg = (f"{invoice},{when:%Y-%m-%dT%H:%M:%S},{_vn(amount)},{reg_card},{approval},"
                   f"{rrn},Bán")
            if case == "ecr_only":
                reg_line(reg)
                expected["ecr_only"] += 1
            elif case == "bank_only":
                bank_row(when, tid, card, amount, approval, rrn, f"X{n:08d}", "SALE")
                expected["bank_only"] += 1
            elif case == "amount_mismatch":
                reg_line(reg)
                bank_row(when, tid, card, amount + 1000, approval, rrn, invoice, "SALE")
                expected["amount_mismatch"] += 1
            elif case == "duplicate":
                reg_line(reg)
                bank_row(when, tid, card, amount, approval, rrn, invoice, "SALE")
                later = when + timedelta(minutes=2)
                bank_row(later, tid, card, amount, f"{rng.randrange(1_000_000):06d}",
                         f"7{rrn[1:]}", invoice, "SALE")
                expected["matched"] += 1
                expected["duplicate"] += 1
            elif case == "voided":
                reg_line(reg)
                reg_line(reg.replace(",Bán", ",Hủy"))
                bank_row(when, tid, card, amount, approval, rrn, invoice, "SALE")
                bank_row(when + timedelta(minutes=1), tid, card, amount, approval,
                         f"8{rrn[1:]}", invoice, "VOID")
                expected["voided"] += 1
            elif case == "by_card_approval":
                reg_line(reg)
                bank_row(when, tid, card, amount, approval, rrn, "", "SALE")
                expected["matched"] += 1
            elif case == "by_ref_no":
                reg_line(reg)
                bank_line(
                    f"{when:%d/%m/%Y %H:%M:%S},{31000000 + tid},000000100091555,,{amount},,"
                    f"{rrn},,,000001,{n % 999999:06d},SALE"
                )
                expected["matched"] += 1
            else:
                reg_line(reg)
                bank_row(when, tid, card, amount, approval, rrn, invoice, "SALE")
                expected["matched"] += 1
    return {
        "register": str(register),
        "bank": str(bank),
        "register_rows": counts["register"],
        "bank_rows": counts["bank"],
        "expected": expected,
    }


def to_xlsx(csv_path: str, xlsx_path: str, *, skip: int = 0) -> None:
    """The same file as a merchant portal's XLSX: amounts of the bank as numbers."""
    import csv

    import xlsxwriter

    book = xlsxwriter.Workbook(xlsx_path, {"constant_memory": True})
    sheet = book.add_worksheet("Sheet1")
    with open(csv_path, encoding="utf-8-sig", newline="") as fh:
        for r, row in enumerate(csv.reader(fh)):
            for c, cell in enumerate(row):
                if r > skip and cell.isdigit() and c == 4 and skip == 0:
                    sheet.write_number(r, c, int(cell))
                elif cell:
                    sheet.write_string(r, c, cell)
    book.close()


# --- the contenders, each run as a child process ---------------------------------------------


def _child(kind: str, mode: str, register: str, bank: str, out: str) -> None:
    """Do one contender's work; the parent times the whole process."""
    if kind == "ecrlink":
        args = ["reconcile", "--bank", bank, "--invoices", register]
        run_reconcile([*args, "--json"] if mode in ("json", "xlsx") else args, out)
        return
    if kind == "polars":
        import polars as pl

        if mode == "xlsx":
            r = pl.read_excel(register, engine="calamine", infer_schema_length=0,
                              read_options={"header_row": TITLE_ROWS})
            b = pl.read_excel(bank, engine="calamine", infer_schema_length=0)
            lr, lb = r.lazy(), b.lazy()
        else:
            lr = pl.scan_csv(register, skip_rows=TITLE_ROWS, infer_schema=False)
            lb = pl.scan_csv(bank, infer_schema=False)
        lr = lr.with_columns(pl.col("Số tiền").str.replace_all(".", "", literal=True)
                             .cast(pl.Int64).alias("_amount"))
        lb = lb.with_columns(pl.col("Amount").cast(pl.Int64).alias("_amount"))
        joined = lr.join(lb, left_on=["Mã hóa đơn", "_amount"], right_on=["Invoice", "_amount"],
                         how="full", coalesce=False)
        if mode == "summary":
            counts = joined.select(pl.col("Mã hóa đơn").is_null().alias("no_register"),
                                   pl.col("Invoice").is_null().alias("no_bank"))
            counts.group_by("no_register", "no_bank").len().collect()
        else:
            joined.sink_ndjson(out)
        return
    if kind == "floor":
        _floor(mode, register, bank, out)
        return
    if kind == "duckdb":
        import duckdb

        con = duckdb.connect()
        query = f"""
            WITH r AS (SELECT *, replace("Số tiền", '.', '')::BIGINT AS _amount
                       FROM read_csv('{register}', skip={TITLE_ROWS}, header=true,
                                     all_varchar=true)),
                 b AS (SELECT *, "Amount"::BIGINT AS _amount_b
                       FROM read_csv('{bank}', header=true, all_varchar=true))
            SELECT * FROM r FULL OUTER JOIN b
            ON r."Mã hóa đơn" = b."Invoice" AND r._amount = b._amount_b"""
        if mode == "summary":
            con.execute(f"""SELECT "Mã hóa đơn" IS NULL, "Invoice" IS NULL, count(*)
                            FROM ({query}) GROUP BY ALL""").fetchall()
        else:
            con.execute(f"COPY ({query}) TO '{out}' (FORMAT json)")
        return
    raise SystemExit(f"unknown contender {kind}")


# Per side, the columns the rules read: invoice, date (and its format), amount, card
# number, approval code, RRN, type (and the file's words for sale and void).
FLOOR_COLUMNS = {
    "register": ("Mã hóa đơn", "Ngày", "%Y-%m-%dT%H:%M:%S", "Số tiền", "Số thẻ",
                 "Mã chuẩn chi", "Số tham chiếu", "Loại", {"Bán": "sale", "Hủy": "void"}),
    "bank": ("Invoice", "Transaction date", "%d/%m/%Y %H:%M:%S", "Amount", "Card number",
             "Approval code", "RRN", "Type", {"SALE": "sale", "VOID": "void"}),
}  # fmt: skip


def _floor(mode: str, register: str, bank: str, out: str) -> None:
    """The floor: polars parsing the columns the rules read, one join on invoice +
    amount, no rules; the summary consumes every parsed column so none is pruned."""
    import polars as pl

    if mode == "xlsx":
        frames = {
            "register": pl.read_excel(register, engine="calamine", infer_schema_length=0,
                                      read_options={"header_row": TITLE_ROWS}).lazy(),
            "bank": pl.read_excel(bank, engine="calamine", infer_schema_length=0).lazy(),
        }
    else:
        frames = {"register": pl.scan_csv(register, skip_rows=TITLE_ROWS, infer_schema=False),
                  "bank": pl.scan_csv(bank, infer_schema=False)}  # fmt: skip
    parsed: dict[str, pl.LazyFrame] = {}
    for side, frame in frames.items():
        invoice, date, fmt, amount, card, approval, rrn, kind, words = FLOOR_COLUMNS[side]
        money = pl.col(amount)
        if side == "register":  # written 1.234.567
            money = money.str.replace_all(".", "", literal=True)
        parsed[side] = frame.with_columns(
            pl.col(invoice).str.to_uppercase().alias(f"{side}_invoice"),
            pl.col(date).str.strptime(pl.Datetime("us"), fmt).alias(f"{side}_at"),
            money.cast(pl.Int64).alias(f"{side}_amount"),
            pl.col(card).str.slice(-4).alias(f"{side}_last4"),
            pl.col(approval).str.to_uppercase().alias(f"{side}_approval"),
            pl.col(rrn).str.to_uppercase().alias(f"{side}_rrn"),
            pl.col(kind).replace_strict(words, return_dtype=pl.String).alias(f"{side}_kind"),
        )
    joined = parsed["register"].join(
        parsed["bank"], left_on=["register_invoice", "register_amount"],
        right_on=["bank_invoice", "bank_amount"], how="full", coalesce=False,
    )
    if mode != "summary":
        joined.sink_ndjson(out)
        return
    used: list[pl.Expr] = []
    for side in ("register", "bank"):
        used += [
            pl.col(f"{side}_at").dt.epoch("s").sum().alias(f"{side}_at"),
            pl.col(f"{side}_amount").sum(),
            *(pl.col(f"{side}_{name}").str.len_bytes().sum()
              for name in ("last4", "approval", "rrn")),
            pl.col(f"{side}_kind").count(),
        ]
    joined.group_by(pl.col("register_invoice").is_null().alias("no_register"),
                    pl.col("bank_invoice").is_null().alias("no_bank")).agg(
        pl.len(), *used).collect()


def run_reconcile(args: list[str], out: str) -> None:
    """``ecrlink <args>`` in this process, its standard output to the file ``out``;
    exit 0 or 10 (discrepancies) is success."""
    from ecrlink.cli import cli

    with open(out, "w", encoding="utf-8", buffering=1 << 20) as fh:
        sys.stdout = fh
        try:
            cli.main(args, prog_name="ecrlink")
        except SystemExit as exc:
            if exc.code not in (0, 10):
                raise
        finally:
            sys.stdout = sys.__stdout__


def _compile_ecrlink() -> None:
    """ecrlink's bytecode, as an installed copy has it: polars and DuckDB come compiled
    from their wheels, and a shell with ``PYTHONDONTWRITEBYTECODE`` (or a read-only
    checkout) would otherwise make every ecrlink run compile its modules again."""
    import compileall

    import ecrlink

    compileall.compile_dir(str(Path(ecrlink.__file__).parent), quiet=1)


def _peak_rss_mb() -> float:
    # ru_maxrss is in kilobytes on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run(kind: str, mode: str, files: dict[str, str], out: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", kind, "--mode", mode,
           "--register", files["register"], "--bank", files["bank"], "--out", out]
    # A private data directory: ecrlink must not read (or lend from) the user's journal.
    env = {**os.environ, "ECRLINK_HOME": str(Path(out).parent / "home")}
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{kind} {mode} failed:\n{done.stderr[-3000:]}")
    peak = float(done.stderr.strip().splitlines()[-1])
    return {"seconds": seconds, "peak_mb": peak}


def _summary_of(path: str) -> dict[str, int]:
    """The summary at the head of ecrlink's JSON document."""
    with open(path, encoding="ascii") as fh:
        head = fh.read(4096)
    doc = json.loads(head[: head.index(', "rows": [')] + "}")
    return {name: t["count"] for name, t in doc["summary"].items()}


CONTENDERS = {"json": ("ecrlink", "duckdb", "polars", "floor"),
              "summary": ("ecrlink", "duckdb", "polars", "floor"),
              "xlsx": ("ecrlink", "polars", "floor")}  # fmt: skip
BASELINES = ("duckdb", "polars")  # what the goals are measured against
GOALS = {"json": 1.5, "summary": 1.3, "xlsx": 1.5}


def _measure(size: int, mode: str, files: dict[str, Any], tmp: Path,
             repeat: int) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in CONTENDERS[mode]}
    correct = True
    for _ in range(repeat):  # alternated, so all see the same machine load
        for kind in CONTENDERS[mode]:
            out = str(tmp / f"out-{kind}-{mode}.json")
            runs[kind].append(_run(kind, mode, files, out))
            if kind == "ecrlink" and mode != "summary":
                correct &= _summary_of(out) == files["expected"]
            Path(out).unlink(missing_ok=True)
    best = {
        kind: {"seconds": round(min(r["seconds"] for r in rs), 2),
               "all_seconds": [round(r["seconds"], 2) for r in rs],
               "peak_mb": round(max(r["peak_mb"] for r in rs))}
        for kind, rs in runs.items()
    }  # fmt: skip
    fastest = min(v["seconds"] for k, v in best.items() if k in BASELINES)
    ratio = best["ecrlink"]["seconds"] / fastest
    floor_ratio = best["ecrlink"]["seconds"] / best["floor"]["seconds"]
    return {
        "size": size, "mode": mode, "rows": [files["register_rows"], files["bank_rows"]],
        "contenders": best, "ratio": round(ratio, 2),
        "floor_ratio": round(floor_ratio, 2), "goal": GOALS[mode],
        "met": ratio <= GOALS[mode], "correct": correct,
    }  # fmt: skip


def _table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| rows a side | work | ecrlink | DuckDB | polars | floor | ecrlink ÷ faster "
        "| ecrlink ÷ floor | goal |",
        "| ---: | --- | --- | --- | --- | --- | ---: | ---: | ---: |",
    ]

    def cell(r: dict[str, Any], kind: str) -> str:
        v = r["contenders"].get(kind)
        return f"{v['seconds']:.2f} s, {v['peak_mb']:,} MB" if v else "n/a"

    for r in results:
        work = {"json": "CSV → every row as JSON", "summary": "CSV → summary",
                "xlsx": "XLSX → every row as JSON"}[r["mode"]]  # fmt: skip
        flag = "" if r["correct"] else " (WRONG COUNTS)"
        lines.append(
            f"| {r['rows'][0]:,} × {r['rows'][1]:,} | {work}{flag} | {cell(r, 'ecrlink')} | "
            f"{cell(r, 'duckdb')} | {cell(r, 'polars')} | {cell(r, 'floor')} | "
            f"{r['ratio']:.2f}× | {r['floor_ratio']:.2f}× | "
            f"{'≤' if r['met'] else '>'} {r['goal']}× |"
        )
    by_size = {r["size"]: r["contenders"]["ecrlink"]["seconds"]
               for r in results if r["mode"] == "json"}  # fmt: skip
    if len(by_size) > 1:
        per = ", ".join(f"{n:,}: {s / n * 1e6:.2f} s" for n, s in sorted(by_size.items()))
        lines.append("")
        lines.append(f"ecrlink, CSV → JSON, seconds per million rows: {per}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit 1 if ecrlink missed a planted discrepancy."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")],
                        default=list(SIZES), help="rows a side, comma-separated")
    parser.add_argument("--big", action="store_true", help=f"also {BIG:,} rows (once)")
    parser.add_argument("--no-xlsx", action="store_true", help="skip the XLSX comparison")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each (best counts)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--register", help=argparse.SUPPRESS)
    parser.add_argument("--bank", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child == "generate":
        files = generate(Path(args.out), args.rows, args.seed)
        if args.mode == "xlsx":
            for side, skip in (("register", TITLE_ROWS), ("bank", 0)):
                xlsx_path = str(Path(args.out) / f"{side}.xlsx")
                to_xlsx(files[side], xlsx_path, skip=skip)
                files[f"{side}_xlsx"] = xlsx_path
        print(json.dumps(files))
        return 0
    if args.child:
        try:
            _child(args.child, args.mode, args.register, args.bank, args.out)
        finally:
            print(_peak_rss_mb(), file=sys.stderr)
        return 0
    sizes = sorted(set(args.sizes + ([BIG] if args.big else [])))
    _compile_ecrlink()
    results: list[dict[str, Any]] = []
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="ecrlink-bench-") as tmp:
            # Generated in a child: this process stays small, and a child's peak
            # memory on Linux starts from its parent's.
            xlsx = size == XLSX_SIZE and not args.no_xlsx
            made = subprocess.run(
                [sys.executable, __file__, "--child", "generate", "--rows", str(size),
                 "--seed", str(args.seed), "--out", tmp, "--mode", "xlsx" if xlsx else "csv"],
                capture_output=True, text=True, check=True,
            )
            files = json.loads(made.stdout)
            repeat = 1 if size >= BIG else args.repeat
            for mode in ("json", "summary"):
                results.append(_measure(size, mode, files, Path(tmp), repeat))
                print(_table(results[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
            if xlsx:
                as_xlsx = {**files, "register": files["register_xlsx"],
                           "bank": files["bank_xlsx"]}
                results.append(_measure(size, "xlsx", as_xlsx, Path(tmp), repeat))
                print(_table(results[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}; best of {args.repeat} "
          "(10M: one run); wall time of the whole process, peak RSS\n")
    print(_table(results))
    if args.json:
        print(json.dumps(results, indent=2))
    return 0 if all(r["correct"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
