"""The journal → register side rule (``sources.journal_side``, on columns) against a
plain statement of the same rule, one entry at a time.

The reference below is the rule as docs/reconcile.md says it: approved sales are
payments, pending/sent/in-doubt sales are unsettled payments, approved voids cancel
the latest approved sale not already cancelled with the receipt number they name
(numerically) on the same store and terminal (TID, else the terminal's name), of the
same batch where both name one; a void carries its sale's money fields. Generated
entries collide on every key, and carry the odd values (padded receipts, spaces,
unmasked cards, short approval codes) where the columnar short cuts could differ.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecrlink.journal.records import Entry, State
from ecrlink.reconcile.model import UNSETTLED, side_schema
from ecrlink.reconcile.sources import (
    JournalEntries,
    entry_frame,
    entry_schema,
    journal_side,
    rows_from_entries,
)
from ecrlink.reconcile.values import (
    card_last4,
    mask_card,
    norm_approval,
    norm_invoice,
    norm_ref_no,
    parse_datetime,
)

_SETTINGS = settings(max_examples=200, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow])
T0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)


def _number(text: str | None) -> str:
    text = (text or "").strip()
    return text.lstrip("0") or ("0" if text else "")


def reference(entries: list[Entry], sites: list[str | None]) -> list[dict[str, Any]]:
    """The register side's rows, entry by entry."""
    rows: list[dict[str, Any]] = []

    def add(e: Entry, data: Entry, kind: str, state: str, link: int, pos: int) -> int:
        card = data.card_no or ""
        moment = e.trans_time or e.created_at
        rows.append({
            "idx": len(rows), "row": e.id, "kind": kind, "amount": abs(data.amount or 0),
            "time": parse_datetime(moment), "invoice": norm_invoice(data.invoice),
            "reference": data.reference, "card": mask_card(card), "last4": card_last4(card),
            "approval": norm_approval(data.approval_code), "ref_no": norm_ref_no(data.ref_no),
            "tid": e.tid or "", "mid": e.mid or "", "batch": e.batch_no or "",
            "receipt": e.receipt_no or "", "state": state, "link": link,
            "unsettled": e.state in UNSETTLED, "entry": pos,
        })  # fmt: skip
        return len(rows) - 1

    sale_at: dict[tuple[str | None, str, str], list[int]] = {}
    voids = []
    for pos, e in enumerate(entries):
        site = sites[pos]
        if e.command == "void":
            if e.state is State.APPROVED:
                voids.append((pos, e))
            continue
        if e.command != "sale":
            continue
        if e.state is State.APPROVED:
            state = "approved"
        elif e.state in UNSETTLED:
            state = "in_doubt"
        else:
            continue
        i = add(e, e, "sale", state, -1, pos)
        if e.receipt_no:
            sale_at.setdefault((site, e.tid or e.terminal, _number(e.receipt_no)), []).append(i)
    taken: set[int] = set()
    for pos, v in voids:
        candidates = [
            i for i in sale_at.get((sites[pos], v.tid or v.terminal, _number(v.void_of)), [])
            if i not in taken and rows[i]["state"] == "approved"
            and (not v.batch_no or not rows[i]["batch"]
                 or _number(v.batch_no) == _number(rows[i]["batch"]))
        ]  # fmt: skip
        sale = candidates[-1] if candidates else -1
        data = entries[rows[sale]["entry"]] if sale >= 0 else v
        add(v, data, "void", "approved", sale, pos)
        if sale >= 0:
            taken.add(sale)
    return rows


_NUMBERS = st.sampled_from([None, "", "1", "01", "0001", " 1", "2", "0", "00", "x1", "1 "])
_entry = st.fixed_dictionaries({
    "command": st.sampled_from(["sale"] * 4 + ["void"] * 3 + ["settle"]),
    "state": st.sampled_from([State.APPROVED] * 8 + list(State)),
    "terminal": st.sampled_from(["http://a", "http://b"]),
    "tid": st.sampled_from([None, "", "31000001", "31000001", "31000002"]),
    "receipt": st.one_of(st.sampled_from(["1", "01"]), _NUMBERS),
    "void_of": st.one_of(st.sampled_from(["1", "001"]), _NUMBERS),
    "batch": st.sampled_from([None, "", "3", "003", "4"]),
    "amount": st.sampled_from([None, 0, 100, -100, 250_000]),
    "invoice": st.sampled_from(["", "hd1", " HD1 ", "Hđ2"]),
    "reference": st.sampled_from(["", " ref "]),
    "card": st.sampled_from([None, "", "9704 XXXX XXXX 6163", "9704001234566163", "6163XXXX",
                             " 12 ", "970436******1234", "XXXX 1 2 3 4"]),
    "approval": st.sampled_from([None, "", "123", "x1", "0001234", " 12 "]),
    "ref_no": st.sampled_from([None, "", "5", "abc", "000000000001"]),
    "mid": st.sampled_from([None, "000000100091555"]),
    "minutes": st.sampled_from([None, 0, 5, 600]),
    "site": st.sampled_from(["S1", "S2"]),
})


