"""``ecrlink reconcile --journal postgresql://central… [--site S]``: head office matches
every store's payments against the one statement the bank sends for all of them.

Two stores sell on their own real simulators (their own TID, MID and cards), ship with
``sync_once`` to a database on the session's real PostgreSQL server; the bank's file is
both simulators' statements in one. Each store's totals at head office are compared
with the same store's own ``reconcile`` of its own journal.

Head office reads with COPY into columns (``Central.entry_frame``): the columns are
compared with the same entries read as objects, on stores whose data holds what COPY's
text format escapes, under every filter, a block at a time.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import psycopg
import pytest
from click.testing import CliRunner, Result
from hypothesis import given, settings
from hypothesis import strategies as st

from ecrlink import JournalError, Terminal
from ecrlink.cli import cli
from ecrlink.journal import Entry, Journal, State, open_journal
from ecrlink.journal.central import Central, SiteEntry, _micros
from ecrlink.journal.sync import sync_once
from ecrlink.protocol import VIETNAM_TIME, Sale
from ecrlink.reconcile.sources import entry_frame
from ecrlink.simulator import Simulator
from tests.pgserver import PgServer
from tests.reconcile.conftest import bank_row, write_bank

from .chain import sell_interleaved

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
        sell_interleaved(a.http_url, b.http_url, (journals[SITES[0]], journals[SITES[1]]))
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


# --- how head office reads: COPY into columns, a block at a time ------------------------

T0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)


def _entry(id_: int, state: State, amount: int, invoice: str, *, command: str = "sale",
           minutes: int = 0, **more: Any) -> Entry:
    at = T0 + timedelta(minutes=minutes)
    return Entry(id=id_, terminal="http://10.0.0.9:8080", command=command, state=state,
                 request_id=f"r{id_}", client_id="QUAY1", amount=amount,
                 fields=("", "", invoice, "", more.pop("reference", "")), created_at=at,
                 updated_at=at, **more)


def _ship(url: str, site: str, entries: list[Entry]) -> None:
    """Entries written at head office as a store's sync writes them."""
    with Central.open(url) as central, central.transaction():
        central.claim(site, f"journal-{site}")
        central.write(site, [(e, e.id) for e in entries], [], len(entries))


def _as_columns(rows: Iterable[SiteEntry]) -> pl.DataFrame:
    """What the rule reads, built from head office's entries one object at a time."""
    frames = [entry_frame([r.entry], r.site) for r in rows]
    frame = pl.concat(frames) if frames else entry_frame([])
    # Head office's reader leaves out the terminal's name where the entry has a TID.
    tid = pl.col("tid")
    return frame.with_columns(
        pl.when(tid.is_null() | (tid == "")).then(pl.col("terminal")).otherwise(pl.lit(""))
        .alias("terminal"))


def test_the_reader_gives_what_the_entries_give(chain: Chain) -> None:
    with Central.open(chain.url, create=False) as central:
        frame = central.entry_frame()
        assert frame.height > 10 and set(frame.get_column("site")) == set(SITES)
        exp = _as_columns(central.entries())
        assert frame.equals(exp)
        sales = central.entry_frame(sites=[SITES[1]], commands=["sale"],
                                    states=[State.APPROVED])
        assert sales.height and sales.equals(_as_columns(central.entries(
            sites=[SITES[1]], commands=["sale"], states=[State.APPROVED])))


@pytest.fixture(scope="module")
def odd_store(pg_server: PgServer) -> str:
    """A store whose entries hold what COPY's text format escapes, in every state."""
    pg_server.start()
    url = pg_server.create_database()
    odd = ["a\\b", "tab\there", "line\nbreak", "\\N", "Hóa đơn\r", "\\\\x41", ""]
    entries = [
        _entry(i + 1, state, 10_000 * (i + 1), odd[i % len(odd)], minutes=i * 7,
               reference=odd[(i + 3) % len(odd)], card_no=f"9704 XXXX XXXX {i:04d}",
               approval_code=f"{i}", tid=None if i % 4 == 0 else "T\\1",
               receipt_no=odd[(i + 1) % len(odd)], batch_no="000003",
               trans_time=None if i % 3 == 0
               else T0 + timedelta(minutes=i * 7, seconds=i, microseconds=999_999 - i))
        for i, state in enumerate(list(State) * 3)
    ]  # fmt: skip
    entries.append(_entry(100, State.APPROVED, 0, "", command="void", void_of="\\\\x41"))
    _ship(url, "ODD", entries)
    _ship(url, "PLAIN", [_entry(1, State.APPROVED, 5_000, "HD1", minutes=3)])
    return url


