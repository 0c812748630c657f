"""Which column is which: header synonyms, the header row, and the mapping file.

A bank's export names its columns in Vietnamese or English, with or without
accents, in any case, sometimes with a unit in parentheses (``Số tiền (VNĐ)``), and
often below a title block. Headers are compared folded (``values.fold``); the
header row is the row among the first ``HEADER_SEARCH_ROWS`` that names the most
known columns. A mapping file names columns the synonyms do not know.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .._exceptions import InputFileError
from .values import Kind, cell_text, fold

__all__ = [
    "FIELDS",
    "HEADER_SEARCH_ROWS",
    "SYNONYMS",
    "ColumnMapping",
    "Header",
    "Role",
    "find_header",
    "fold_header",
    "load_mapping",
]

Role = Literal["bank", "invoices"]

HEADER_SEARCH_ROWS = 50

# Canonical field → spellings, written as people write them; folded at import.
_SPELLINGS: dict[str, tuple[str, ...]] = {
    "date": (
        "Ngày giao dịch", "Ngày GD", "Ngày", "Thời gian", "Thời gian giao dịch",
        "Ngày giờ", "Ngày giờ giao dịch", "Ngày thanh toán", "Ngày hóa đơn",
        "Ngày tạo", "Date", "Transaction date", "Trans date", "Txn date", "Date time",
        "Datetime", "Transaction datetime", "Payment date", "Invoice date", "Created at",
    ),
    "time": (
        "Giờ", "Giờ giao dịch", "Giờ GD", "Time", "Transaction time", "Trans time",
        "Txn time",
    ),
    "amount": (
        "Số tiền", "Số tiền giao dịch", "Số tiền GD", "Số tiền thanh toán", "Tổng tiền",
        "Thành tiền", "Giá trị giao dịch", "Amount", "Transaction amount",
        "Trans amount", "Txn amount", "Total", "Total amount", "Payment amount",
    ),
    "card": (
        "Số thẻ", "Thẻ", "Số thẻ che", "Card number", "Card no", "Card", "PAN",
        "Masked PAN", "Masked card", "Card num",
    ),
    "approval": (
        "Mã chuẩn chi", "Mã cấp phép", "Mã phê duyệt", "Mã duyệt", "Approval code",
        "Approval", "Approval no", "Auth code", "Authorization code",
        "Authorisation code", "Auth", "Appr code",
    ),
    "ref_no": (
        "Số tham chiếu", "Mã tham chiếu", "Số ref", "RRN", "Ref no", "Ref number",
        "Ref", "Refno", "Reference number", "Reference no",
        "Retrieval reference number",
    ),
    "invoice": (
        "Mã hóa đơn", "Số hóa đơn", "Hóa đơn", "Mã HĐ", "Số HĐ", "Mã đơn hàng",
        "Invoice", "Invoice no", "Invoice number", "Invoice code", "Bill no",
        "Bill number", "Bill", "Order no", "Order id", "F3",
    ),
    "reference": (
        "Reference", "Reference code", "Merchant reference", "Merchant ref", "F5",
    ),
    "tid": (
        "TID", "Terminal ID", "Terminal", "Terminal no", "Mã thiết bị", "Mã máy",
        "Mã máy POS", "Mã POS", "Số máy POS",
    ),
    "mid": (
        "MID", "Merchant ID", "Merchant no", "Mã đơn vị", "Mã ĐVCNT",
        "Mã đơn vị chấp nhận thẻ", "Mã merchant",
    ),
    "batch": ("Batch", "Batch no", "Batch number", "Số lô", "Lô", "Mã lô"),
    "receipt": (
        "Receipt", "Receipt no", "Receipt number", "Số biên lai", "Biên lai",
        "Số chứng từ", "Chứng từ",
    ),
    "type": (
        "Loại", "Loại giao dịch", "Loại GD", "Kiểu giao dịch", "Nghiệp vụ", "Type",
        "Transaction type", "Trans type", "Txn type",
    ),
    "status": (
        "Trạng thái", "Trạng thái giao dịch", "Kết quả", "Status",
        "Transaction status", "Result",
    ),
}  # fmt: skip

FIELDS: tuple[str, ...] = tuple(_SPELLINGS)
"""The fields reconciliation knows, in the order reports list them."""

SYNONYMS: dict[str, tuple[str, ...]] = {
    name: tuple(dict.fromkeys(fold(s) for s in spellings))
    for name, spellings in _SPELLINGS.items()
}
"""Field → folded header spellings that name it."""

_BY_FOLDED: dict[str, str] = {
    folded: name for name, folded_all in SYNONYMS.items() for folded in folded_all
}
_UNIT = re.compile(r"\([^)]*\)|\[[^\]]*\]")
_REQUIRED: dict[Role, tuple[str, ...]] = {
    "bank": ("amount", "date"),
    "invoices": ("amount", "invoice"),
}


def fold_header(cell: object) -> str:
    """A header cell folded for lookup, without a unit in parentheses."""
    return fold(_UNIT.sub(" ", cell_text(cell)))


@dataclass(frozen=True, slots=True)
class ColumnMapping:
    """What a mapping file says about one file (bank statement or invoice list)."""

    header_row: int | None = None
    """1-based row of the header, when detection should not search."""
    columns: Mapping[str, str | int] = field(default_factory=dict)
    """Field → header text (compared folded) or 1-based column number."""
    types: Mapping[str, Kind] = field(default_factory=dict)
    """Further spellings of the type column (folded) → kind."""


@dataclass(frozen=True, slots=True)
class Header:
    """Where the header is and which column holds which field."""

    index: int
    """0-based index of the header row among the file's rows."""
    columns: Mapping[str, int]
    """Field → 0-based column index."""
    names: Mapping[str, str]
    """Field → the header text as written (for messages)."""
    width: int

    @property
    def row(self) -> int:
        """1-based row number of the header, as a spreadsheet shows it."""
        return self.index + 1


