"""Reading XLSX workbooks fast (calamine, through fastexcel) and within bounds.

An XLSX file is a zip of XML; 400 KB of it can expand to gigabytes (a zip bomb), or
name two cells a million rows and sixteen thousand columns apart, which a reader
turns into billions of empty cells. Before calamine sees a workbook, one streaming
pass over its parts (bounded memory, about 0.1 s per 40 MB of XML) checks:

- the parts' total uncompressed size: at most ``MAX_XLSX_BYTES``, counting what
  they really expand to (a part that expands to more than its header says is
  refused, as zip's checksum fails);
- cells: at most ``MAX_XLSX_CELLS``, counted as written and as the rectangle from
  the first to the last row and column a reader would fill. "As written" counts
  every ``<c`` in the sheet's XML: each cell (``<c r=...>``, ``<c>``, ``<c/>``, or
  with any whitespace after the name) and also a few other tags (``<col``,
  ``<cfRule``, ``<customSheetView``...), never fewer than the cells, so a count
  errs only toward refusing (a sheet has far fewer of those tags than cells). A
  sheet of at most ``4 * MAX_XLSX_CELLS`` bytes is not counted: a cell takes at
  least 4 bytes (``<c/>``), so it cannot hold more than the limit;
- a shared string (text used by cells) at most ``MAX_SHARED_STRING_BYTES`` of XML:
  Excel holds at most 32,767 characters in a cell, and each cell that uses a
  shared string gets its own copy.

The same pass finds the row the sheet's data starts on (calamine starts at the
first row with a value), so rows are numbered as the spreadsheet numbers them.
"""

from __future__ import annotations

import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING
from xml.etree import ElementTree

from .._exceptions import InputFileError

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "MAX_SHARED_STRING_BYTES",
    "MAX_XLSX_BYTES",
    "MAX_XLSX_CELLS",
    "Sheet",
    "check_workbook",
    "read_sheet",
]

MAX_XLSX_BYTES = 512 * 1024 * 1024
"""Uncompressed size of all a workbook's parts (a million-row statement is ~400 MB)."""
MAX_XLSX_CELLS = 30_000_000
"""Cells of one sheet, as written and as the rectangle they span (XLSX holds at most
1,048,576 rows; a million rows of 30 columns fit)."""
MAX_SHARED_STRING_BYTES = 256 * 1024
"""One shared string item's XML (32,767 characters of up to 4 bytes, and markup)."""
_MIN_CELL_BYTES = 4
"""The least XML a cell takes (``<c/>``)."""
_SMALL_PART = 16 * 1024 * 1024
"""workbook.xml and its relationships: read whole, so bounded on their own."""
_CHUNK = 1 << 20

_ROW_TAG = re.compile(rb'<row[^>]*?\sr="([0-9]+)"')
_WIDE_REF = re.compile(rb'\sr="([A-Z]{2,3})[0-9]')
_VALUE = re.compile(rb"<v>|<v\s|<is>")
_PAST_Z = re.compile(rb' r="[A-Z]{2}')
"""A reference past column Z (two letters): one search, no copy of the chunk."""


@dataclass(frozen=True, slots=True)
class Sheet:
    """What the check learnt of one worksheet."""

    name: str
    first_row: int
    """1-based row of its first row with a value (1 if it has none)."""


def _refuse(path: str, why: str) -> InputFileError:
    return InputFileError(path, f"XLSX refused: {why}")


def check_workbook(path: str) -> list[Sheet]:
    """Check a workbook's bounds (module docstring); its sheets, in order.

    Raises ``InputFileError`` for a file that is not a workbook or is over a limit.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            declared = sum(i.file_size for i in infos)
            if declared > MAX_XLSX_BYTES:
                raise _refuse(path, f"it expands to {declared:,} bytes, more than the "
                                    f"{MAX_XLSX_BYTES:,} allowed (a zip bomb?)")
            names = {i.filename for i in infos}
            sheets = _sheet_parts(zf, names, path)
            total = 0
            first_rows: dict[str, int] = {}
            for info in infos:
                part = info.filename
                if part == "xl/sharedStrings.xml":
                    total += _scan_shared_strings(zf, info, path, total)
                elif part.startswith("xl/worksheets/") and part.endswith(".xml"):
                    size, first = _scan_sheet(zf, info, path, total)
                    total += size
                    first_rows[part] = first
    except InputFileError:
        raise
    except OSError as exc:
        raise InputFileError(path, f"cannot read: {exc.strerror or exc}") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, KeyError, ValueError,
            ElementTree.ParseError, NotImplementedError) as exc:
        raise InputFileError(path, f"not a readable XLSX file: {exc}") from None
    return [Sheet(name, first_rows.get(part, 1)) for name, part in sheets]


def _sheet_parts(zf: zipfile.ZipFile, names: set[str], path: str) -> list[tuple[str, str]]:
    """(sheet name, its XML part) in workbook order."""
    if "xl/workbook.xml" not in names:
        raise InputFileError(path, "not a readable XLSX file: no xl/workbook.xml")
    book = ElementTree.fromstring(_small(zf, "xl/workbook.xml", path))
    rels: dict[str, str] = {}
    if "xl/_rels/workbook.xml.rels" in names:
        for rel in ElementTree.fromstring(_small(zf, "xl/_rels/workbook.xml.rels", path)):
            target = rel.get("Target", "")
            part = target.lstrip("/") if target.startswith("/") else f"xl/{target}"
            rels[rel.get("Id", "")] = str(PurePosixPath(part))
    out = []
    for element in book.iter():
        if element.tag.rsplit("}", 1)[-1] != "sheet":
            continue
        rid = next((v for k, v in element.attrib.items() if k.rsplit("}", 1)[-1] == "id"), "")
        out.append((element.get("name", ""), rels.get(rid, "")))
    return out


def _small(zf: zipfile.ZipFile, name: str, path: str) -> bytes:
    if zf.getinfo(name).file_size > _SMALL_PART:
        raise _refuse(path, f"{name} is larger than {_SMALL_PART:,} bytes")
    return zf.read(name)


def _chunks(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: str, before: int
) -> Iterator[bytes]:
    """The part's bytes in chunks, refused as soon as the running total is over."""
    seen = before
    with zf.open(info) as fh:
        while chunk := fh.read(_CHUNK):
            seen += len(chunk)
            if seen > MAX_XLSX_BYTES:
                raise _refuse(path, f"it expands to more than {MAX_XLSX_BYTES:,} bytes "
                                    "(a zip bomb?)")
            yield chunk


