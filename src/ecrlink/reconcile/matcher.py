"""The matching rules, in plain Python: the definition both engines follow.

Pure: sides in, pairs and categories out; no I/O, no clock. The polars engine
(``_fast.py``) implements the same steps on columns, and the test suite checks that
both give the same answer on generated data.

1. **Voids, on each side.** A void cancels one approved sale of its own side: the
   sale its journal entry names (``link``), else one with the same last 4 + approval
   code + amount, else the same invoice + amount.
2. **Voided sales across sides** are paired by the exact keys below, so a voided
   payment is one report row with both sides; all are ``voided``.
3. **Voids whose sale is not on their side** (the sale fell outside the period) are
   paired across sides the same way: paired → ``voided``; alone on the register →
   ``ecr_only``; alone at the bank → ``bank_only``.
4. **Payments** (sales and refunds not voided), key by key, each row used once:
   invoice + amount; last 4 + approval code + amount, times within the window; bank
   reference number (RRN) + amount; then the same three keys without the amount
   (→ ``amount_mismatch``). Register rows in doubt take part only in the exact
   keys, after the approved rows, because only an exact match proves them.
5. **Duplicates.** Among a bank's non-voided sales with the same invoice code, one
   keeps its category (the earliest exact match, else the earliest paired, else the
   earliest); every other is ``duplicate``, with its register row if it has one.
6. What is left: register rows are ``ecr_only``, bank rows ``bank_only``.

Within one key value several rows may wait on each side; they are paired in order:
register rows approved first, then by time, then by row; bank rows by time, then
by row. A last-4 + approval pair whose times differ by more than the window is not
made (both rows stay free for the later keys).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .model import APPROVED, UNSETTLED, Category, MatchKey, Side
from .values import Kind

__all__ = [
    "DEFAULT_WINDOW",
    "EXACT_KEYS",
    "LOOSE_KEYS",
    "VOID_KEYS",
    "Key",
    "Outcome",
    "match",
    "rank_join",
    "text_columns",
]

DEFAULT_WINDOW = timedelta(hours=24)
"""How far apart register and bank may date a last 4 + approval code pair.

A bank may date a payment by its posting rather than the terminal's clock; a day
covers that, and an approval code seldom repeats for one card and amount in a day.
"""

Key = tuple[str, ...]
"""A match key: ``Side`` columns whose values must all be equal. A row with one of
its ``text_columns`` empty has no such key."""

EXACT_KEYS: tuple[tuple[MatchKey, Key], ...] = (
    (MatchKey.INVOICE, ("kind", "invoice", "amount")),
    (MatchKey.CARD_APPROVAL, ("kind", "last4", "approval", "amount")),
    (MatchKey.REF_NO, ("kind", "ref_no", "amount")),
)
"""Steps 2 to 4: the exact keys, in the order they are tried."""
LOOSE_KEYS: tuple[tuple[MatchKey, Key], ...] = tuple(
    (name, tuple(c for c in key if c != "amount")) for name, key in EXACT_KEYS
)
"""Step 4, after the exact keys: the same without the amount (→ ``amount_mismatch``)."""
VOID_KEYS: tuple[Key, ...] = (("last4", "approval", "amount"), ("invoice", "amount"))
"""Step 1: a void's sale on its own side, when no journal link names it."""


def text_columns(key: Key) -> Key:
    """The columns of ``key`` that a row may leave empty (kind and amount never are)."""
    return tuple(c for c in key if c not in ("kind", "amount"))


@dataclass(slots=True)
class Outcome:
    """The report rows as columns: each names row indices (-1 for none) of each side."""

    category: list[Category] = field(default_factory=list)
    key: list[MatchKey | None] = field(default_factory=list)
    reg: list[int] = field(default_factory=list)
    bank: list[int] = field(default_factory=list)
    reg_void: list[int] = field(default_factory=list)
    bank_void: list[int] = field(default_factory=list)
    resolved: list[tuple[int, int]] = field(default_factory=list)
    """(register row, bank row) pairs where the bank row proves an in-doubt journal
    entry approved (an exact match)."""

    def add(
        self,
        category: Category,
        key: MatchKey | None,
        reg: int = -1,
        bank: int = -1,
        reg_void: int = -1,
        bank_void: int = -1,
    ) -> None:
        """Append one report row."""
        self.category.append(category)
        self.key.append(key)
        self.reg.append(reg)
        self.bank.append(bank)
        self.reg_void.append(reg_void)
        self.bank_void.append(bank_void)

    def __len__(self) -> int:
        return len(self.category)