def find_header(
    rows: Sequence[Sequence[object]],
    path: str,
    role: Role,
    mapping: ColumnMapping | None = None,
) -> Header:
    """Find the header among the first rows and map columns to fields.

    Raises ``InputFileError`` for an empty file, no header, a missing required
    column, or a field named by two columns.
    """
    mapping = mapping or ColumnMapping()
    if not any(any(cell_text(c) for c in row) for row in rows):
        raise InputFileError(path, "empty file")
    if mapping.header_row is not None:
        index = mapping.header_row - 1
        if not 0 <= index < len(rows):
            raise InputFileError(path, f"mapping says the header is on row {index + 1}")
        candidates = [index]
    else:
        candidates = list(range(min(len(rows), HEADER_SEARCH_ROWS)))
    best: tuple[int, int, dict[str, list[int]]] | None = None
    for i in candidates:
        found = _recognise(rows[i], path, i, mapping, strict=len(candidates) == 1)
        score = len(found)
        if best is None or score > best[0]:
            best = (score, i, found)
    assert best is not None
    score, index, found = best
    if score < 2 and mapping.header_row is None:
        if mapping.columns:  # say which mapped column is missing rather than "no header"
            _recognise(rows[index], path, index, mapping, strict=True)
        raise InputFileError(
            path,
            f"no header row found in the first {len(candidates)} rows "
            f"(expected column names such as {_examples('amount')}, {_examples('date')})",
        )
    row = rows[index]
    _recognise(row, path, index, mapping, strict=True)  # mapping errors on the chosen row
    for name, cols in found.items():
        if len(cols) > 1:
            texts = ", ".join(repr(cell_text(row[c])) for c in cols)
            raise InputFileError(
                path,
                f"duplicated header: {name} is named by {len(cols)} columns ({texts}); "
                "keep one or say which in a mapping file",
                row=index + 1,
                column=cell_text(row[cols[1]]),
            )
    for name in _REQUIRED[role]:
        if name not in found:
            raise InputFileError(
                path,
                f"no recognisable {name} column (expected one of: {_examples(name)}; "
                "or name it in a mapping file)",
                row=index + 1,
            )
    columns = {name: cols[0] for name, cols in found.items()}
    return Header(
        index=index,
        columns=columns,
        names={name: cell_text(row[c]) or f"#{c + 1}" for name, c in columns.items()},
        width=len(row),
    )