def _entries(specs: list[dict[str, Any]]) -> list[Entry]:
    out = []
    for n, s in enumerate(specs):
        created = T0 + timedelta(minutes=n)
        out.append(Entry(
            id=n % 5 + 1, terminal=s["terminal"], command=s["command"], state=s["state"],
            request_id=str(n), client_id="c", amount=s["amount"],
            fields=("", "", s["invoice"], "", s["reference"]), created_at=created,
            updated_at=created, receipt_no=s["receipt"], void_of=s["void_of"],
            approval_code=s["approval"], ref_no=s["ref_no"], card_no=s["card"], tid=s["tid"],
            mid=s["mid"], batch_no=s["batch"],
            trans_time=None if s["minutes"] is None
            else created + timedelta(minutes=s["minutes"]),
        ))  # fmt: skip
    return out


@_SETTINGS
@given(st.lists(_entry, max_size=14), st.booleans())
def test_the_frame_rule_is_the_plain_rule(specs: list[dict[str, Any]], by_site: bool) -> None:
    entries = _entries(specs)
    sites = [s["site"] if by_site else None for s in specs]
    if by_site:
        frame = pl.concat([entry_frame([e], site) for e, site in zip(entries, sites,
                                                                      strict=True)]
                          or [entry_frame([])])
    else:
        frame = entry_frame(entries)
    got = journal_side(frame)
    assert got.schema == pl.Schema(side_schema())
    rows = got.to_dicts()
    for r in rows:
        r["kind"] = str(r["kind"])
    assert rows == reference(entries, sites)


def test_a_void_takes_the_latest_free_sale_and_each_sale_once() -> None:
    sale = {"command": "sale", "state": State.APPROVED, "terminal": "http://a",
            "tid": "31000001", "receipt": "7", "void_of": None, "batch": "3", "amount": 100,
            "invoice": "HD1", "reference": "", "card": "9704 XXXX XXXX 6163",
            "approval": "1", "ref_no": None, "mid": None, "minutes": 0, "site": "S1"}
    void = {**sale, "command": "void", "receipt": "9", "void_of": "0007", "amount": None,
            "invoice": "", "card": None}
    entries = _entries([sale, {**sale, "amount": 200}, void, void, void])
    side = journal_side(entry_frame(entries))
    assert side.get_column("link").to_list() == [-1, -1, 1, 0, -1]
    assert side.get_column("amount").to_list() == [100, 200, 200, 100, 0]
    assert side.get_column("invoice").to_list() == ["HD1", "HD1", "HD1", "HD1", ""]


def test_entries_as_columns_give_back_only_the_asked_objects() -> None:
    entries = _entries([{
        "command": "sale", "state": State.IN_DOUBT, "terminal": "http://a", "tid": None,
        "receipt": None, "void_of": None, "batch": None, "amount": 5, "invoice": "A",
        "reference": "", "card": None, "approval": None, "ref_no": None, "mid": None,
        "minutes": None, "site": "S1"}] * 3)  # fmt: skip
    asked: list[list[int]] = []

    def fetch(rows: pl.DataFrame) -> list[Entry]:
        asked.append(rows.get_column("_pos").to_list())
        return [entries[i] for i in rows.get_column("_pos")]

    journal = JournalEntries(entry_frame(entries), fetch)
    assert journal[2] is entries[2] and journal.get([]) == []
    assert asked == [[2]]
    assert list(entry_frame(entries).schema) == list(entry_schema())
    assert rows_from_entries(entries).equals(journal_side(journal.frame))