def _time_order(s: Side) -> Callable[[int], tuple[bool, datetime, int]]:
    return lambda i: (s.time[i] is None, s.time[i] or datetime.min, i)


def _register_order(s: Side) -> Callable[[int], tuple[bool, bool, datetime, int]]:
    return lambda i: (s.state[i] != APPROVED, s.time[i] is None, s.time[i] or datetime.min, i)


def rank_join(
    left: Side,
    left_rows: Sequence[int],
    left_order: Callable[[int], tuple[object, ...]],
    right: Side,
    right_rows: Sequence[int],
    right_order: Callable[[int], tuple[object, ...]],
    key: Key,
) -> list[tuple[int, int]]:
    """Pair rows of equal key: the n-th of a key on the left with the n-th on the right.

    Rows without the key take no part. The n-th is by ``left_order`` /
    ``right_order``. Returns (left index, right index) pairs.
    """
    groups: dict[Hashable, list[int]] = {}
    for j, k in _keyed(right, right_rows, key):
        groups.setdefault(k, []).append(j)
    mine: dict[Hashable, list[int]] = {}
    for i, k in _keyed(left, left_rows, key):
        if k in groups:
            mine.setdefault(k, []).append(i)
    pairs: list[tuple[int, int]] = []
    for k, lefts in mine.items():
        rights = groups[k]
        if len(lefts) == len(rights) == 1:  # nearly every key: nothing to order
            pairs.append((lefts[0], rights[0]))
            continue
        lefts.sort(key=left_order)
        rights.sort(key=right_order)
        pairs.extend(zip(lefts, rights, strict=False))
    return pairs


def _keyed(side: Side, rows: Sequence[int], key: Key) -> Iterator[tuple[int, Hashable]]:
    """(row, its key value) for the rows that have the key."""
    for name in text_columns(key):
        column = getattr(side, name)
        rows = [i for i in rows if column[i]]
    values = [[column[i] for i in rows] for column in (getattr(side, c) for c in key)]
    return zip(rows, zip(*values, strict=True), strict=True)


def _within(reg: Side, r: int, bank: Side, b: int, window: timedelta) -> bool:
    t1, t2 = reg.time[r], bank.time[b]
    return t1 is None or t2 is None or abs(t1 - t2) <= window


def _pair_voids(s: Side) -> tuple[dict[int, int], list[int]]:
    """Step 1 on one side: sale index → void index, and the voids left alone."""
    sales = [i for i in range(len(s)) if s.kind[i] is Kind.SALE and s.state[i] == APPROVED]
    voids = sorted((i for i in range(len(s)) if s.kind[i] is Kind.VOID), key=_time_order(s))
    cancelled: dict[int, int] = {}
    sale_ok = set(sales)
    for v in voids:
        target = s.link[v]
        if target in sale_ok and target not in cancelled:
            cancelled[target] = v
    used = set(cancelled.values())
    order = _time_order(s)
    for key in VOID_KEYS:
        free_voids = [v for v in voids if v not in used]
        free_sales = [i for i in sales if i not in cancelled]
        for v, sale in rank_join(s, free_voids, order, s, free_sales, order, key):
            cancelled[sale] = v
            used.add(v)
    return cancelled, [v for v in voids if v not in used]


