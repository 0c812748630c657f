"""``ecrlink journal list --journal postgresql://central… [--site S]``: head office reads
every store's payments, as each store's own journal lists them.

Two stores sell on their own real simulators, ship with ``sync_once`` to a database on
the session's real PostgreSQL server, and each list at head office is compared with
the same list from the store's own SQLite journal.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from ecrlink.cli import cli
from ecrlink.journal import open_journal
from ecrlink.journal.sync import sync_once
from ecrlink.simulator import Simulator
from tests.pgserver import PgServer

from .chain import sell_interleaved

SITES = ("STORE42", "Q7-NGUYEN.TRAI")


@pytest.fixture(scope="module")
def chain(
    pg_server: PgServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, dict[str, Path]]]:
    """Head office's URL and each store's journal: 6, then 7, then 3 more sales, so the
    two stores' entries interleave in time."""
    root = tmp_path_factory.mktemp("stores")
    journals = {site: root / f"{site}.sqlite3" for site in SITES}
    with Simulator(http=("127.0.0.1", 0)) as a, Simulator(http=("127.0.0.1", 0)) as b:
        sell_interleaved(a.http_url, b.http_url, (journals[SITES[0]], journals[SITES[1]]))
    pg_server.start()
    url = pg_server.create_database()
    for site, journal in journals.items():
        sync_once(journal, url, site, batch=4)
    yield url, journals


def ecrlink(*args: str) -> Result:
    return CliRunner().invoke(cli, ["journal", "list", "--lang", "en", *args],
                              catch_exceptions=False)


def rows(result: Result) -> list[dict[str, Any]]:
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert isinstance(data, list)
    return data


def key(row: dict[str, Any]) -> tuple[Any, ...]:
    return row["id"], row["state"], row["amount"], row["invoice"], row["created_at"]


FILTERS = [
    [],
    ["--state", "approved"],
    ["--state", "declined", "--state", "canceled"],
    ["--in-doubt"],
    ["--since", "2020-01-01", "--until", "2099-12-31"],
    ["--until", "2020-01-01"],
]


@pytest.mark.parametrize("filters", FILTERS)
def test_each_site_lists_what_its_own_journal_lists(
    chain: tuple[str, dict[str, Path]], filters: list[str]
) -> None:
    url, journals = chain
    everyone: list[tuple[str, int]] = []
    for site, journal in journals.items():
        mine = rows(ecrlink("--journal", str(journal), "--all", "--json", *filters))
        theirs = rows(ecrlink("--journal", url, "--site", site, "--all", "--json", *filters))
        assert {r["site"] for r in theirs} <= {site}
        assert [key(r) for r in theirs] == [key(r) for r in mine]
        assert [{k: v for k, v in r.items() if k != "site"} for r in theirs] == mine
        everyone += [(site, r["id"]) for r in mine]
    both = rows(ecrlink("--journal", url, "--all", "--json", *filters))
    assert sorted((r["site"], r["id"]) for r in both) == sorted(everyone)
    assert [r["created_at"] for r in both] == sorted(r["created_at"] for r in both)


def test_terminal_filter_matches_the_store(chain: tuple[str, dict[str, Path]]) -> None:
    url, journals = chain
    site, journal = SITES[0], journals[SITES[0]]
    terminal = rows(ecrlink("--journal", str(journal), "--all", "--json"))[0]["terminal"]
    mine = rows(ecrlink("--journal", str(journal), "--all", "--json", "-t", terminal))
    theirs = rows(ecrlink("--journal", url, "--site", site, "--all", "--json", "-t", terminal))
    assert mine and [key(r) for r in theirs] == [key(r) for r in mine]


