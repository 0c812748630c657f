"""The matching rules, written once, on polars frames.

Each side is a frame of the columns in ``MATCH_SCHEMA`` (``idx`` is the row's
position, 0..n-1). ``match`` returns the report rows as a frame naming, per row,
the ``idx`` of each side's sale and void (null for none), its category and the key
that paired it. The steps, as ``docs/reconcile.md`` states them:

====  =====================================  =========================================
step  rows                                   rule
====  =====================================  =========================================
1     voids, on each side                    cancel one approved sale of their own side:
                                             the one the journal names (``link``), else
                                             ``VOID_KEYS`` in order
2     voided sales, across sides             ``EXACT_KEYS``: paired or alone, ``voided``
3     voids whose sale is not on their side  ``EXACT_KEYS``: paired ``voided``; alone on
                                             the register ``ecr_only``, at the bank
                                             ``bank_only``
4     payments (sales, refunds)              ``EXACT_KEYS`` then ``LOOSE_KEYS``
                                             (approved register rows only) →
                                             ``matched`` / ``amount_mismatch``
5     bank sales sharing an invoice code     all but one (``DUPLICATE_RANK``) are
                                             ``duplicate``, with their register row
6     what is left                           register ``ecr_only``, bank ``bank_only``
====  =====================================  =========================================

Within one key value, rows pair in order (``rank_join``): the n-th register row
(approved before in doubt, then by time, then by row) with the n-th bank row (by
time, then row). A card + approval pair dated further apart than the window is not
made, and both rows stay free for the later keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import polars as pl

from .model import APPROVED, Category, MatchKey, kind_dtype
from .values import Kind

__all__ = [
    "DEFAULT_WINDOW",
    "DUPLICATE_RANK",
    "EXACT_KEYS",
    "ITEM_SCHEMA",
    "LOOSE_KEYS",
    "MATCH_SCHEMA",
    "VOID_KEYS",
    "Matched",
    "match",
    "rank_join",
]

DEFAULT_WINDOW = timedelta(hours=24)
"""How far apart register and bank may date a last 4 + approval code pair.

A bank may date a payment by its posting rather than the terminal's clock; a day
covers that, and an approval code seldom repeats for one card and amount in a day.
"""

Key = tuple[str, ...]

EXACT_KEYS: tuple[tuple[MatchKey, Key], ...] = (
    (MatchKey.INVOICE, ("kind", "invoice", "amount")),
    (MatchKey.CARD_APPROVAL, ("kind", "last4", "approval", "amount")),
    (MatchKey.REF_NO, ("kind", "ref_no", "amount")),
)
"""The exact keys, in the order they are tried. A row with an empty text column of
a key has no such key."""
LOOSE_KEYS: tuple[tuple[MatchKey, Key], ...] = tuple(
    (name, tuple(c for c in key if c != "amount")) for name, key in EXACT_KEYS
)
"""After the exact keys: the same without the amount (→ ``amount_mismatch``)."""
VOID_KEYS: tuple[Key, ...] = (("last4", "approval", "amount"), ("invoice", "amount"))
"""Step 1: a void's sale on its own side, when no journal link names it."""
DUPLICATE_RANK = ("exact match", "paired", "unpaired")
"""Step 5: which of a bank's sales of one invoice keeps its category: the first by
this rank, then by time, then by row."""

MATCH_SCHEMA: dict[str, Any] = {
    "idx": pl.Int64,
    "kind": kind_dtype(),
    "amount": pl.Int64,
    "time": pl.Datetime("us"),
    "invoice": pl.String,
    "last4": pl.String,
    "approval": pl.String,
    "ref_no": pl.String,
    "state": pl.String,
    "link": pl.Int64,
    "unsettled": pl.Boolean,
}
"""What matching reads of each side. ``state`` is ``approved`` or ``in_doubt``;
``unsettled`` says a journal entry behind the row is still in doubt (an exact bank
match proves it); ``link`` is, for a journal void, the ``idx`` of its sale or -1."""
ITEM_SCHEMA = pl.Schema({
    "category": pl.String, "key": pl.String, "reg": pl.Int64, "bank": pl.Int64,
    "reg_void": pl.Int64, "bank_void": pl.Int64, "proves": pl.Boolean,
})  # fmt: skip
"""A report row: category, key (or null), each side's sale and void ``idx`` (or null),
and whether its bank row proves an in-doubt journal entry approved."""


@dataclass(frozen=True, slots=True)
class Matched:
    """The report rows, as a frame of ``ITEM_SCHEMA``."""

    items: pl.DataFrame


