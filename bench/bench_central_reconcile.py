"""Head office's reconcile straight from PostgreSQL beside the same from CSV (issue 13).

    python bench/bench_central_reconcile.py                  # 1,000,000 payments, 20 stores
    python bench/bench_central_reconcile.py --payments 100000 --repeat 3

Generates the payments once with ``bench_reconcile.generate`` (an invoice list and a
bank statement with every category planted), then writes the same payments, as the
stores' journals would hold them, straight into a throwaway PostgreSQL's
``ecrlink_chain`` tables with COPY (a sync would take far longer than what is
measured): ``--stores`` stores, each TID in one store, voids naming their sale's
receipt number. The server is ``tests/pgserver.py``'s (initdb/pg_ctl in a temporary
folder, 127.0.0.1, a free port), stopped at the end even on error.

Then runs, each in its own process (so its peak memory is its own), alternating, best
of ``--repeat``:

- ``ecrlink reconcile --journal postgresql://… --bank bank.csv`` (head office: every
  store, per-site and per-MID totals), summary and ``--json`` to a file;
- ``ecrlink reconcile --invoices register.csv --bank bank.csv``, the same two ways.

Times are wall clock of the whole process (start-up and imports included); memory is
its peak RSS. Both answers are checked against the planted counts. Prints the
machine's load before and after, and a Markdown table with the ratio against the
goal (PostgreSQL within 1.5x of CSV).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from bench_reconcile import REGISTER_TITLE, _peak_rss_mb, generate, run_reconcile  # noqa: E402
from pgserver import PgServer, find_bindir  # noqa: E402

GOAL = 1.5
MODES = ("summary", "json")
CONTENDERS = ("postgresql", "csv")
MID = "000000100091555"
TIDS = 64
"""``generate`` spreads payments over 64 TIDs (31000000 + n % 64): a TID is one store's."""
BLOCK = 200_000


def _store_of(tid: int, stores: int) -> str:
    return f"STORE{tid % stores:02d}"


def load_central(url: str, register: str, stores: int) -> int:
    """The invoice list's payments as head office holds them after every store's
    sync: approved sales, approved voids naming the receipt of their sale. Returns
    how many entries were written."""
    import polars as pl
    import psycopg

    from ecrlink.journal.central import Central

    with Central.open(url):
        pass  # the schema, as a store's first sync makes it
    title_rows = REGISTER_TITLE.count("\n")
    frame = pl.read_csv(register, skip_rows=title_rows, infer_schema=False)
    frame.columns = ["invoice", "at", "amount", "card", "approval", "rrn", "kind"]
    void = pl.col("kind") == "Hủy"
    n = pl.col("invoice").str.slice(2).cast(pl.Int64)
    tid = n % TIDS
    receipt = (n + 1).cast(pl.String).str.zfill(6)
    at = pl.col("at") + "+07:00"
    entries = frame.select(
        pl.format("STORE{}", (tid % stores).cast(pl.String).str.zfill(2)).alias("site"),
        (pl.int_range(pl.len(), dtype=pl.Int64) + 1).alias("id"),
        pl.lit(1, pl.Int64).alias("change"),
        pl.format("http://10.0.{}.1:8080", tid.cast(pl.String)).alias("terminal"),
        pl.when(void).then(pl.lit("void")).otherwise(pl.lit("sale")).alias("command"),
        pl.lit("approved").alias("state"),
        pl.format("{}", pl.int_range(pl.len())).alias("request_id"),
        pl.lit("QUAY1").alias("client_id"),
        pl.col("amount").str.replace_all(".", "", literal=True).cast(pl.Int64),
        pl.lit("").alias("f1"), pl.lit("").alias("f2"),
        pl.when(void).then(pl.lit("")).otherwise(pl.col("invoice")).alias("f3"),
        pl.lit("").alias("f4"), pl.lit("").alias("f5"),
        at.alias("created_at"), at.alias("updated_at"),
        pl.when(void).then(pl.lit("9") + receipt).otherwise(receipt).alias("receipt_no"),
        pl.when(void).then(receipt).otherwise(None).alias("void_of"),
        pl.col("approval").alias("approval_code"),
        pl.col("rrn").alias("ref_no"),
        pl.col("card").alias("card_no"),
        (tid + 31000000).cast(pl.String).alias("tid"),
        pl.lit(MID).alias("mid"),
        (1 + tid % 9).cast(pl.String).str.zfill(6).alias("batch_no"),
        at.alias("trans_time"),
    )  # fmt: skip
    columns = ", ".join(entries.columns)
    with psycopg.connect(url, autocommit=True) as conn:
        with conn.cursor() as cur:
            for s in range(stores):
                cur.execute(
                    "INSERT INTO ecrlink_chain.sites (site, journal) VALUES (%s, %s)",
                    (f"STORE{s:02d}", f"bench-{s}"),
                )
            with cur.copy(f"COPY ecrlink_chain.entries ({columns}) FROM STDIN (FORMAT csv)") \
                    as copy:
                for start in range(0, entries.height, BLOCK):
                    buffer = io.BytesIO()
                    entries.slice(start, BLOCK).write_csv(buffer, include_header=False)
                    copy.write(buffer.getvalue())
        conn.execute("ANALYZE ecrlink_chain.entries")
    return entries.height