def _recognise(
    row: Sequence[object],
    path: str,
    index: int,
    mapping: ColumnMapping,
    *,
    strict: bool,
) -> dict[str, list[int]]:
    folded = [fold_header(c) for c in row]
    found: dict[str, list[int]] = {}
    claimed: set[int] = set()
    for name, wanted in mapping.columns.items():
        if isinstance(wanted, int):
            col = wanted - 1 if 0 < wanted <= len(row) else None
        else:
            key = fold_header(wanted)
            col = next((c for c, f in enumerate(folded) if f == key), None)
        if col is None:
            if strict:
                raise InputFileError(
                    path,
                    f"the mapping file names column {wanted!r} for {name}, "
                    "which is not in the header",
                    row=index + 1,
                )
            continue
        found[name] = [col]
        claimed.add(col)
    for c, f in enumerate(folded):
        known = _BY_FOLDED.get(f)
        if known is None or c in claimed or known in mapping.columns:
            continue
        found.setdefault(known, []).append(c)
    return found


def _examples(name: str) -> str:
    return ", ".join(_SPELLINGS[name][:2] + _SPELLINGS[name][-2:])


_MAPPING_KEYS = {"header_row", "columns", "types"}


def load_mapping(path: str | os.PathLike[str]) -> dict[Role, ColumnMapping]:
    """Read a mapping file (TOML, or JSON by its ``.json`` suffix).

    Its tables ``[bank]`` and ``[invoices]`` each may hold ``header_row``,
    ``columns`` (field = header text or column number) and ``types`` (kind =
    list of spellings). Keys at the top level apply to the bank statement.
    """
    where = str(path)
    try:
        raw = Path(path).read_bytes()
        data = json.loads(raw) if where.endswith(".json") else tomllib.loads(raw.decode())
    except OSError as exc:
        raise InputFileError(where, f"cannot read mapping file: {exc.strerror}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputFileError(where, f"not a valid mapping file: {exc}") from None
    if not isinstance(data, dict):
        raise InputFileError(where, "a mapping file holds tables [bank] and [invoices]")
    top = {k: v for k, v in data.items() if k in _MAPPING_KEYS}
    out: dict[Role, ColumnMapping] = {}
    for role in ("bank", "invoices"):
        section = data.get(role, top if role == "bank" else None)
        if section is not None:
            out[role] = _section(where, role, section)
    unknown = set(data) - _MAPPING_KEYS - {"bank", "invoices"}
    if unknown:
        raise InputFileError(where, f"unknown keys in mapping file: {sorted(unknown)}")
    return out


def _section(where: str, role: str, section: object) -> ColumnMapping:
    if not isinstance(section, dict) or set(section) - _MAPPING_KEYS:
        raise InputFileError(
            where, f"[{role}] may hold only {sorted(_MAPPING_KEYS)}", column=role
        )
    header_row = section.get("header_row")
    if header_row is not None and (not isinstance(header_row, int) or header_row < 1):
        raise InputFileError(where, "header_row must be a row number (1 or more)", column=role)
    columns = section.get("columns", {})
    if not isinstance(columns, dict):
        raise InputFileError(where, f"[{role}.columns] must be a table", column=role)
    for name, wanted in columns.items():
        if name not in FIELDS:
            raise InputFileError(
                where, f"unknown field {name!r}; known: {', '.join(FIELDS)}", column=role
            )
        if isinstance(wanted, bool) or not isinstance(wanted, (str, int)):
            raise InputFileError(
                where, f"{name} must name a header or a column number", column=role
            )
    types: dict[str, Kind] = {}
    raw_types = section.get("types", {})
    if not isinstance(raw_types, dict):
        raise InputFileError(where, f"[{role}.types] must be a table", column=role)
    for kind, spellings in raw_types.items():
        if kind not in Kind.__members__.values() or not isinstance(spellings, list):
            raise InputFileError(
                where, f"types: {kind!r} must be sale, void or refund = [spellings]"
            )
        for spelling in spellings:
            types[fold(str(spelling))] = Kind(kind)
    return ColumnMapping(header_row=header_row, columns=dict(columns), types=types)
