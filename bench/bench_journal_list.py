"""``ecrlink journal list`` on large journals, beside its own start-up and bare SQLite.

Builds journals of 1,000, 100,000 and 1,000,000 entries (the real schema, made by
``Journal``; rows inserted raw in bulk, every one of them created *today*, Vietnam time:
the worst case for ``--today``, as in issue 11's report of 115 s at 100,000). Built files
are kept in a temporary folder and reused while the schema and the day are the same.

Then, each the median of ``--runs`` fresh processes, interleaved, with wall time and
peak RSS (``os.wait4``, per process):

- ``ecrlink --help``                        the command's own start-up
- ``ecrlink journal list --today``          a page: the newest 50 of today, and the totals
- ``sqlite3`` shell, the same page query    what SQLite alone costs (process and all)
- ``python`` + ``sqlite3``, the same query  a bare script reading the same rows
- on 100,000 also ``journal list --today --all --json > /dev/null`` beside ``sqlite3
  -json`` and a bare Python dump of the same rows (memory must stay flat)

Goal (issue 11): ``journal list --today`` on 1,000,000 entries within 0.3 s of
``ecrlink --help``, memory flat.

    python bench/bench_journal_list.py [--sizes 1000,100000,1000000] [--runs 5] [--cache DIR]
"""

from __future__ import annotations

import argparse
import math
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, NamedTuple, NoReturn

from ecrlink.journal import SCHEMA_VERSION, Journal
from ecrlink.protocol import VIETNAM_TIME

PY = sys.executable
ECRLINK = [PY, "-m", "ecrlink"] if shutil.which("ecrlink") is None else ["ecrlink"]
GOAL_S = 0.3
STATES = ["approved"] * 90 + ["declined"] * 6 + ["canceled"] * 2 + ["failed", "in_doubt"]
TERMINAL = "http://192.168.1.50:80"
PAGE = 50
TIME = sys.platform.startswith("linux") and Path("/usr/bin/time").exists()


def today() -> tuple[datetime, datetime]:
    """Today's bounds, Vietnam time, as ``journal list --today`` computes them."""
    midnight = datetime.combine(datetime.now(VIETNAM_TIME).date(), datetime.min.time(),
                                VIETNAM_TIME)
    return midnight, midnight + timedelta(days=1)


def stamp(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def rows(count: int, start: datetime) -> Iterator[tuple[object, ...]]:
    """``count`` sales spread evenly over the day that begins at ``start``."""
    rng = random.Random(count)
    step = 86_400_000_000 // count  # microseconds
    for i in range(count):
        at = stamp(start + timedelta(microseconds=i * step))
        state = rng.choice(STATES)
        done = state in ("approved", "declined")
        yield (TERMINAL, "sale", state, f"rq{i:08d}", "LANE1", 10_000 + 1_000 * (i % 500),
               f"HD{i:07d}", at, at, f"{i % 1_000_000:06d}" if done else None,
               "970436******1234" if state == "approved" else None,
               "00" if state == "approved" else ("51" if state == "declined" else None))


def build(path: Path, count: int) -> float:
    """A journal of ``count`` entries at ``path``; returns the seconds it took."""
    began = time.perf_counter()
    partial = path.with_suffix(".partial")
    for leftover in path.parent.glob(partial.name + "*"):
        leftover.unlink()
    Journal(partial).close()  # the real schema, at the current version
    db = sqlite3.connect(partial, isolation_level=None)
    # Bulk load: no rollback journal, no fsync; indexes dropped and made again after
    # (from their own definitions), which is faster than keeping them up row by row.
    db.execute("PRAGMA journal_mode=OFF")
    db.execute("PRAGMA synchronous=OFF")
    indexes = db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND "
                         "tbl_name = 'entries' AND sql IS NOT NULL").fetchall()
    for name, _ in indexes:
        db.execute(f"DROP INDEX {name}")
    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO entries (terminal, command, state, request_id, client_id, amount, f3, "
        "created_at, updated_at, receipt_no, card_no, return_code) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows(count, today()[0]),
    )
    for _, sql in indexes:
        db.execute(sql)
    db.execute("COMMIT")
    db.execute("PRAGMA journal_mode=WAL")  # as Journal keeps it
    db.close()
    partial.rename(path)
    return time.perf_counter() - began


def journal_for(cache: Path, count: int) -> tuple[Path, str]:
    """The cached journal of ``count`` entries for today (built if missing)."""
    path = cache / f"journal-{count}-v{SCHEMA_VERSION}-{today()[0].date()}.sqlite3"
    if path.exists():
        return path, "cached"
    for stale in cache.glob(f"journal-{count}-*"):
        stale.unlink()
    return path, f"built in {build(path, count):.1f} s"


class Sample(NamedTuple):
    wall: float
    """Seconds from spawn to exit."""
    cpu: float
    """User + system seconds (steadier than wall time on a busy machine)."""
    rss: float
    """Peak resident memory, MB (nan without GNU time)."""


