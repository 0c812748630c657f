"""The code columns' rules of ``values``, on whole columns.

An approval code or RRN that a spreadsheet read as a number has lost its leading
zeros (``values.norm_approval``, ``values.norm_ref_no`` put them back); a card's last
4 digits are what card + approval matching compares (``values.card_last4``); a card
number with more digits than a masked one shows is masked (``values.mask_card``).

Both sides that become frames use these: the file reader (``frames``) and the
journal's rule (``sources.journal_side``), so each rule is written once here, with
``values`` deciding every value the vectorised short cut cannot.

Columns are named ``{prefix}approval``, ``{prefix}ref_no``, ``{prefix}card`` and
``{prefix}last4``; cells are stripped text, '' where empty.
"""

from __future__ import annotations

import polars as pl

from .values import card_last4, mask_card

__all__ = ["MANY_DIGITS", "code_columns", "finish_cards"]

MANY_DIGITS = "(?:[0-9][^0-9]*){11}"
"""More digits than a masked card shows (6 + 4): a number to mask."""

_PADS = (("approval", 6), ("ref_no", 12))


def code_columns(frame: pl.DataFrame, prefix: str = "") -> list[pl.Expr | pl.Series]:
    """``last4``, and ``approval`` and ``ref_no`` with the leading zeros a spreadsheet
    ate put back, as ``values`` does; each column's rule applied only where a check on
    the whole column says it changes something.

    ``last4`` is ``values.card_last4`` where the number ends in 4 digits (nearly
    always), and null where only ``values`` can say (ends in a digit, but not four):
    :func:`finish_cards` fills those.
    """
    out: list[pl.Expr | pl.Series] = []
    for name, width in _PADS:
        column = frame.get_column(prefix + name)
        shortest = column.str.len_bytes().filter(column != "").min()
        if shortest is not None and shortest < width:  # type: ignore[operator]
            c = pl.col(prefix + name)
            out.append(pl.when(c.str.contains(f"^[0-9]{{1,{width - 1}}}$"))
                       .then(c.str.zfill(width)).otherwise(c).alias(prefix + name))
    card = frame.get_column(prefix + "card")
    tail = card.str.slice(-4)
    four = tail.str.contains("^[0-9]{4}$")
    if (four | (card == "")).all():  # the tail of an empty card is empty
        out.append(tail.alias(prefix + "last4"))
    else:
        out.append(
            pl.when(four).then(tail)
            .when(tail.str.contains("[0-9]$")).then(None)
            .otherwise(pl.lit("")).alias(prefix + "last4")
        )  # fmt: skip
    return out


def finish_cards(frame: pl.DataFrame, prefix: str = "") -> pl.DataFrame:
    """``last4`` where :func:`code_columns` left it to ``values``, then every card
    number that shows too many digits masked (after: the last 4 are read from the
    number as given). Each distinct card is parsed once, and only those that need it."""
    last4, card = prefix + "last4", prefix + "card"
    fixes: list[pl.Expr] = []
    odd = frame.get_column(last4).is_null()
    if odd.any():
        cards = frame.get_column(card).filter(odd).unique().to_list()
        fixes.append(pl.col(last4).fill_null(pl.col(card).replace_strict(
            {c: card_last4(c) for c in cards}, default=None, return_dtype=pl.String)))
    unmasked = frame.get_column(card).str.contains(MANY_DIGITS)
    if unmasked.any():
        cards = frame.get_column(card).filter(unmasked).unique().to_list()
        fixes.append(pl.col(card).replace({c: mask_card(c) for c in cards}))
    return frame.with_columns(fixes) if fixes else frame