@pytest.mark.parametrize("limit", [1, 5, 12, 16, 40])
def test_pages_run_across_sites(chain: tuple[str, dict[str, Path]], limit: int) -> None:
    url, _ = chain
    every = rows(ecrlink("--journal", url, "--all", "--json"))
    assert len(every) == 16 and {r["site"] for r in every} == set(SITES)
    page = ecrlink("--journal", url, "--limit", str(limit), "--json")
    assert rows(page) == every[-limit:]
    if limit < len(every):
        assert " ".join(page.stderr.split()) == (
            f"Showing the newest {limit} of 16 entries; {16 - limit} older not shown: "
            "`--limit N` shows more, `--all` shows every one."
        )
    else:
        assert page.stderr == ""
    table = ecrlink("--journal", url, "--limit", str(limit))
    assert table.exit_code == 0, table.stderr
    lines = table.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("Site"))
    body = [line.split() for line in lines[header + 2:header + 2 + min(limit, 16)]]
    assert [(cells[0], int(cells[1])) for cells in body] == [
        (r["site"], r["id"]) for r in every[-limit:]
    ]
    assert ("older not shown" in table.stdout) == (limit < 16)


def test_site_and_id_never_cut_on_a_narrow_console(
    chain: tuple[str, dict[str, Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = chain
    monkeypatch.setenv("COLUMNS", "30")
    every = rows(ecrlink("--journal", url, "--all", "--json"))
    table = ecrlink("--journal", url, "--all")
    assert table.exit_code == 0, table.stderr
    for r in every:
        assert any(line.split()[:2] == [r["site"], str(r["id"])]
                   for line in table.stdout.splitlines())


def test_unknown_site_lists_nothing_and_names_the_known_ones(
    chain: tuple[str, dict[str, Path]]
) -> None:
    url, _ = chain
    done = ecrlink("--journal", url, "--site", "STORE99", "--site", SITES[0], "--json")
    listed = rows(done)
    assert listed and {r["site"] for r in listed} == {SITES[0]}
    (line,) = done.stderr.splitlines()
    assert "STORE99" in line and all(site in line for site in SITES)
    nothing = ecrlink("--journal", url, "--site", "STORE99")
    assert nothing.exit_code == 0 and nothing.stdout.strip() == "No entries."
    assert len(nothing.stderr.splitlines()) == 1


def test_site_is_refused_for_a_journal_that_is_not_head_office(
    chain: tuple[str, dict[str, Path]], pg_server: PgServer
) -> None:
    _, journals = chain
    primary = pg_server.create_database()
    open_journal(primary).close()  # a shop's own PostgreSQL journal
    secret = primary.replace("postgres@", "postgres:s3cret@")
    for journal in (str(journals[SITES[0]]), secret):
        done = ecrlink("--journal", journal, "--site", SITES[0])
        assert done.exit_code == 4, done.stderr
        (line,) = done.stderr.splitlines()
        assert "--site" in line and "s3cret" not in line
        assert done.stdout == ""
    # Without --site the shop's own journal lists as before.
    assert rows(ecrlink("--journal", secret, "--json")) == []


@pytest.mark.parametrize("site", ["STORE 42", "", "-x"])
def test_bad_site_name_is_bad_input(chain: tuple[str, dict[str, Path]], site: str) -> None:
    url, _ = chain
    done = ecrlink("--journal", url, "--site", site)
    assert done.exit_code == 4 and done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert "--site" in line


def test_password_never_shown(chain: tuple[str, dict[str, Path]], pg_server: PgServer) -> None:
    url, _ = chain
    secret = url.replace("postgres@", "postgres:s3cret@")
    listed = ecrlink("--journal", secret)
    assert listed.exit_code == 0, listed.stderr
    assert "postgres:***@" in listed.stdout and "s3cret" not in listed.stdout + listed.stderr
    missing = secret.rsplit("/", 1)[0] + "/no_such_db"
    for args in (["--site", SITES[0]], [], ["--json"]):
        done = ecrlink("--journal", missing, *args)
        assert done.exit_code == 8, done.stderr
        assert "s3cret" not in done.stdout + done.stderr
        assert "postgres:***@" in done.stderr
