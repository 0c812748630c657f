"""Reading XLSX workbooks fast (calamine, through fastexcel) and within bounds.

An XLSX file is a zip of XML; 400 KB of it can expand to gigabytes (a zip bomb), or
name two cells a million rows and sixteen thousand columns apart, which a reader
turns into billions of empty cells. Before calamine sees a workbook, one streaming
pass over its parts (bounded memory, about 0.25 s per 40 MB of XML) checks:

- the parts' total uncompressed size: at most ``MAX_XLSX_BYTES``, counting what
  they really expand to (a part that expands to more than its header says is
  refused, as zip's checksum fails);
- cells: at most ``MAX_XLSX_CELLS`` as written (every ``<c`` element, any prefix,
  counted in sheets of more than ``4 * MAX_XLSX_CELLS`` bytes: a cell takes at least
  4 bytes), and at most ``2 * MAX_XLSX_CELLS`` in the rectangle calamine allocates:
  (last - first row + 1) x (last - first column + 1) over the cells with a value,
  each placed as calamine 0.36 places it (its own ``r``, quoted either way, spaces
  around ``=``, any prefix, the last ``r`` if two; or, without ``r``, after the cell
  before it and the row's ``r``). A million rows of 30 columns fit.

  A fast pass proves a sheet *plain*: with whitespace, ``=``, quotes, ``>`` and ``/``
  made one character and ``:`` made ``<`` (``_SEPARATORS``), every cell element's
  first attribute is ``r``, and every ``r`` attribute anywhere names at most three
  capitals and a row of at most 1,099,999 (two regex searches per chunk). Its cells
  then lie within rows 1..1,099,999 and columns A..the widest named, and that
  rectangle must fit. Any other sheet (a cell without ``r``, prefixed or lowercase
  references, odd spellings, or a bound that does not fit) is read again with expat
  replaying calamine's rules exactly (``_Replay``; seconds for a large sheet), and
  refused if it is not well-formed XML, has a DOCTYPE, nests elements in a cell
  value that calamine would misread, or puts a cell past row 1,048,576 or column
  XFD. A cell is counted as having a value if it has ``<is>``, or ``<v>`` with text
  or a type other than ``n``/``s`` (calamine drops the rest; counting one too many
  only errs toward refusing);
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
from xml.parsers import expat

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
_SMALL_PART = 16 * 1024 * 1024
"""workbook.xml and its relationships: read whole, so bounded on their own."""
_CHUNK = 1 << 20

_TAIL = 64
"""Bytes of a chunk read again with the next (a tag cut by the chunk's edge)."""
_EDGE = 32
"""A match this near a chunk's end may be cut short: judged with the next chunk."""
_ROWS, _COLUMNS = 1_048_576, 16_384
"""A spreadsheet's last row and column (XFD)."""
_MIN_CELL_BYTES = 4
"""The least XML a cell takes (``<c/>``)."""
_FAST_ROWS = 1_099_999
"""The highest row a plain reference names (up to 6 digits, or 7 starting "10")."""

_SEPARATORS = bytes.maketrans(b" \t\n\r='>/:", b'"' * 8 + b"<")
"""Whitespace, '=', quotes, '>' and '/' to '"', and ':' to '<': each spelling of a
tag or an attribute calamine reads as the same becomes one (module docstring)."""
_NORMAL = bytes.maketrans(
    b" \t\n\r='>/:0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    b'"' * 8 + b"<" + b"0" * 10 + b"A" * 26,
)
"""``_SEPARATORS``, and every digit to '0' and capital to 'A': a plain reference is
then ``A`` and one to six ``0``."""
_NOT_PLAIN_CELL = re.compile(rb'<c"(?!r""A)')
"""A cell (any prefix: ':' became '<') whose first attribute is not ``r`` naming
a capital letter."""
_BAD_R = re.compile(rb'"r""(?!A?0{1,6}")')
"""An ``r`` attribute (of a cell, a row, anything, anywhere in a tag) that is not a
reference of one capital and at most six digits."""
_BAD_R_EXACT = re.compile(rb'"r""(?![A-Z]{0,3}(?:[1-9][0-9]{0,5}|10[0-9]{5})")')
_WIDE = re.compile(rb'"r""([A-Z]{2,3})[0-9]')
_REF_ROW = re.compile(rb"[A-Z]{1,3}([0-9]{1,7})")
_FIRST_VALUE = re.compile(rb'<(?:v|is)"')


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
    """(uncompressed size, first row with a value) of one worksheet, checking cells.

    One fast pass (module docstring) proves the sheet plain, or ``_replay`` reads it
    again as calamine does.
    """
    size = cells = 0
    width = 26  # one-letter references: columns A..Z
    is_plain = True
    first_row: int | None = None
    tail = b""
    # A cell is at least 4 bytes ("<c/>"): a sheet this small holds too few to count.
    # (zipfile stops a part at its header's size; the check below makes sure.)
    small = _MIN_CELL_BYTES * MAX_XLSX_CELLS
    count = info.file_size > small
    chunks = _chunks(zf, info, path, before)
    chunk = next(chunks, b"")
    while chunk:
        following = next(chunks, b"")
        size += len(chunk)
        text = chunk.translate(_NORMAL)
        # The seam: the last chunk's tail and this chunk's head, for a tag cut by the
        # edge (matches wholly in either side are found in that side).
        seam = (tail + chunk[:_TAIL]).translate(_NORMAL)
        if count:
            cells += text.count(b'<c"') + seam.count(b'<c"') - (
                seam[: len(tail)].count(b'<c"') + seam[len(tail) :].count(b'<c"'))
            if cells > MAX_XLSX_CELLS:
                raise _refuse(path, f"a sheet has more than {MAX_XLSX_CELLS:,} cells")
        elif size > small:
            raise _refuse(path, f"{info.filename} is larger than its header says")
        if is_plain:
            edge = len(text) if not following else len(text) - _EDGE
            is_plain, width = _plain(text, edge, width, chunk)
            if is_plain and tail:
                is_plain, width = _plain(seam, len(tail), width, tail + chunk[:_TAIL])
        if is_plain and first_row is None and (value := _FIRST_VALUE.search(text)):
            at = text.rfind(b'<c"r""', 0, value.start())
            ref = _REF_ROW.match(chunk, at + 6) if at >= 0 else None
            if ref is None:
                is_plain = False  # its cell starts in the last chunk: let the replay say
            else:
                first_row = int(ref[1])
        tail = chunk[-_TAIL:]
        chunk = following
    if not (is_plain and _FAST_ROWS * width <= 2 * MAX_XLSX_CELLS):
        first_row = _replay(zf, info, path, before)
    return size, first_row or 1


def _plain(text: bytes, edge: int, width: int, raw: bytes) -> tuple[bool, int]:
    """Whether the cells that start in ``text`` before ``edge`` are plain (module
    docstring); the widest column they name. ``raw`` is ``text`` untranslated.

    A match past ``edge`` may be cut short by the chunk's end: the next chunk's seam
    judges it whole.
    """
    bad = _NOT_PLAIN_CELL.search(text, 0, edge + 8)
    if bad is not None and bad.start() < edge:
        return False, width
    bad = _BAD_R.search(text, 0, edge + 16)
    if bad is None or bad.start() >= edge:
        return True, width
    # A reference past column Z or row 999,999 (few statements have one): plain if
    # its letters are at most three and its row at most 1,099,999; which is widest.
    exact = raw.translate(_SEPARATORS)
    bad = _BAD_R_EXACT.search(exact, 0, edge + 16)
    if bad is not None and bad.start() < edge:
        return False, width
    # A reference starting before the edge is read whole: its digits may lie past it.
    wide = {m[1] for m in _WIDE.finditer(exact, 0, edge + 16) if m.start() < edge}
    for letters in wide:
        width = max(width, _column_number(letters))
    return True, width


def _column_number(letters: bytes) -> int:
    n = 0
    for ch in letters.upper():
        n = n * 26 + (ch - 64)
    return n


def _replay(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: str, before: int) -> int:
    """Read a sheet that is not plain as calamine does (module docstring); its first
    row with a value, or refused."""
    replay = _Replay(path)
    parser = expat.ParserCreate()  # no namespaces: names as written, as calamine
    parser.buffer_text = True
    parser.StartElementHandler = replay.start
    parser.EndElementHandler = replay.end
    parser.CharacterDataHandler = replay.text
    parser.StartDoctypeDeclHandler = replay.doctype
    try:
        for chunk in _chunks(zf, info, path, before):
            parser.Parse(chunk, False)
            if replay.done:
                break
        else:
            parser.Parse(b"", True)
    except expat.ExpatError as exc:
        raise _refuse(path, f"{info.filename} is not well-formed XML ({exc})") from None
    return replay.finish()


_NESTED = frozenset({"c", "row", "v", "f", "is", "sheetData"})
"""Names calamine would take for a cell's end, a row or the sheet's end if they
stood inside a cell's value: refused there."""


class _Replay:
    """calamine 0.36's walk over a sheet's cells (``XlsxCellReader::next_cell``), with
    every position kept to a spreadsheet's bounds and the rectangle it would fill."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.inside = False
        self.done = False
        self.row = self.col = 0  # calamine's row_index and col_index (0-based)
        self.depth = 0  # > 0: inside a cell, that many elements deep
        self.cell = (0, 0)
        self.kind: str | None = None
        self.valued = False
        self.in_v = False
        self.top = self.left = 1 << 40
        self.bottom = self.right = -1

    def doctype(self, *_: object) -> None:
        # A DTD's entities and default attributes would make expat see what calamine
        # does not; a spreadsheet never has one.
        raise _refuse(self.path, "a worksheet declares a DOCTYPE")

    def start(self, name: str, attrs: dict[str, str]) -> None:
        if self.done:
            return
        local = name[name.find(":") + 1 :]
        if not self.inside:
            self.inside = local == "sheetData"
        elif self.depth:
            if self.depth == 1 and local not in ("v", "f", "is"):
                raise _refuse(self.path, f"a cell holds a <{_shown(name)}> element")
            if self.depth > 1 and local in _NESTED:
                raise _refuse(self.path, f"a cell's value holds a <{_shown(name)}> element")
            if self.depth == 1:
                self.in_v = local == "v"
                # calamine keeps a value for <is>, and for <v> with text or of a
                # type that keeps even an empty one ("str", ...): counted if maybe.
                self.valued |= local == "is" or (self.in_v and self.kind not in (
                    None, "n", "s"))
            self.depth += 1
        elif local == "row":
            ref = attrs.get("r")
            if ref is not None:
                self.row = _row_reference(ref, self.path)
        elif local == "c":
            ref = attrs.get("r")
            if ref is not None:
                self.cell = _cell_reference(ref, self.path)
                self.col = self.cell[1]
            else:
                self.cell = (self.row, self.col)
                if self.row >= _ROWS or self.col >= _COLUMNS:
                    raise _refuse(self.path, "a cell lies past a spreadsheet's last row "
                                             "or column")
            self.depth = 1
            self.kind = attrs.get("t")
            self.valued = self.in_v = False

    def text(self, data: str) -> None:
        if self.in_v and data:
            self.valued = True

    def end(self, name: str) -> None:
        if not self.inside or self.done:
            return
        local = name[name.find(":") + 1 :]
        if self.depth:
            self.depth -= 1
            if self.depth == 1:
                self.in_v = False
            elif self.depth == 0:
                self.col = self.cell[1] + 1
                if self.valued:
                    row, col = self.cell
                    self.top, self.bottom = min(self.top, row), max(self.bottom, row)
                    self.left, self.right = min(self.left, col), max(self.right, col)
        elif local == "row":
            self.row += 1
            self.col = 0
        elif local == "sheetData":
            self.done = True

    def finish(self) -> int:
        if self.bottom < 0:
            return 1
        span = (self.bottom - self.top + 1) * (self.right - self.left + 1)
        if span > 2 * MAX_XLSX_CELLS:
            raise _refuse(self.path, f"a sheet spans {span:,} cells, more than the "
                                     f"{2 * MAX_XLSX_CELLS:,} allowed")
        return self.top + 1


_CELL_REF = re.compile(r"([A-Za-z]{1,3})([0-9]{1,7})")
_ROW_REF = re.compile(r"[A-Za-z]{0,3}([0-9]{1,7})")


def _cell_reference(ref: str, path: str) -> tuple[int, int]:
    """(row, column), 0-based, of a cell's ``r``, within a spreadsheet's bounds."""
    match = _CELL_REF.fullmatch(ref)
    if match is not None:
        row, col = int(match[2]), _column_number(match[1].encode())
        if 1 <= row <= _ROWS and col <= _COLUMNS:
            return row - 1, col - 1
    raise _refuse(path, f"a cell's reference {_shown(ref)!r} is not a spreadsheet's")


def _row_reference(ref: str, path: str) -> int:
    match = _ROW_REF.fullmatch(ref)
    if match is not None and int(match[1]) >= 1:
        return int(match[1]) - 1  # past the last row: refused if a cell lies there
    raise _refuse(path, f"a row's number {_shown(ref)!r} is not a spreadsheet's")


def _shown(text: str) -> str:
    """At most 20 characters of a file's text, on one line."""
    return text[:20].encode("unicode_escape").decode("ascii")


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
