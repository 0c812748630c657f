"""``ecrlink reconcile --journal postgresql://central… [--site S]``: head office matches
every store's payments against the one statement the bank sends for all of them.

Two stores sell on their own real simulators (their own TID, MID and cards), ship with
``sync_once`` to a database on the session's real PostgreSQL server; the bank's file is
both simulators' statements in one. Each store's totals at head office are compared
with the same store's own ``reconcile`` of its own journal.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner, Result

from ecrlink import Terminal
from ecrlink.cli import cli
from ecrlink.journal import Journal, State, open_journal
from ecrlink.journal.sync import sync_once
from ecrlink.protocol import Sale
from ecrlink.simulator import Simulator
from tests.pgserver import PgServer

from .chain import open_pos, sell

SITES = ("STORE42", "Q7-NGUYEN.TRAI")
MIDS = {SITES[0]: "000000100091001", SITES[1]: "000000100092002"}
LOST = (88_000, "HD900001")
"""A sale store 0's register sent and crashed before writing down the answer: pending
in its journal, charged at the bank."""


@dataclass
class Chain:
    url: str
    journals: dict[str, Path]
    statements: dict[str, Path]
    bank: Path
    """Both stores' statements in one file, as the bank sends it."""


def _statement(parts: list[Path], out: Path) -> None:
    """One statement from several (same header): the bank's file for every MID."""
    rows: list[list[str]] = []
    header: list[str] = []
    for part in parts:
        with part.open(encoding="utf-8-sig", newline="") as fh:
            header, *body = list(csv.reader(fh))
            rows += body
    with out.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\r\n")
        writer.writerow(header)
        writer.writerows(rows)


