"""The crash harness at scale: SIGKILL a selling register hundreds of times per profile.

For each terminal profile (firmware × on-hangup × busy-last-trans) prints kills,
sales that reached the terminal, approvals in the terminal's ledger, what recovery
settled, and the figures that must be zero (lost, doubled, phantom, sent unjournaled),
then what stayed in doubt and how long a lane was blocked at worst.

    python bench/bench_crash.py [--runs 200] [--seed 1] [--profile v201-finish-refuse]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.journal.crash_harness import PROFILES, run

COLUMNS = ("profile", "kills", "at term", "approved", "recov ok/no", "lost", "doubled",
           "phantom", "unjournaled", "in doubt", "blocked", "longest s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="kills per profile")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", action="append", help="only these (e.g. v201-finish-refuse)")
    args = parser.parse_args()
    wanted = [p for p in PROFILES if not args.profile or "-".join(p.values()) in args.profile]
    print(" | ".join(COLUMNS))
    ok = True
    for profile in wanted:
        started = time.monotonic()
        with tempfile.TemporaryDirectory() as folder:
            r = run(args.runs, Path(folder), seed=args.seed, profile=profile)
        ok = ok and r.ok
        print(" | ".join(str(v) for v in (
            "-".join(profile.values()), r.kills, r.sales_at_terminal, r.approved,
            f"{r.recovered['approved']}/{r.recovered['declined']}", r.lost, r.doubled,
            r.phantom, r.unjournaled, r.left_in_doubt, r.blocked, f"{r.blocked_longest:.1f}",
        )) + f"   ({time.monotonic() - started:.0f} s, phases {dict(sorted(r.phases.items()))})",
              flush=True)
    print("OK" if ok else "FAILED: a payment was lost, doubled or invented")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
