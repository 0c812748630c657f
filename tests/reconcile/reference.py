"""A small, obviously correct matcher: the rules of docs/reconcile.md, row by row.

The oracle for ``ecrlink.reconcile.engine``: plain loops over lists of row dicts,
no hashing, no frames, no short cuts. Slow (quadratic in places) and that is fine:
it only sees the few rows of generated tests.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

Row = dict[str, Any]
"""A side's row: idx, row, kind, amount, time, invoice, last4, approval, ref_no,
state ('approved' or 'in_doubt'), link (-1 or the idx of the sale a journal void
names), unsettled (a journal entry in doubt stands behind it)."""
Item = tuple[str, str | None, int, int, int, int, bool]
"""(category, key, reg idx, bank idx, reg void idx, bank void idx, proves); -1: none."""

EXACT = [("invoice", ["kind", "invoice", "amount"]),
         ("card_approval", ["kind", "last4", "approval", "amount"]),
         ("ref_no", ["kind", "ref_no", "amount"])]  # fmt: skip
LOOSE = [(name, [c for c in key if c != "amount"]) for name, key in EXACT]
VOID_KEYS = [["last4", "approval", "amount"], ["invoice", "amount"]]


def _by_time(r: Row) -> tuple[bool, datetime, int]:
    return (r["time"] is None, r["time"] or datetime.min, r["idx"])


def _register_order(r: Row) -> tuple[bool, bool, datetime, int]:
    return (r["state"] != "approved", *_by_time(r))


def _key(r: Row, key: list[str]) -> tuple[Any, ...] | None:
    """The row's value of the key, or None when one of its text columns is empty."""
    if any(r[c] == "" for c in key if c not in ("kind", "amount")):
        return None
    return tuple(r[c] for c in key)


def pair_in_order(lefts: list[Row], left_order: Any, rights: list[Row], right_order: Any,
                  key: list[str]) -> list[tuple[Row, Row]]:
    """For each key value: the n-th left row (in order) with the n-th right row."""
    pairs = []
    values = {_key(r, key) for r in lefts} - {None}
    for value in values:
        mine = sorted((r for r in lefts if _key(r, key) == value), key=left_order)
        theirs = sorted((r for r in rights if _key(r, key) == value), key=right_order)
        pairs.extend(zip(mine, theirs, strict=False))
    return pairs


def cascade(reg: list[Row], bank: list[Row], window: timedelta,
            stages: list[tuple[str, list[str]]]) -> tuple[list[tuple[Row, Row, str]],
                                                          list[Row], list[Row]]:
    """Key by key, each row used once; keys without the amount: approved rows only."""
    free_reg, free_bank = list(reg), list(bank)
    found = []
    for name, key in stages:
        candidates = free_reg if "amount" in key else [
            r for r in free_reg if r["state"] == "approved"]
        for r, b in pair_in_order(candidates, _register_order, free_bank, _by_time, key):
            if name == "card_approval" and r["time"] and b["time"] and (
                abs(r["time"] - b["time"]) > window
            ):
                continue
            found.append((r, b, name))
            free_reg.remove(r)
            free_bank.remove(b)
    return found, free_reg, free_bank


def pair_voids(side: list[Row]) -> tuple[dict[int, int], list[Row]]:
    """Step 1: sale idx → void idx; and the voids left alone."""
    sales = [r for r in side if r["kind"] == "sale" and r["state"] == "approved"]
    voids = sorted((r for r in side if r["kind"] == "void"), key=_by_time)
    cancelled: dict[int, int] = {}
    sale_ids = {s["idx"] for s in sales}
    for v in voids:
        if v["link"] in sale_ids and v["link"] not in cancelled:
            cancelled[v["link"]] = v["idx"]
    for key in VOID_KEYS:
        free_voids = [v for v in voids if v["idx"] not in cancelled.values()]
        free_sales = [s for s in sales if s["idx"] not in cancelled]
        for v, s in pair_in_order(free_voids, _by_time, free_sales, _by_time, key):
            cancelled[s["idx"]] = v["idx"]
    return cancelled, [v for v in voids if v["idx"] not in cancelled.values()]


def match(reg: list[Row], bank: list[Row], window: timedelta) -> list[Item]:
    """The report rows, step by step as docs/reconcile.md lists them."""
    out: list[Item] = []
    reg_cancelled, reg_orphans = pair_voids(reg)
    bank_cancelled, bank_orphans = pair_voids(bank)
    # 2. voided sales across sides
    pairs, reg_left, bank_left = cascade(
        [r for r in reg if r["idx"] in reg_cancelled],
        [b for b in bank if b["idx"] in bank_cancelled], window, EXACT)
    for r, b, name in pairs:
        out.append(("voided", name, r["idx"], b["idx"], reg_cancelled[r["idx"]],
                    bank_cancelled[b["idx"]], False))
    out += [("voided", None, r["idx"], -1, reg_cancelled[r["idx"]], -1, False)
            for r in reg_left]
    out += [("voided", None, -1, b["idx"], -1, bank_cancelled[b["idx"]], False)
            for b in bank_left]
    # 3. voids alone on their side
    pairs, reg_left, bank_left = cascade(reg_orphans, bank_orphans, window, EXACT)
    out += [("voided", name, -1, -1, r["idx"], b["idx"], False) for r, b, name in pairs]
    out += [("ecr_only", None, -1, -1, r["idx"], -1, False) for r in reg_left]
    out += [("bank_only", None, -1, -1, -1, b["idx"], False) for b in bank_left]
    # 4. payments
    reg_pay = [r for r in reg if r["kind"] in ("sale", "refund") and r["idx"] not in reg_cancelled]
    bank_pay = [b for b in bank
                if b["kind"] in ("sale", "refund") and b["idx"] not in bank_cancelled]
    pairs, reg_left, bank_left = cascade(reg_pay, bank_pay, window, EXACT + LOOSE)
    # 5. duplicates
    paired = {b["idx"]: r for r, b, _ in pairs}

    def rank(b: Row) -> tuple[int, tuple[bool, datetime, int]]:
        r = paired.get(b["idx"])
        return (2 if r is None else 0 if r["amount"] == b["amount"] else 1), _by_time(b)

    extra: set[int] = set()
    for invoice in {b["invoice"] for b in bank_pay if b["kind"] == "sale" and b["invoice"]}:
        group = [b for b in bank_pay if b["kind"] == "sale" and b["invoice"] == invoice]
        keep = min(group, key=rank)
        extra |= {b["idx"] for b in group if b is not keep}
    for r, b, name in pairs:
        exact = r["amount"] == b["amount"]
        category = ("duplicate" if b["idx"] in extra
                    else "matched" if exact else "amount_mismatch")
        out.append((category, name, r["idx"], b["idx"], -1, -1, r["unsettled"] and exact))
    # 6. the rest
    out += [("duplicate" if b["idx"] in extra else "bank_only", None, -1, b["idx"], -1, -1,
             False) for b in bank_left]
    out += [("ecr_only", None, r["idx"], -1, -1, -1, False) for r in reg_left]
    return out
