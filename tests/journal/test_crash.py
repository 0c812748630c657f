"""A register killed with SIGKILL at the worst moments loses and doubles nothing."""

from __future__ import annotations

from pathlib import Path

from tests.journal.crash_harness import PHASES, run


def test_sigkill_at_every_phase_loses_nothing(tmp_path: Path) -> None:
    report = run(runs=12, folder=tmp_path)
    assert report.kills == report.runs == 12
    assert set(report.phases) == set(PHASES)
    assert report.approved >= 12  # every child got at least one sale through
    assert (report.lost, report.doubled, report.phantom) == (0, 0, 0), report
    assert (report.unjournaled, report.left_in_doubt) == (0, 0), report
    # The kills did leave work for recovery: approvals whose reply was never recorded,
    # and requests that died before or while reaching the terminal.
    assert report.recovered["approved"] >= report.phases["after_reply"]
    assert report.recovered["declined"] >= report.phases["before_send"]
