"""Head office's reads: every store's entries streamed through a server-side cursor,
filtered by site, terminal, state, command and dates; totals computed by the server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ecrlink.journal import Journal, State
from ecrlink.journal.central import Central
from ecrlink.journal.sync import sync_once
from ecrlink.simulator import Simulator

from .chain import open_pos, sell


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(http=("127.0.0.1", 0), terminals=2) as simulator:
        yield simulator


@pytest.fixture
def chain(sim: Simulator, tmp_path: Path, central_url: str) -> dict[str, Path]:
    """Two stores that synced: STORE1 sold 8 on terminal 0, STORE2 6 on terminal 1."""
    stores = {"STORE1": (0, 8), "STORE2": (1, 6)}
    paths = {}
    for site, (index, count) in stores.items():
        path = paths[site] = tmp_path / f"{site}.sqlite3"
        with open_pos(sim.http_urls[index], path, site) as pos:
            sell(pos, count)
        sync_once(path, central_url, site)
    return paths


def _local(paths: dict[str, Path], **filters: object) -> list[tuple[str, int]]:
    found = []
    for site, path in paths.items():
        with Journal(path, create=False) as j:
            found += [(site, e.id) for e in j.entries(**filters)]  # type: ignore[arg-type]
    return sorted(found)


def test_filters_match_the_store_journals(
    chain: dict[str, Path], sim: Simulator, central_url: str
) -> None:
    with Central.open(central_url, create=False) as central:
        def ids(**filters: object) -> list[tuple[str, int]]:
            return sorted((r.site, r.entry.id) for r in central.entries(**filters))  # type: ignore[arg-type]

        assert len(ids()) == 14
        assert ids(sites=["STORE2"]) == [("STORE2", i) for i in range(1, 7)]
        assert ids(terminal=sim.http_urls[0]) == _local(chain, terminal=sim.http_urls[0])
        approved = [State.APPROVED]
        assert ids(states=approved) == _local(chain, states=approved)
        assert ids(states=[State.DECLINED], sites=["STORE1"]) == [
            (s, i) for s, i in _local(chain, states=[State.DECLINED]) if s == "STORE1"
        ]
        assert ids(commands=["void"]) == []
        with Journal(chain["STORE1"], create=False) as j:
            third = list(j.entries())[3].created_at
        assert ids(since=third, sites=["STORE1"]) == [("STORE1", i) for i in range(4, 9)]
        assert ids(until=third, sites=["STORE1"]) == [("STORE1", i) for i in range(1, 4)]
        later = datetime.now(UTC) + timedelta(days=1)
        assert ids(since=later) == []
        times = [r.entry.created_at for r in central.entries()]
        assert times == sorted(times)


def test_entries_stream_through_a_server_side_cursor(
    chain: dict[str, Path], central_url: str
) -> None:
    with Central.open(central_url, create=False) as central:
        rows = central.entries(batch=3)
        first = next(rows)
        # While the caller holds one row, the rest are still in the server's cursor.
        open_cursors = central.conn.execute("SELECT name FROM pg_cursors").fetchall()
        assert ("ecrlink_entries",) in open_cursors
        assert len([first, *rows]) == 14
        assert central.conn.execute("SELECT count(*) FROM pg_cursors").fetchone() == (0,)


def test_totals_per_site_and_mid(chain: dict[str, Path], central_url: str) -> None:
    with Central.open(central_url, create=False) as central:
        totals = central.totals(states=[State.APPROVED])
        sites = central.sites()
    expected: dict[tuple[str, str | None], tuple[int, int, int]] = {}
    for site, path in chain.items():
        with Journal(path, create=False) as j:
            for e in j.entries(states=[State.APPROVED]):
                count, amount, charged = expected.get((site, e.mid), (0, 0, 0))
                expected[(site, e.mid)] = (
                    count + 1, amount + (e.amount or 0), charged + (e.charged_amount or 0)
                )
    assert {(t.site, t.mid): (t.count, t.amount, t.charged) for t in totals} == expected
    assert [s.site for s in sites] == ["STORE1", "STORE2"]
    assert all(s.shipped > 0 for s in sites)