@pytest.fixture(scope="module")
def chain(pg_server: PgServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    root = tmp_path_factory.mktemp("stores")
    journals = {site: root / f"{site}.sqlite3" for site in SITES}
    statements = {site: root / f"{site}-bank.csv" for site in SITES}
    a_sim = Simulator(http=("127.0.0.1", 0), tid="10000001", mid=MIDS[SITES[0]], seed=1)
    b_sim = Simulator(http=("127.0.0.1", 0), tid="20000001", mid=MIDS[SITES[1]], seed=2)
    with a_sim as a, b_sim as b:
        with open_pos(a.http_url, journals[SITES[0]], "QUAY1") as pos:
            sell(pos, 6)
        with open_pos(b.http_url, journals[SITES[1]], "QUAY1") as pos:
            sell(pos, 7)
        with open_pos(a.http_url, journals[SITES[0]], "QUAY1") as pos:
            sell(pos, 3, start=6)
        # The register sent this one and died before the answer was written down.
        with Terminal(a.http_url, client_id="QUAY1", journal=None, timeout=2.0) as bare:
            assert bare.sale(LOST[0], invoice=LOST[1]).approved
        with Journal(journals[SITES[0]], create=False) as j:
            terminal = next(iter(j.entries())).terminal
            j.begin(terminal, Sale.build(LOST[0], request_id="900001", client_id="QUAY1",
                                         invoice=LOST[1]))
        a.write_statement(statements[SITES[0]], include_open_batch=True)
        b.write_statement(statements[SITES[1]], include_open_batch=True)
    bank = root / "bank.csv"
    _statement([statements[s] for s in SITES], bank)
    pg_server.start()
    url = pg_server.create_database()
    for site, journal in journals.items():
        sync_once(journal, url, site, batch=4)
    yield Chain(url, journals, statements, bank)


def reconcile(*args: str) -> Result:
    return CliRunner().invoke(cli, ["reconcile", "--lang", "en", *args],
                              catch_exceptions=False)


def report(result: Result) -> dict[str, Any]:
    assert result.exit_code in (0, 10), result.stderr
    data = json.loads(result.stdout)
    assert isinstance(data, dict)
    return data


def own(chain: Chain, site: str, tmp_path: Path) -> dict[str, Any]:
    """The store's own reconcile of its own journal (a copy: it records what the
    statement proves) against its own statement."""
    copy = tmp_path / f"{site}-own.sqlite3"
    with closing(sqlite3.connect(chain.journals[site])) as src, \
            closing(sqlite3.connect(copy)) as dst:
        src.backup(dst)  # with what the write-ahead log holds
    return report(reconcile("--bank", str(chain.statements[site]), "--journal", str(copy),
                            "--json"))


def by(doc: dict[str, Any], key: str) -> dict[str | None, dict[str, Any]]:
    return {t[key]: {c: v for c, v in t.items() if c != key} for t in doc["totals"][key]}


def nonzero(summary: dict[str, Any]) -> dict[str, Any]:
    return {c: v for c, v in summary.items() if v["count"]}


def central_state(url: str) -> tuple[Any, ...]:
    with psycopg.connect(url) as conn:
        return (
            conn.execute("SELECT count(*), sum(change), string_agg(state, ',' ORDER BY site, id)"
                         " FROM ecrlink_chain.entries").fetchone(),
            conn.execute("SELECT count(*), max(id) FROM ecrlink_chain.history").fetchone(),
        )


def test_two_stores_against_one_statement(chain: Chain, tmp_path: Path) -> None:
    doc = report(reconcile("--bank", str(chain.bank), "--journal", chain.url, "--json"))
    rows = doc["rows"]
    # Both stores number invoices HD000000…: two stores' HD000001 are two invoices.
    assert doc["summary"]["bank_only"]["count"] == 0
    assert doc["summary"]["duplicate"]["count"] == 0
    assert doc["summary"]["matched"]["count"] == len(rows)
    assert {r["site"] for r in rows} == set(SITES)
    for r in rows:
        assert (r["site"] is None) == (r["register"] is None and r["register_void"] is None)
        if r["register"] is not None and r["bank"] is not None:
            assert r["bank"]["mid"] == MIDS[r["site"]]
    # The totals add up to the summary, per site and per MID alike.
    for key in ("site", "mid"):
        totals = by(doc, key)
        for category, whole in doc["summary"].items():
            parts = [t[category] for t in totals.values() if category in t]
            assert sum(p["count"] for p in parts) == whole["count"]
            assert sum(p["amount"] for p in parts) == whole["amount"]
    assert set(by(doc, "mid")) == set(MIDS.values())


def test_each_site_totals_equal_the_store_own_reconcile(chain: Chain, tmp_path: Path) -> None:
    doc = report(reconcile("--bank", str(chain.bank), "--journal", chain.url, "--json"))
    sites, mids = by(doc, "site"), by(doc, "mid")
    for site in SITES:
        mine = nonzero(own(chain, site, tmp_path)["summary"])
        assert mine and sites[site] == mine
        assert mids[MIDS[site]] == mine


def test_site_filter(chain: Chain, tmp_path: Path) -> None:
    site, other = SITES
    doc = report(reconcile("--bank", str(chain.bank), "--journal", chain.url,
                           "--site", site, "--json"))
    assert {r["site"] for r in doc["rows"] if r["site"]} == {site}
    totals = by(doc, "site")
    assert set(totals) == {site, None}
    assert totals[site] == nonzero(own(chain, site, tmp_path)["summary"])
    # The other store's payments are money the bank took that this selection lacks.
    others = [r for r in doc["rows"] if r["category"] == "bank_only"]
    assert others and {r["bank"]["mid"] for r in others} == {MIDS[other]}
    both = report(reconcile("--bank", str(chain.bank), "--journal", chain.url,
                            "--site", site, "--site", other, "--json"))
    assert both["summary"] == report(reconcile("--bank", str(chain.bank), "--journal",
                                               chain.url, "--json"))["summary"]


def test_head_office_never_writes_the_stores_journals(chain: Chain, tmp_path: Path) -> None:
    before = central_state(chain.url)
    doc = report(reconcile("--bank", str(chain.bank), "--journal", chain.url, "--json"))
    text = reconcile("--bank", str(chain.bank), "--journal", chain.url)
    assert text.exit_code in (0, 10), text.stderr
    assert central_state(chain.url) == before
    # The statement proves the lost sale; head office lists it for the store instead.
    proven = [r for r in doc["rows"] if r["resolved"]]
    assert [(r["site"], r["register"]["invoice"], r["amount"]) for r in proven] == [
        (SITES[0], LOST[1], LOST[0])
    ]
    (entry,) = doc["resolve_at_store"]
    assert entry == {"site": SITES[0], "id": proven[0]["register"]["row"]}
    with open_journal(chain.journals[SITES[0]], create=False) as j:
        assert j.get(entry["id"]).state is State.PENDING
    flat = " ".join(text.stdout.split())
    assert "resolve them at the store" in flat and f"{SITES[0]} #{entry['id']}" in flat
    assert "recorded in the journal" not in flat


def test_reports_written_carry_the_site(chain: Chain, tmp_path: Path) -> None:
    out = tmp_path / "report.csv"
    done = reconcile("--bank", str(chain.bank), "--journal", chain.url, "--out", str(out))
    assert done.exit_code in (0, 10), done.stderr
    with out.open(encoding="utf-8-sig", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert table and {r["site"] for r in table} == set(SITES)
    xlsx = tmp_path / "report.xlsx"
    done = reconcile("--bank", str(chain.bank), "--journal", chain.url, "--out", str(xlsx))
    assert done.exit_code in (0, 10), done.stderr
    from openpyxl import load_workbook

    book = load_workbook(xlsx, read_only=True)
    assert "totals" in book.sheetnames
    sites = {row[1] for row in book["totals"].iter_rows(min_row=2, values_only=True)
             if row[0] == "site"}
    assert sites == set(SITES)
    for site in SITES:
        assert site in done.stdout


def test_site_is_refused_for_a_journal_that_is_not_head_office(
    chain: Chain, pg_server: PgServer
) -> None:
    primary = pg_server.create_database()
    open_journal(primary).close()  # a shop's own PostgreSQL journal
    secret = primary.replace("postgres@", "postgres:s3cret@")
    for journal in (str(chain.journals[SITES[0]]), secret):
        done = reconcile("--bank", str(chain.bank), "--journal", journal, "--site", SITES[0])
        assert done.exit_code == 4, done.stderr
        (line,) = done.stderr.splitlines()
        assert "--site" in line and "s3cret" not in line
        assert done.stdout == ""
    # Without --site the shop's own PostgreSQL journal reconciles as a journal.
    plain = reconcile("--bank", str(chain.bank), "--journal", secret, "--json")
    assert report(plain)["summary"]["bank_only"]["count"] > 0 and "totals" not in plain.stdout


@pytest.mark.parametrize("site", ["STORE 42", "", "-x"])
def test_bad_site_name_is_bad_input(chain: Chain, site: str) -> None:
    done = reconcile("--bank", str(chain.bank), "--journal", chain.url, "--site", site)
    assert done.exit_code == 4 and done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert "--site" in line


def test_password_never_shown(chain: Chain, tmp_path: Path) -> None:
    secret = chain.url.replace("postgres@", "postgres:s3cret@")
    out = tmp_path / "report.json"
    shown = reconcile("--bank", str(chain.bank), "--journal", secret, "--out", str(out))
    assert shown.exit_code in (0, 10), shown.stderr
    assert "postgres:***@" in shown.stdout
    as_json = reconcile("--bank", str(chain.bank), "--journal", secret, "--json")
    assert json.loads(as_json.stdout)["sources"]["register"].startswith("postgresql://postgres:***@")
    missing = secret.rsplit("/", 1)[0] + "/no_such_db"
    done = reconcile("--bank", str(chain.bank), "--journal", missing)
    assert done.exit_code == 8, done.stderr
    assert "postgres:***@" in done.stderr
    for text in (shown.stdout, shown.stderr, as_json.stdout, as_json.stderr, done.stdout,
                 done.stderr, out.read_text(encoding="utf-8")):
        assert "s3cret" not in text


def test_period_is_cut_on_both_sides(chain: Chain) -> None:
    whole = report(reconcile("--bank", str(chain.bank), "--journal", chain.url, "--json"))
    day = whole["rows"][0]["bank"]["time"][:10]
    same = report(reconcile("--bank", str(chain.bank), "--journal", chain.url, "--json",
                            "--from", day, "--to", day))
    assert same["summary"] == whole["summary"] and same["totals"] == whole["totals"]
    before = report(reconcile("--bank", str(chain.bank), "--journal", chain.url, "--json",
                              "--to", "2020-01-01"))
    assert before["rows"] == [] and before["totals"] == {"site": [], "mid": []}
    assert before["dropped"]["bank"] == len(whole["rows"])