def run(argv: list[str], env: dict[str, str]) -> Sample:
    """One process, its output thrown away (stderr kept for a failure)."""
    with tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile("r") as peak:
        began = time.perf_counter()
        if not hasattr(os, "wait4"):  # Windows: no per-process rusage
            done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=err)
            if done.returncode:
                fail(argv, done.returncode, err)
            return Sample(time.perf_counter() - began, math.nan, math.nan)
        # The peak RSS comes from GNU time: Linux counts a process's memory before exec
        # in its peak, so a child forked from this (larger) process would report ours.
        timed = ["/usr/bin/time", "-f", "%M", "-o", peak.name] if TIME else []
        proc = subprocess.Popen([*timed, *argv], env=env, stdout=subprocess.DEVNULL,
                                stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - began
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        if code:
            fail(argv, code, err)
        rss = int(peak.read().split()[-1]) / 1024 if TIME else math.nan
    # wait4 counts the child and what it waited for: GNU time's command included.
    return Sample(wall, usage.ru_utime + usage.ru_stime, rss)


def fail(argv: list[str], code: int, err: IO[bytes]) -> NoReturn:
    err.seek(0)
    raise SystemExit(f"{' '.join(argv)} failed ({code}): {err.read()[-500:]!r}")


def queries() -> tuple[str, str, str]:
    """What ``journal list --today`` reads, as plain SQL: the page (the newest 50,
    shown oldest first), the day's count, and every row of the day (``--all``)."""
    since, until = (stamp(t) for t in today())
    window = f"FROM entries WHERE created_at >= '{since}' AND created_at < '{until}'"
    page = (f"SELECT * FROM (SELECT * {window} ORDER BY created_at DESC, id DESC "
            f"LIMIT {PAGE}) ORDER BY created_at, id")
    return page, f"SELECT count(*) {window}", f"SELECT * {window} ORDER BY created_at, id"


def contenders(path: Path, count: int) -> dict[str, list[str]]:
    rows_sql, count_sql, today_all = queries()
    bare_page = (
        "import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); "
        f"rows = db.execute({rows_sql!r}).fetchall(); "
        f"n = db.execute({count_sql!r}).fetchone()[0]; "
        "print(*rows, n, sep='\\n')"
    )
    out = {
        "ecrlink --help (start-up)": [*ECRLINK, "--help"],
        "ecrlink journal list --today": [*ECRLINK, "journal", "list", "--today", "--journal",
                                         str(path)],
        "sqlite3 shell, same page + count": ["sqlite3", str(path), rows_sql + ";",
                                             count_sql + ";"],
        "python + sqlite3, same page + count": [PY, "-c", bare_page, str(path)],
    }
    if count == 100_000:
        bare_all = (
            "import json, sqlite3, sys; db = sqlite3.connect(sys.argv[1]); "
            "db.row_factory = sqlite3.Row; out = sys.stdout; out.write('['); sep = ''\n"
            f"for row in db.execute({today_all!r}):\n"
            "    out.write(sep + json.dumps(dict(row), default=str)); sep = ', '\n"
            "out.write(']\\n')"
        )
        out |= {
            "ecrlink journal list --today --all --json": [
                *ECRLINK, "journal", "list", "--today", "--all", "--json", "--journal",
                str(path)],
            "sqlite3 -json shell, same rows": ["sqlite3", "-json", str(path), today_all + ";"],
            "python + sqlite3 -> json, same rows": [PY, "-c", bare_all, str(path)],
        }
    if shutil.which("sqlite3") is None:
        out = {k: v for k, v in out.items() if not k.startswith("sqlite3")}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,100000,1000000")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cache", type=Path,
                        default=Path(tempfile.gettempdir()) / "ecrlink-bench-journal-list")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="ecrlink-bench-"))
    # Never the user's data; bytecode cached as an installed ecrlink has it (a session
    # may set PYTHONDONTWRITEBYTECODE, which would make every start compile afresh).
    env = {**os.environ, "ECRLINK_HOME": str(home), "ECRLINK_CONFIG": str(home / "no.toml"),
           "COLUMNS": "100"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    verdicts: list[tuple[float, float]] = []
    loads = os.getloadavg() if hasattr(os, "getloadavg") else (math.nan,)
    print(f"{'entries':>9}  {'what':<44} {'wall ms':>8} {'cpu ms':>8} {'peak RSS MB':>12}"
          "  wall vs start-up")
    for count in (int(s) for s in args.sizes.split(",")):
        path, how = journal_for(args.cache, count)
        print(f"{count:>9,}  journal {path.name}: {how}, "
              f"{path.stat().st_size / 2**20:.0f} MB")
        runs = contenders(path, count)
        for argv in runs.values():  # warm-up: bytecode and page cache, as on a used PC
            run(argv, env)
        samples: dict[str, list[Sample]] = {name: [] for name in runs}
        for _ in range(args.runs):
            for name, argv in runs.items():
                samples[name].append(run(argv, env))
        start_up = statistics.median(s.wall for s in samples["ecrlink --help (start-up)"])
        for name, got in samples.items():
            wall = statistics.median(s.wall for s in got)
            cpu = statistics.median(s.cpu for s in got)
            rss = max(s.rss for s in got)
            extra = f"+{(wall - start_up) * 1e3:6.0f} ms" if name.startswith("ecrlink j") else ""
            print(f"{'':>9}  {name:<44} {wall * 1e3:8.0f} {cpu * 1e3:8.0f} {rss:12.1f}  {extra}")
            if name == "ecrlink journal list --today" and count >= 1_000_000:
                cpu_start_up = statistics.median(
                    s.cpu for s in samples["ecrlink --help (start-up)"])
                verdicts.append((wall - start_up, cpu - cpu_start_up))
    for wall_extra, cpu_extra in verdicts:
        print(f"goal: journal list --today on 1,000,000 within {GOAL_S * 1e3:.0f} ms of "
              f"start-up: wall +{wall_extra * 1e3:.0f} ms "
              f"{'OK' if wall_extra <= GOAL_S else 'OVER GOAL'}, "
              f"cpu +{cpu_extra * 1e3:.0f} ms {'OK' if cpu_extra <= GOAL_S else 'OVER GOAL'}")
    if hasattr(os, "getloadavg"):
        # Wall time is only as good as the machine is quiet: 2 busy cores triple it.
        print(f"load average {loads[0]:.1f} at start, {os.getloadavg()[0]:.1f} at end "
              f"({os.cpu_count()} CPUs)")
    shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
