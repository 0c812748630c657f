"""The crash harness at scale: SIGKILL a selling register hundreds of times.

Prints runs, kills, kills per phase, sales that reached the terminal, approvals, and
the figures that must all be zero: lost, doubled, phantom, unjournaled, left in doubt.

    python bench/bench_crash.py [--runs 200] [--seed 1]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.journal.crash_harness import run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as folder:
        report = run(args.runs, Path(folder), seed=args.seed)
    print(f"runs              {report.runs}")
    print(f"kills (SIGKILL)   {report.kills}   by phase: {dict(sorted(report.phases.items()))}")
    print(f"sales at terminal {report.sales_at_terminal}, approved {report.approved}")
    print(f"settled by recovery: {dict(sorted(report.recovered.items()))}")
    print(f"lost              {report.lost}")
    print(f"doubled           {report.doubled}")
    print(f"phantom approvals {report.phantom}")
    print(f"sent unjournaled  {report.unjournaled}")
    print(f"left in doubt     {report.left_in_doubt}")
    verdict = "OK" if report.ok else "FAILED"
    print(f"took              {time.monotonic() - started:.1f} s   {verdict}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