def _scan_shared_strings(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: str,
                         before: int) -> int:
    size = 0
    carry = b""
    for chunk in _chunks(zf, info, path, before):
        size += len(chunk)
        pieces = (carry + chunk).split(b"<si>")
        carry = pieces.pop()
        if max(map(len, pieces), default=0) > MAX_SHARED_STRING_BYTES or (
            len(carry) > MAX_SHARED_STRING_BYTES
        ):
            raise _refuse(path, "a shared string is longer than a spreadsheet cell can be "
                                f"({MAX_SHARED_STRING_BYTES:,} bytes of XML)")
    return size


def _scan_sheet(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: str,
                before: int) -> tuple[int, int]:
    """(uncompressed size, first row with a value) of one worksheet, checking cells."""
    size = cells = 0
    last_row = 0
    first_row: int | None = None
    width = 26  # columns A..Z need no look; wider references are few
    tail = b""
    # A cell is at least 4 bytes ("<c/>"): a sheet this small holds too few to count.
    # (zipfile stops a part at its header's size; the check below makes sure.)
    small = _MIN_CELL_BYTES * MAX_XLSX_CELLS
    count = info.file_size > small
    for chunk in _chunks(zf, info, path, before):
        size += len(chunk)
        text = tail + chunk
        if count:
            # One count for every kind of cell tag (module docstring): a third faster
            # than counting "<c " and "<c>" apart, and it also counts "<c/>",
            # "<c\tr=...>" and the like, which those missed. Only over-counts.
            # Counted in text less the tail (counted last time): a tag cut by the
            # chunk's edge counts once.
            cells += text.count(b"<c") - tail.count(b"<c")
        elif size > small:
            raise _refuse(path, f"{info.filename} is larger than its header says")
        # Rows are in order: the chunk's last row tag is the highest so far.
        at = text.rfind(b"<row ")
        if at >= 0 and (row := _ROW_TAG.match(text, at)):
            last_row = max(last_row, int(row[1]))
        if first_row is None and (value := _VALUE.search(text)):
            before_value = text.rfind(b"<row ", 0, value.start())
            row = _ROW_TAG.match(text, before_value) if before_value >= 0 else None
            first_row = int(row[1]) if row else (last_row or 1)
        if _PAST_Z.search(text):
            # A column past Z (few statements have one): which is the widest.
            for letters in set(_WIDE_REF.findall(text)):
                width = max(width, _column_number(letters))
        span = max(last_row - (first_row or 1) + 1, 0) * width
        if cells > MAX_XLSX_CELLS or span > MAX_XLSX_CELLS * 2:
            raise _refuse(path, f"a sheet has more than {MAX_XLSX_CELLS:,} cells")
        tail = text[-64:]
    if first_row is not None and (last_row - first_row + 1) * width > MAX_XLSX_CELLS * 2:
        raise _refuse(path, f"a sheet spans more than {MAX_XLSX_CELLS:,} cells")
    return size, first_row or 1


def _column_number(letters: bytes) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + (ch - 64)
    return n


def read_sheet(path: str, index: int) -> pl.DataFrame:
    """Sheet ``index`` of a checked workbook as text cells, columns ``c0, c1, ...``.

    Every cell is text, as calamine writes it: numbers without a needless ``.0``,
    dates ``yyyy-mm-dd hh:mm:ss``; a formula gives its cached value.
    """
    import fastexcel

    try:
        sheet = fastexcel.read_excel(path).load_sheet(index, header_row=None, dtypes="string")
        frame = sheet.to_polars()
    except fastexcel.FastExcelError as exc:
        raise InputFileError(path, f"not a readable XLSX file: {exc}") from None
    return frame.rename({c: f"c{i}" for i, c in enumerate(frame.columns)})