def _child(kind: str, mode: str, files: dict[str, str], out: str) -> None:
    """One contender's run; the parent times the whole process."""
    side = (["--journal", files["url"]] if kind == "postgresql"
            else ["--invoices", files["register"]])
    args = ["reconcile", "--bank", files["bank"], *side, "--lang", "en"]
    run_reconcile([*args, "--json"] if mode == "json" else args, out)


def _summary_of(path: str) -> dict[str, int]:
    """The counts of the JSON report's summary (head office puts totals before rows)."""
    with open(path, encoding="utf-8") as fh:
        head = fh.read(1 << 16)
    at = head.index('"summary": ') + len('"summary": ')
    summary, _ = json.JSONDecoder().raw_decode(head, at)
    return {name: t["count"] for name, t in summary.items()}


def _run(kind: str, mode: str, files: dict[str, str], out: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", kind, "--mode", mode,
           "--files", json.dumps(files), "--out", out]
    env = {**os.environ, "ECRLINK_HOME": str(Path(out).parent / "home")}
    env.pop("ECRLINK_JOURNAL", None)
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{kind} {mode} failed:\n{done.stderr[-3000:]}")
    return {"seconds": seconds, "peak_mb": float(done.stderr.strip().splitlines()[-1])}


def _measure(files: dict[str, Any], tmp: Path, repeat: int) -> list[dict[str, Any]]:
    results = []
    for mode in MODES:
        runs: dict[str, list[dict[str, Any]]] = {k: [] for k in CONTENDERS}
        correct = True
        for _ in range(repeat):  # alternated: both see the same machine
            for kind in CONTENDERS:
                out = str(tmp / f"out-{kind}-{mode}.txt")
                runs[kind].append(_run(kind, mode, files, out))
                if mode == "json":
                    correct &= _summary_of(out) == files["expected"]
                Path(out).unlink(missing_ok=True)
        best = {k: {"seconds": min(r["seconds"] for r in rs),
                    "all": [round(r["seconds"], 2) for r in rs],
                    "peak_mb": max(r["peak_mb"] for r in rs)} for k, rs in runs.items()}
        ratio = best["postgresql"]["seconds"] / best["csv"]["seconds"]
        results.append({"mode": mode, "best": best, "ratio": ratio, "correct": correct})
        print(_table(files, results[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    return results


def _table(files: dict[str, Any], results: list[dict[str, Any]]) -> str:
    lines = [
        "| payments × statement rows | work | from PostgreSQL | from CSV | PG ÷ CSV | goal |",
        "| ---: | --- | --- | --- | ---: | ---: |",
    ]
    for r in results:
        work = {"summary": "summary", "json": "every row as JSON"}[r["mode"]]
        flag = "" if r["correct"] else " (WRONG COUNTS)"
        cells = [f"{r['best'][k]['seconds']:.2f} s, {r['best'][k]['peak_mb']:,.0f} MB"
                 for k in CONTENDERS]
        lines.append(
            f"| {files['register_rows']:,} × {files['bank_rows']:,} | {work}{flag} | "
            f"{cells[0]} | {cells[1]} | {r['ratio']:.2f}× | "
            f"{'≤' if r['ratio'] <= GOAL else '>'} {GOAL}× |"
        )
    return "\n".join(lines)


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit 1 if either side missed a planted discrepancy."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--payments", type=int, default=1_000_000)
    parser.add_argument("--stores", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each (best counts)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--files", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        try:
            _child(args.child, args.mode, json.loads(args.files), args.out)
        finally:
            print(_peak_rss_mb(), file=sys.stderr)
        return 0
    if not 1 <= args.stores <= TIDS:
        raise SystemExit(f"--stores: 1 to {TIDS} (a TID belongs to one store)")
    bindir = find_bindir()
    if bindir is None:
        raise SystemExit("no PostgreSQL binaries (initdb, pg_ctl): apt-get install postgresql")
    root = Path(tempfile.mkdtemp(prefix="ecrlink-bench-central-"))
    server = PgServer(bindir)
    try:
        began = time.perf_counter()
        files: dict[str, Any] = generate(root, args.payments, args.seed)
        made = time.perf_counter()
        server.start()
        files["url"] = server.create_database()
        written = load_central(files["url"], files["register"], args.stores)
        print(f"PostgreSQL {bindir.parent.name} on 127.0.0.1:{server.port}; files generated "
              f"in {made - began:.0f} s, {written:,} entries of {args.stores} stores copied "
              f"in {time.perf_counter() - made:.0f} s", flush=True)
        print(f"before: {_load()}", flush=True)
        results = _measure(files, root, args.repeat)
        print(f"after: {_load()}")
        print(f"Python {sys.version.split()[0]}; best of {args.repeat}; wall time of the "
              "whole process, peak RSS\n")
        print(_table(files, results))
        print("\nall runs (s): " + "; ".join(
            f"{r['mode']} {k} {r['best'][k]['all']}" for r in results for k in CONTENDERS))
    finally:
        server.destroy()
        shutil.rmtree(root, ignore_errors=True)
    return 0 if all(r["correct"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