def _cascade(
    reg: Side,
    reg_rows: Sequence[int],
    bank: Side,
    bank_rows: Sequence[int],
    window: timedelta,
    *,
    loose: bool,
) -> tuple[list[tuple[int, int, MatchKey]], list[int], list[int]]:
    """Pair rows key by key; returns the pairs and the rows left on each side."""
    free_reg, free_bank = list(reg_rows), list(bank_rows)
    pairs: list[tuple[int, int, MatchKey]] = []
    stages = EXACT_KEYS + (LOOSE_KEYS if loose else ())
    for n, (name, key) in enumerate(stages):
        exact = n < len(EXACT_KEYS)
        candidates = free_reg if exact else [r for r in free_reg if reg.state[r] == APPROVED]
        found = rank_join(
            reg, candidates, _register_order(reg), bank, free_bank, _time_order(bank), key
        )
        if name is MatchKey.CARD_APPROVAL:
            found = [(r, b) for r, b in found if _within(reg, r, bank, b, window)]
        if not found:
            continue
        pairs.extend((r, b, name) for r, b in found)
        used_reg = {r for r, _ in found}
        used_bank = {b for _, b in found}
        free_reg = [r for r in free_reg if r not in used_reg]
        free_bank = [b for b in free_bank if b not in used_bank]
    return pairs, free_reg, free_bank


def match(reg: Side, bank: Side, window: timedelta = DEFAULT_WINDOW) -> Outcome:
    """Reconcile the register side against the bank side (see the module's rules)."""
    out = Outcome()
    reg_cancelled, reg_orphans = _pair_voids(reg)
    bank_cancelled, bank_orphans = _pair_voids(bank)

    pairs, reg_left, bank_left = _cascade(
        reg, sorted(reg_cancelled), bank, sorted(bank_cancelled), window, loose=False
    )
    for r, b, name in pairs:
        out.add(Category.VOIDED, name, r, b, reg_cancelled[r], bank_cancelled[b])
    for r in reg_left:
        out.add(Category.VOIDED, None, reg=r, reg_void=reg_cancelled[r])
    for b in bank_left:
        out.add(Category.VOIDED, None, bank=b, bank_void=bank_cancelled[b])

    pairs, reg_left, bank_left = _cascade(
        reg, reg_orphans, bank, bank_orphans, window, loose=False
    )
    for r, b, name in pairs:
        out.add(Category.VOIDED, name, reg_void=r, bank_void=b)
    for r in reg_left:
        out.add(Category.ECR_ONLY, None, reg_void=r)
    for b in bank_left:
        out.add(Category.BANK_ONLY, None, bank_void=b)

    payments = (Kind.SALE, Kind.REFUND)
    reg_rows = [i for i in range(len(reg)) if reg.kind[i] in payments and i not in reg_cancelled]
    bank_rows = [
        i for i in range(len(bank)) if bank.kind[i] in payments and i not in bank_cancelled
    ]
    pairs, reg_left, bank_left = _cascade(reg, reg_rows, bank, bank_rows, window, loose=True)
    duplicates = _duplicates(bank, bank_rows, {b: r for r, b, _ in pairs}, reg)
    for r, b, name in pairs:
        if b in duplicates:
            category = Category.DUPLICATE
        elif reg.amount[r] == bank.amount[b]:
            category = Category.MATCHED
        else:
            category = Category.AMOUNT_MISMATCH
        out.add(category, name, r, b)
        entry = reg.entry[r]
        if entry is not None and entry.state in UNSETTLED and reg.amount[r] == bank.amount[b]:
            out.resolved.append((r, b))
    for b in bank_left:
        out.add(Category.DUPLICATE if b in duplicates else Category.BANK_ONLY, None, bank=b)
    for r in reg_left:
        out.add(Category.ECR_ONLY, None, reg=r)
    return out


def _duplicates(bank: Side, rows: Sequence[int], paired: dict[int, int], reg: Side) -> set[int]:
    """Step 5: bank sales that charge an invoice another bank sale already charged."""
    by_invoice: dict[str, list[int]] = {}
    for b in rows:
        if bank.kind[b] is Kind.SALE and bank.invoice[b]:
            by_invoice.setdefault(bank.invoice[b], []).append(b)
    order = _time_order(bank)

    def rank(b: int) -> tuple[int, tuple[bool, datetime, int]]:
        r = paired.get(b)
        if r is None:
            return 2, order(b)
        return (0 if reg.amount[r] == bank.amount[b] else 1), order(b)

    extra: set[int] = set()
    for group in by_invoice.values():
        if len(group) > 1:
            keep = min(group, key=rank)
            extra.update(b for b in group if b != keep)
    return extra