def match(reg: pl.DataFrame, bank: pl.DataFrame, window: timedelta = DEFAULT_WINDOW) -> Matched:
    """Reconcile the register side against the bank side (steps in the module's table)."""
    reg, bank = reg.select(list(MATCH_SCHEMA)), bank.select(list(MATCH_SCHEMA))
    parts: list[pl.DataFrame] = []
    reg_voids, reg_orphans = _pair_voids(reg)  # step 1
    bank_voids, bank_orphans = _pair_voids(bank)

    # Step 2: voided sales across sides.
    rv = reg.join(reg_voids.select(pl.col("sale").alias("idx")), on="idx", how="semi")
    bv = bank.join(bank_voids.select(pl.col("sale").alias("idx")), on="idx", how="semi")
    pairs, rl, bl = _cascade(rv, bv, window, EXACT_KEYS)
    rmap = reg_voids.rename({"sale": "r", "void": "rv"})
    bmap = bank_voids.rename({"sale": "b", "void": "bv"})
    parts.append(_items(pairs.join(rmap, on="r").join(bmap, on="b"), "voided",
                        key="key", reg="r", bank="b", reg_void="rv", bank_void="bv"))
    parts.append(_items(rl.select(pl.col("idx").alias("r")).join(rmap, on="r"), "voided",
                        reg="r", reg_void="rv"))
    parts.append(_items(bl.select(pl.col("idx").alias("b")).join(bmap, on="b"), "voided",
                        bank="b", bank_void="bv"))

    # Step 3: voids alone on their side.
    pairs, rl, bl = _cascade(reg_orphans, bank_orphans, window, EXACT_KEYS)
    parts.append(_items(pairs, "voided", key="key", reg_void="r", bank_void="b"))
    parts.append(_items(rl, "ecr_only", reg_void="idx"))
    parts.append(_items(bl, "bank_only", bank_void="idx"))

    # Step 4: payments.
    payments = pl.col("kind").is_in([Kind.SALE.value, Kind.REFUND.value])
    rp = reg.filter(payments & ~pl.col("idx").is_in(reg_voids.get_column("sale").implode()))
    bp = bank.filter(payments & ~pl.col("idx").is_in(bank_voids.get_column("sale").implode()))
    pairs, rl, bl = _cascade(rp, bp, window, EXACT_KEYS + LOOSE_KEYS)

    # Step 5: duplicates; step 6: the rest.
    dup = _duplicates(bp, pairs).implode()
    category = (
        pl.when(pl.col("b").is_in(dup)).then(pl.lit(Category.DUPLICATE.value))
        .when(pl.col("ra") == pl.col("ba")).then(pl.lit(Category.MATCHED.value))
        .otherwise(pl.lit(Category.AMOUNT_MISMATCH.value))
    )  # fmt: skip
    proves = pl.col("unsettled") & (pl.col("ra") == pl.col("ba"))
    parts.append(_items(pairs, category, key="key", reg="r", bank="b", proves=proves))
    left = bl.select(pl.col("idx").alias("b"))
    parts.append(_items(left, pl.when(pl.col("b").is_in(dup)).then(pl.lit("duplicate"))
                        .otherwise(pl.lit("bank_only")), bank="b"))
    parts.append(_items(rl, "ecr_only", reg="idx"))
    return Matched(pl.concat(parts))


# --- steps -------------------------------------------------------------------------------


_PAIR = pl.Schema({
    "r": pl.Int64, "b": pl.Int64, "key": pl.String, "ra": pl.Int64, "ba": pl.Int64,
    "unsettled": pl.Boolean,
})  # fmt: skip


