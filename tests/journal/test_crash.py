"""A register killed with SIGKILL at the worst moments loses and doubles nothing.

On every terminal profile: the documented firmware (no requestId echo) and the echo
one, a terminal that finishes the sale when the register hangs up and one that
cancels, and one that answers ``last trans`` while the customer is still paying.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.journal.crash_harness import PHASES, PROFILES, run


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: "-".join(p.values()))
def test_sigkill_at_every_phase_loses_nothing(tmp_path: Path, profile: dict[str, str]) -> None:
    report = run(runs=len(PHASES), folder=tmp_path, profile=profile)
    assert report.kills == report.runs == len(PHASES), report
    assert set(report.phases) == set(PHASES)
    assert (report.lost, report.doubled, report.phantom) == (0, 0, 0), report
    assert report.unjournaled == 0, report
    # The kills left work for recovery, and last trans settled it.
    assert sum(report.recovered.values()) >= 2, report
    if profile["firmware"] == "v201" and profile["busy_last_trans"] == "refuse":
        assert report.left_in_doubt == 0, report
