"""What the journal costs: a journaled sale vs the same sale without one, side by side.

Both run against one instant simulator over HTTP, in alternating rounds. Also counts
the durable commits per transaction (goal: at most 2) and reports the ratio (goal:
journaled within 1.5x of plain).

    python bench/bench_journal.py [--sales 300] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from ecrlink import Terminal
from ecrlink.journal import Journal
from ecrlink.simulator import Simulator


def main() -> int:
    # Terminals keep their lock files in $ECRLINK_HOME: never the user's own.
    os.environ["ECRLINK_HOME"] = tempfile.mkdtemp(prefix="ecrlink-bench-")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sales", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    per_round = max(1, args.sales // args.rounds)
    with tempfile.TemporaryDirectory() as folder, Simulator(http=("127.0.0.1", 0)) as sim:
        journal = Journal(Path(folder) / "journal.sqlite3")
        commits = 0

        def count(statement: str) -> None:
            nonlocal commits
            commits += statement.strip().upper() == "COMMIT"

        journal._db.set_trace_callback(count)  # the only way to see SQLite's commits
        journaled = Terminal(sim.http_url, journal=journal)
        plain = Terminal(sim.http_url, journal=False)
        samples: dict[str, list[float]] = {"plain": [], "journaled": []}
        for _ in range(args.rounds):
            for name, pos in (("plain", plain), ("journaled", journaled)):
                before = commits
                start = time.perf_counter()
                for i in range(per_round):
                    assert pos.sale(1000 + i * 1000).approved
                samples[name].append((time.perf_counter() - start) / per_round)
                if name == "journaled":
                    per_sale = (commits - before) / per_round
        plain_s = statistics.median(samples["plain"])
        journaled_s = statistics.median(samples["journaled"])
        ratio = journaled_s / plain_s
        print(f"sales: {per_round} x {args.rounds} rounds per contender, instant simulator, HTTP")
        print(f"plain sale        {plain_s * 1e3:7.3f} ms")
        print(f"journaled sale    {journaled_s * 1e3:7.3f} ms")
        verdict = "OK" if ratio <= 1.5 else "OVER GOAL"
        print(f"ratio             {ratio:7.2f}x   {verdict} (<= 1.5x)")
        verdict = "OK" if per_sale <= 2 else "OVER GOAL"
        print(f"commits per sale  {per_sale:7.2f}    {verdict} (<= 2)")
        journaled.close()
        plain.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