def test_escapes_filters_and_blocks(odd_store: str) -> None:
    with Central.open(odd_store, create=False) as central:
        whole = central.entry_frame()
        assert whole.equals(_as_columns(central.entries()))
        assert "line\nbreak" in whole.get_column("f3").to_list()
        since, until = T0 + timedelta(minutes=20), T0 + timedelta(minutes=90)
        for filters in (
            {"sites": ["ODD"]}, {"sites": ["PLAIN", "NONE"]}, {"sites": []},
            {"states": [State.APPROVED, State.IN_DOUBT]}, {"commands": ["void"]},
            {"since": since}, {"until": until}, {"since": since, "until": until},
        ):  # fmt: skip
            got = central.entry_frame(**filters)  # type: ignore[arg-type]
            assert got.equals(_as_columns(central.entries(**filters))), filters  # type: ignore[arg-type]
        # Streamed: the server's rows come a block at a time, each parsed on its own.
        blocks = list(central.entry_blocks(block_bytes=300))
        assert len(blocks) > 5
        assert all(b.height < whole.height for b in blocks)
        joined = pl.concat(blocks).sort("created_at", "site", "id").drop("created_at")
        assert joined.equals(whole)
        # A reader that stops early leaves the connection usable.
        next(iter(central.entry_blocks(block_bytes=300)))
        assert central.entry_frame(sites=["PLAIN"]).height == 1
        assert central.entries_at([("ODD", 3), ("PLAIN", 1)]) == [
            next(r.entry for r in central.entries(sites=["ODD"]) if r.entry.id == 3),
            next(r.entry for r in central.entries(sites=["PLAIN"])),
        ]
        with pytest.raises(JournalError, match="no entry 9 of site PLAIN"):
            central.entries_at([("PLAIN", 9)])


_MICROS = st.integers(0, (datetime(2242, 1, 1, tzinfo=UTC)
                          - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1))


@given(st.lists(_MICROS, min_size=1, max_size=300), st.booleans())
@settings(max_examples=300, deadline=None)
def test_float_seconds_give_back_the_exact_microsecond(micros: list[int], long: bool) -> None:
    """The server's ``date_part('epoch', t)``, written with all its digits (the
    shortest exact text, or 17 digits as an old server writes them), is read back to
    t's very microsecond."""
    if long:  # 17 digits: exact until 2106
        micros = [m % 4_290_000_000_000_000 for m in micros]
    texts = [f"{m / 1_000_000:.17g}" if long else repr(m / 1_000_000) for m in micros]
    assert _micros(pl.Series(texts)).to_list() == micros
    assert _micros(pl.Series(["Infinity", "-Infinity", None])).to_list() == [None] * 3


def test_a_store_in_doubt_shows_unsettled(pg_server: PgServer, tmp_path: Path) -> None:
    """Pending, sent and in-doubt sales are payments nobody is sure of: unmatched they
    stay in doubt, an exact bank row proves them (for the store to resolve); declined
    and failed ones never leave the server."""
    pg_server.start()
    url = pg_server.create_database()
    card = {"card_no": "9704 XXXX XXXX 6163", "tid": "31002095", "batch_no": "3",
            "mid": "000000100091555"}
    _ship(url, "STORE9", [
        _entry(1, State.APPROVED, 100_000, "HD1", approval_code="111111", receipt_no="1",
               trans_time=T0, **card),
        _entry(2, State.IN_DOUBT, 200_000, "HD2", minutes=5),
        _entry(3, State.SENT, 300_000, "HD3", minutes=6),
        _entry(4, State.PENDING, 400_000, "HD4", minutes=7),
        _entry(5, State.DECLINED, 500_000, "HD5", minutes=8, **card),
        _entry(6, State.FAILED, 600_000, "HD6", minutes=9),
    ])  # fmt: skip
    local = T0.astimezone(VIETNAM_TIME).replace(tzinfo=None)
    bank = write_bank(tmp_path / "bank.csv", [
        bank_row(100_000, at=local, invoice="HD1", approval="111111", receipt=1),
        bank_row(400_000, at=local + timedelta(minutes=7), invoice="HD4", approval="222222",
                 receipt=2),
    ])  # fmt: skip
    doc = report(reconcile("--bank", str(bank), "--journal", url, "--json"))
    rows = {r["register"]["invoice"]: r for r in doc["rows"] if r["register"]}
    assert set(rows) == {"HD1", "HD2", "HD3", "HD4"}
    assert {r["site"] for r in rows.values()} == {"STORE9"}
    assert rows["HD1"]["category"] == "matched" and not rows["HD1"]["in_doubt"]
    for invoice in ("HD2", "HD3"):
        assert (rows[invoice]["category"], rows[invoice]["in_doubt"]) == ("ecr_only", True)
    assert rows["HD4"]["category"] == "matched" and rows["HD4"]["resolved"]
    assert doc["resolve_at_store"] == [{"site": "STORE9", "id": 4}]
    (store,) = doc["totals"]["site"]
    assert store["site"] == "STORE9" and store["ecr_only"]["count"] == 2


def test_no_entry_object_per_row(chain: Chain, monkeypatch: pytest.MonkeyPatch) -> None:
    """Head office builds an ``Entry`` only for what the report names (the proven
    in-doubt payment), never one per payment read."""
    from ecrlink.journal import central as central_module

    built: list[int] = []
    real = central_module._central_entry

    def counting(row: Any) -> Entry:
        built.append(row[0])
        return real(row)

    monkeypatch.setattr(central_module, "_central_entry", counting)
    monkeypatch.setattr(central_module, "SiteEntry", None)  # any per-row object would fail
    doc = report(reconcile("--bank", str(chain.bank), "--journal", chain.url, "--json"))
    assert len(doc["rows"]) > 10
    assert built == [e["id"] for e in doc["resolve_at_store"]] and len(built) == 1
