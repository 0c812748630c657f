"""``POST /v1/reconciliations``: a thin adapter over ``ecrlink.reconcile.reconcile``.

The uploads (``bank``, optional ``invoices``) are saved in a folder of their own
under the data directory, reconciled against the journal exactly as ``ecrlink
reconcile --json`` does (same JSON: ``write_json``), what the statement proves is
recorded in the journal (in-doubt sales it matches become approved), and the XLSX
report is written beside them and served at ``/v1/reconciliations/{id}.xlsx``.
Reports older than 7 days are deleted at the next upload.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import secrets
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.datastructures import UploadFile
from starlette.requests import Request

from .._exceptions import InputFileError, ReconcileError
from ..journal import Entry, ResolvedBy, State
from .errors import ApiError, bad_input

if TYPE_CHECKING:
    from .service import Bridge

__all__ = ["Reconciliations"]

_ID = re.compile(r"rec_[0-9a-f]{16}")
_SUFFIXES = (".csv", ".xlsx", ".txt")
KEEP_SECONDS = 7 * 24 * 3600


class Reconciliations:
    """Runs reconciliations and keeps their XLSX reports."""

    def __init__(self, bridge: Bridge, folder: Path, limit: int) -> None:
        self.bridge = bridge
        self.folder = folder
        self.limit = limit

    async def run(self, request: Request) -> dict[str, Any]:
        """Read the multipart upload, reconcile, return the report's JSON."""
        try:
            form = await request.form(max_files=2, max_fields=4, max_part_size=self.limit)
        except Exception as exc:  # a malformed multipart body: Starlette's own errors
            raise bad_input("body", f"must be multipart/form-data with a file \"bank\" "
                            f"({type(exc).__name__})") from None
        unknown = sorted(set(form) - {"bank", "invoices"})
        if unknown:
            name = unknown[0][:40]
            raise bad_input(name if name.isprintable() and name.strip() else "body",
                            f"unknown part {name!r} (known: bank, invoices)")
        bank = form.get("bank")
        if not isinstance(bank, UploadFile):
            raise bad_input("bank", "is required: the bank's statement, a CSV or XLSX file")
        invoices = form.get("invoices")
        if invoices is not None and not isinstance(invoices, UploadFile):
            raise bad_input("invoices", "must be a file (CSV or XLSX)")
        report_id = f"rec_{secrets.token_hex(8)}"
        folder = self.folder / report_id
        await asyncio.to_thread(self._prepare, folder)
        paths = {"bank": await _save(bank, folder, "bank")}
        if invoices is not None:
            paths["invoices"] = await _save(invoices, folder, "invoices")
        try:
            data = await asyncio.to_thread(self._reconcile, paths, folder)
        except InputFileError as exc:
            field = next((k for k, p in paths.items() if str(p) == exc.path), "bank")
            raise bad_input(field, str(exc).replace(str(folder) + "/", "")) from None
        except ReconcileError as exc:
            raise bad_input("bank", str(exc)) from None
        data["id"] = report_id
        data["xlsx_url"] = f"/v1/reconciliations/{report_id}.xlsx"
        await self.bridge.refresh_open()
        return data

    def _prepare(self, folder: Path) -> None:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        cutoff = time.time() - KEEP_SECONDS
        for old in self.folder.iterdir():
            if old.is_dir() and _ID.fullmatch(old.name) and old.stat().st_mtime < cutoff:
                shutil.rmtree(old, ignore_errors=True)
        folder.mkdir(mode=0o700)

    def _reconcile(self, paths: dict[str, Path], folder: Path) -> dict[str, Any]:
        from ..reconcile import reconcile, write_json, write_report

        journal = self.bridge.journal
        entries = list(journal.entries(commands=("sale", "void")))

        def resolve(entry: Entry, state: State, note: str) -> None:
            journal.resolve(entry.id, state, by=ResolvedBy.RECONCILIATION,
                            who="ecrlink serve", note=note)

        report = reconcile(paths["bank"], invoices=paths.get("invoices"), entries=entries,
                           resolve=resolve)
        out = io.StringIO()
        write_json(report, out)
        write_report(report, folder / "report.xlsx", self.bridge.config.lang)
        data: dict[str, Any] = json.loads(out.getvalue())
        return data

    def xlsx(self, report_id: str) -> Path:
        """The XLSX of a report; 404 if there is none."""
        path = self.folder / report_id / "report.xlsx"
        if not _ID.fullmatch(report_id) or not path.is_file():
            raise ApiError(404, "not_found", f"no reconciliation report {report_id[:40]!r}",
                           field="id")
        return path


async def _save(upload: UploadFile, folder: Path, name: str) -> Path:
    suffix = Path(upload.filename or "").suffix.lower()
    if suffix not in _SUFFIXES:
        raise bad_input(name, "must be a .csv or .xlsx file")
    path = folder / f"{name}{suffix}"
    data = await upload.read()
    await asyncio.to_thread(path.write_bytes, data)
    return path