def _cascade(
    reg: pl.DataFrame,
    bank: pl.DataFrame,
    window: timedelta,
    stages: tuple[tuple[MatchKey, Key], ...],
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Pair rows key by key, each used once; the pairs (r, b, key, ra, ba, unsettled)
    and the rows left on each side. Keys without the amount take approved register
    rows only: only an exact match proves a payment nobody is sure of."""
    reg = reg.with_columns((pl.col("state") != APPROVED).alias("_doubt"))
    found: list[pl.DataFrame] = []
    for name, keys in stages:
        if reg.height == 0 or bank.height == 0:
            break
        candidates = reg if "amount" in keys else reg.filter(pl.col("state") == APPROVED)
        pairs = rank_join(candidates, ["_doubt", "time"], bank, ["time"], keys)
        if name is MatchKey.CARD_APPROVAL:
            gap = (pl.col("l_time") - pl.col("r_time")).abs()
            pairs = pairs.filter(
                pl.col("l_time").is_null() | pl.col("r_time").is_null() | (gap <= window)
            )
        if pairs.height == 0:
            continue
        found.append(pairs.select(
            pl.col("l").alias("r"), pl.col("r").alias("b"), pl.lit(name.value).alias("key"),
            pl.col("l_amount").alias("ra"), pl.col("r_amount").alias("ba"),
            pl.col("l_unsettled").alias("unsettled"),
        ))  # fmt: skip
        reg = _without(reg, pairs.get_column("l"))
        bank = _without(bank, pairs.get_column("r"))
    all_pairs = pl.concat(found) if found else pl.DataFrame(schema=_PAIR)
    return all_pairs, reg.drop("_doubt"), bank


def _pair_voids(side: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Step 1: a frame (sale, void) and the voids left alone.

    Voids are few: only the sales a void names or shares a key with are looked at.
    """
    is_sale = (pl.col("kind") == Kind.SALE.value) & (pl.col("state") == APPROVED)
    voids = side.filter(pl.col("kind") == Kind.VOID.value)
    schema = {"sale": pl.Int64, "void": pl.Int64}
    if voids.height == 0:
        return pl.DataFrame(schema=schema), voids
    pairs: list[pl.DataFrame] = []
    taken = pl.Series("sale", [], dtype=pl.Int64)
    with_link = voids.filter(pl.col("link") >= 0)
    if with_link.height:
        linked = (
            with_link.sort(["time", "idx"], nulls_last=True)
            .unique(subset="link", keep="first", maintain_order=True)
            .join(side.filter(is_sale).select(pl.col("idx").alias("link")), on="link",
                  how="semi")
            .select(pl.col("link").alias("sale"), pl.col("idx").alias("void"))
        )  # fmt: skip
        taken = linked.get_column("sale")
        pairs.append(linked)
        voids = _without(voids, linked.get_column("void"))
    for keys in VOID_KEYS:
        near = _sharing(side, voids, keys).filter(
            is_sale & ~pl.col("idx").is_in(taken.implode())
        )
        found = rank_join(voids, ["time"], near, ["time"], keys)
        if found.height:
            found = found.select(pl.col("r").alias("sale"), pl.col("l").alias("void"))
            pairs.append(found)
            taken = pl.concat([taken, found.get_column("sale")])
            voids = _without(voids, found.get_column("void"))
    return (pl.concat(pairs) if pairs else pl.DataFrame(schema=schema)), voids


def _duplicates(bank: pl.DataFrame, paired: pl.DataFrame) -> pl.Series:
    """Step 5: bank sales charging an invoice that another bank sale charged."""
    sale = (pl.col("kind") == Kind.SALE.value) & (pl.col("invoice") != "")
    # Hash first (cheap), then the exact check on the few rows whose hash repeats.
    hashed = bank.select(pl.when(sale).then(pl.col("invoice").hash(seed=0))).to_series()
    multi = bank.filter(sale & _repeated(hashed))
    multi = multi.filter(pl.col("invoice").is_duplicated())
    if multi.height == 0:
        return pl.Series("b", [], dtype=pl.Int64)
    mine = paired.filter(pl.col("b").is_in(multi.get_column("idx").implode()))
    ranked = multi.join(
        mine.select(
            pl.col("b").alias("idx"),
            pl.when(pl.col("ra") == pl.col("ba")).then(0).otherwise(1).alias("_rank"),
        ),
        on="idx",
        how="left",
    ).with_columns(pl.col("_rank").fill_null(2))
    keep = ranked.sort(["_rank", "time", "idx"], nulls_last=True).unique(
        subset="invoice", keep="first"
    )
    return ranked.join(keep.select("idx"), on="idx", how="anti").get_column("idx").rename("b")


# --- pairing by rank -----------------------------------------------------------------------


def _has(keys: Key) -> pl.Expr:
    return pl.all_horizontal([pl.col(k) != "" for k in keys if k not in ("kind", "amount")])


def _ranked(frame: pl.DataFrame, keys: Key, order: list[str]) -> pl.DataFrame:
    """Rows with the key, each with ``_n``: its place among rows of the same key.

    Nearly every key is unique, and a window over millions of string keys is slow:
    so only rows whose key hash repeats are ranked (by their exact key); the rest
    are first of their key. A hash collision only puts unique keys in the ranked
    part, where the exact key still decides.
    """
    carried = [c for c in ("amount", "time", "unsettled") if c not in keys]
    rows = frame.filter(_has(keys)).select(
        *keys, *[c for c in order if c not in carried], *carried, "idx"
    )
    rows = rows.with_columns(pl.struct(list(keys)).hash(seed=0).alias("_h"))
    out = [*keys, *carried, "_h", "_n", "idx"]
    repeated = _repeated(rows.get_column("_h"))
    if not repeated.any():  # the common case
        return rows.with_columns(pl.lit(0, pl.Int64).alias("_n")).select(out)
    at = repeated.arg_true()
    ranked = (
        rows.select(pl.all().gather(at), at.alias("_at"))
        .sort([*order, "idx"], nulls_last=True)
        .select("_at", pl.int_range(pl.len(), dtype=pl.Int64).over(list(keys)).alias("_n"))
    )
    # The rest are first of their key: their _n stays 0 (no copy of the many rows).
    n = pl.zeros(rows.height, pl.Int64, eager=True).scatter(
        ranked.get_column("_at"), ranked.get_column("_n")
    )
    return rows.with_columns(n.alias("_n")).select(out)


def _repeated(values: pl.Series) -> pl.Series:
    """``values.is_duplicated()`` (False for a null), for hashes, nearly all unique: the
    values met twice are found in a sorted copy, then looked up. Several times faster
    than ``is_duplicated`` on a million values."""
    ordered = values.drop_nulls().sort()
    twice = ordered.filter(ordered == ordered.shift(1)).unique()
    return values.is_in(twice.implode()).fill_null(False)


def _sharing(side: pl.DataFrame, few: pl.DataFrame, keys: Key) -> pl.DataFrame:
    """The rows of ``side`` whose ``keys`` some row of ``few`` has (a semi-join), the
    many rows first narrowed by a hash of the keys: a join on strings costs more."""
    if few.height == 0:
        return side.clear()
    wanted = few.select(pl.struct(list(keys)).hash(seed=0)).to_series().implode()
    near = side.filter(pl.struct(list(keys)).hash(seed=0).is_in(wanted))
    return near.join(few.select(keys), on=list(keys), how="semi")


_JOINED: dict[str, Any] = {
    "l": pl.Int64, "r": pl.Int64, "l_amount": pl.Int64, "r_amount": pl.Int64,
    "l_time": pl.Datetime("us"), "r_time": pl.Datetime("us"), "l_unsettled": pl.Boolean,
}  # fmt: skip


def rank_join(
    left: pl.DataFrame,
    left_order: list[str],
    right: pl.DataFrame,
    right_order: list[str],
    keys: Key,
) -> pl.DataFrame:
    """Pair the n-th left row of a key value with the n-th right row of it.

    Rows with an empty text column of the key take no part. Joined on (key hash,
    n), then filtered on the exact key, which gives the same pairs as joining on the
    exact key. Returns indices ``l``, ``r`` and both rows' amount and time, and the
    left row's ``unsettled``.
    """
    if left.height == 0 or right.height == 0:
        return pl.DataFrame(schema=_JOINED)
    if "unsettled" not in left.columns:
        left = left.with_columns(pl.lit(False).alias("unsettled"))
    if "unsettled" not in right.columns:
        right = right.with_columns(pl.lit(False).alias("unsettled"))
    lk = _ranked(left, keys, left_order)
    rk = _ranked(right, keys, right_order)
    same = pl.all_horizontal([pl.col(k) == pl.col(f"{k}_r") for k in keys])
    # Lazy, so the key strings are compared without materialising the joined frame.
    return (
        lk.lazy()
        .join(rk.lazy(), on=["_h", "_n"], how="inner", suffix="_r")
        .filter(same)
        .select(
            pl.col("idx").alias("l"),
            pl.col("idx_r").alias("r"),
            pl.col("amount").alias("l_amount"),
            pl.col("amount" if "amount" in keys else "amount_r").alias("r_amount"),
            pl.col("time").alias("l_time"),
            pl.col("time_r").alias("r_time"),
            pl.col("unsettled").alias("l_unsettled"),
        )
        .collect()
    )


def _without(frame: pl.DataFrame, idx: pl.Series) -> pl.DataFrame:
    return frame.filter(~pl.col("idx").is_in(idx.implode()))


def _items(
    frame: pl.DataFrame,
    category: str | pl.Expr,
    *,
    proves: pl.Expr | None = None,
    **cols: str,
) -> pl.DataFrame:
    exprs: list[pl.Expr] = [
        (pl.lit(category) if isinstance(category, str) else category).alias("category")
    ]
    for name in ("key", "reg", "bank", "reg_void", "bank_void"):
        source = cols.get(name)
        exprs.append(
            (pl.col(source) if source else pl.lit(None)).cast(ITEM_SCHEMA[name]).alias(name)
        )
    exprs.append((proves if proves is not None else pl.lit(False)).alias("proves"))
    return frame.select(exprs)
