"""The terminal's flash: its ledger in a JSON state file, written atomically.

Like a real terminal, the state file holds what the terminal keeps between power
cycles: counters, the open batch, ``last trans`` and the settlement summaries. Three
files, all beside each other:

* ``<state>``: a snapshot, JSON, replaced atomically (temp file, fsync, rename);
* ``<state>.log``: one JSON line per change since that snapshot (the records a
  sale or void touched, and the counters), appended and fsynced. It keeps the cost
  of a sale constant however big the open batch grows; it is folded into a new
  snapshot at each settlement, reset, stop, and every ``COMPACT_AFTER`` lines. Each
  line carries the snapshot's generation, so lines older than the snapshot (a crash
  between the rename and the truncation) are never replayed, and a line cut short
  by a crash is ignored;
* ``<state>.settled.jsonl``: the records of settled batches, appended once at
  settlement: the bank's side, kept for the statement.

Every change is on disk before the terminal answers (a real terminal writes flash
before it prints). Writes are grouped: changes that arrive while a write is in
flight share the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from .._exceptions import ConfigError
from .cards import TestCard
from .ledger import BatchSummary, Identity, Ledger, RecordStatus, TransactionRecord

__all__ = [
    "COMPACT_AFTER",
    "STATE_VERSION",
    "StateStore",
    "TerminalState",
    "record_from_dict",
    "record_to_dict",
    "summary_to_dict",
    "write_atomically",
]

STATE_VERSION = 1
COMPACT_AFTER = 2000
"""Log lines after which the next write is a fresh snapshot instead."""

_CARD_KEYS = (
    "bin6", "last4", "length", "card_type", "cardholder", "card_input",
    "emv_app_name", "emv_aid", "expire_date", "grouped",
)


def record_to_dict(record: TransactionRecord) -> dict[str, Any]:
    """A JSON-ready record (also what ``GET /_sim/state`` shows)."""
    card = record.card
    return {
        "seq": record.seq,
        "command": record.command,
        "status": record.status.value,
        "request_id": record.request_id,
        "client_id": record.client_id,
        "time": record.time.isoformat(),
        "batch_no": record.batch_no,
        "return_code": record.return_code,
        "amount": record.amount,
        "fields": list(record.fields),
        "receipt_no": record.receipt_no,
        "stan": record.stan,
        "approval_code": record.approval_code,
        "ref_no": record.ref_no,
        "card_no": card.card_no if card else None,
        "card": {k: getattr(card, k) for k in _CARD_KEYS} if card else None,
        "emv_tc": record.emv_tc,
        "void_of": record.void_of,
        "delivery": record.delivery,
        "detail": record.detail,
    }


def record_from_dict(data: dict[str, Any]) -> TransactionRecord:
    """The inverse of :func:`record_to_dict`."""
    card_data = data.get("card")
    fields = [str(f) for f in data.get("fields") or ()] + [""] * 5
    return TransactionRecord(
        seq=int(data["seq"]),
        command=str(data["command"]),
        status=RecordStatus(data["status"]),
        request_id=str(data["request_id"]),
        client_id=str(data["client_id"]),
        time=datetime.fromisoformat(data["time"]),
        batch_no=int(data["batch_no"]),
        return_code=data.get("return_code"),
        amount=data.get("amount"),
        fields=(fields[0], fields[1], fields[2], fields[3], fields[4]),
        receipt_no=data.get("receipt_no"),
        stan=data.get("stan"),
        approval_code=data.get("approval_code"),
        ref_no=data.get("ref_no"),
        card=TestCard(**{k: card_data[k] for k in _CARD_KEYS}) if card_data else None,
        emv_tc=data.get("emv_tc"),
        void_of=data.get("void_of"),
        delivery=str(data.get("delivery", "reply")),
        detail=data.get("detail"),
    )


def summary_to_dict(summary: BatchSummary) -> dict[str, Any]:
    """A JSON-ready batch summary."""
    return {
        "batch_no": summary.batch_no,
        "sale_count": summary.sale_count,
        "sale_total": summary.sale_total,
        "void_count": summary.void_count,
        "void_total": summary.void_total,
        "net_total": summary.net_total,
        "settled_at": summary.settled_at.isoformat() if summary.settled_at else None,
        "stan": summary.stan,
    }


def _summary_from_dict(data: dict[str, Any]) -> BatchSummary:
    at = data.get("settled_at")
    return BatchSummary(
        batch_no=int(data["batch_no"]),
        sale_count=int(data["sale_count"]),
        sale_total=int(data["sale_total"]),
        void_count=int(data["void_count"]),
        void_total=int(data["void_total"]),
        settled_at=datetime.fromisoformat(at) if at else None,
        stan=data.get("stan"),
    )


def write_atomically(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data``: temp file in the same folder, fsync, rename.

    A crash leaves either the old file or the new one, never half of either.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    _write_durably(tmp, data, os.O_TRUNC, mode)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _write_durably(path: Path, data: bytes, flags: int, mode: int = 0o600) -> None:
    """Open ``path`` (``O_TRUNC`` or ``O_APPEND``), write all of ``data``, fsync, close."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | flags, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    # The rename is durable only once the directory entry is.
    with contextlib.suppress(OSError):
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


@dataclass
class TerminalState:
    """One terminal's slot in the state file: its ledger and its reset count."""

    ledger: Ledger
    epoch: int = 0
    """Grows on each reset, so settled records of a former life are not reloaded."""


def _compact(doc: dict[str, Any]) -> str:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


def _read_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of ``path``, skipping any a crash cut short."""
    if not path.exists():
        return []
    out = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if isinstance(item, dict):
                out.append(item)
    return out


def _replay(data: dict[str, Any], changes: list[dict[str, Any]]) -> None:
    """Apply a terminal's logged changes to its snapshot, in order."""
    records: list[dict[str, Any]] = list(data["open_batch"])
    where = {int(r["seq"]): i for i, r in enumerate(records)}
    for change in changes:
        for record in change["records"]:
            seq = int(record["seq"])
            if seq in where:
                records[where[seq]] = record
            else:
                where[seq] = len(records)
                records.append(record)
        for key in ("batch_no", "last_receipt", "last_stan", "last_seq"):
            data[key] = change[key]
        last = change.get("last_success")
        if last is not None and int(last) in where:
            data["last_success"] = records[where[int(last)]]
    data["open_batch"] = records


class StateStore:
    """Loads and saves the state of every terminal of one simulator."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.log_path = self.path.with_name(self.path.name + ".log")
        self.settled_path = self.path.with_name(self.path.name + ".settled.jsonl")
        self._generation = 0
        self._pending: list[str] = []
        self._log_lines = 0
        self._snapshot_due = True
        self._wanted = 0
        self._written = 0
        self._writer: asyncio.Future[None] | None = None
        self._slots: Callable[[], Sequence[TerminalState]] = tuple

    # --- loading -----------------------------------------------------------------------

    def load(self, identities: Sequence[Identity]) -> list[TerminalState]:
        """The saved state of each terminal, or fresh ones (missing file or slot)."""
        saved: list[dict[str, Any]] = []
        if self.path.exists():
            try:
                doc = json.loads(self.path.read_text(encoding="utf-8"))
                if doc.get("version") != STATE_VERSION:
                    raise ValueError(f"unknown state version {doc.get('version')!r}")
                saved = list(doc["terminals"])
                self._generation = int(doc.get("generation", 0))
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
                # Refusing is safer than starting a fresh batch over a real one.
                raise ConfigError(f"state file {self.path}: cannot be read ({exc})") from exc
        changes = [c for c in _read_lines(self.log_path) if c.get("g") == self._generation]
        settled = self._load_settled()
        states: list[TerminalState] = []
        for index, identity in enumerate(identities):
            if index >= len(saved):
                states.append(TerminalState(Ledger(identity)))
                continue
            try:
                data = dict(saved[index])
                epoch = int(data.get("epoch", 0))
                _replay(data, [c for c in changes if c["t"] == index and c["e"] == epoch])
                states.append(self._terminal_from(identity, data, settled.get(index, {})))
            except (ValueError, KeyError, TypeError) as exc:
                raise ConfigError(
                    f"state file {self.path}: terminal {index + 1} cannot be read ({exc})"
                ) from exc
        return states

    def _load_settled(self) -> dict[int, dict[int, dict[str, Any]]]:
        """Settled records by terminal index then seq (a later line replaces an earlier)."""
        out: dict[int, dict[int, dict[str, Any]]] = {}
        for item in _read_lines(self.settled_path):
            try:
                index, epoch, record = int(item["terminal"]), int(item["epoch"]), item["record"]
                seq = int(record["seq"])
            except (ValueError, KeyError, TypeError):
                continue
            out.setdefault(index, {})[seq] = {"epoch": epoch, **record}
        return out

    @staticmethod
    def _terminal_from(
        identity: Identity, data: dict[str, Any], settled: dict[int, dict[str, Any]]
    ) -> TerminalState:
        epoch = int(data.get("epoch", 0))
        through = int(data.get("settled_through", 0))
        # Records of a settlement the state file never saw (crash in between) are
        # dropped: that batch is still open in the state file and will settle again.
        settled_records = [
            record_from_dict(r)
            for seq, r in sorted(settled.items())
            if r["epoch"] == epoch and seq <= through
        ]
        last = data.get("last_success")
        ledger = Ledger(
            identity,
            batch_no=int(data["batch_no"]),
            last_receipt=int(data["last_receipt"]),
            last_stan=int(data["last_stan"]),
            last_seq=int(data["last_seq"]),
            open_batch=[record_from_dict(r) for r in data["open_batch"]],
            settled=settled_records,
            settlements=[_summary_from_dict(s) for s in data.get("settlements", ())],
            last_success=record_from_dict(last) if last else None,
        )
        return TerminalState(ledger, epoch)

    # --- saving ------------------------------------------------------------------------

    def attach(self, slots: Callable[[], Sequence[TerminalState]]) -> None:
        """Tell the store where to find the terminals it saves."""
        self._slots = slots

    def encode(self) -> bytes:
        """The snapshot's bytes for the terminals as they are now."""
        terminals = []
        for slot in self._slots():
            ledger = slot.ledger
            settled = ledger.settled
            last = ledger.last_success
            terminals.append({
                "tid": ledger.identity.tid,
                "mid": ledger.identity.mid,
                "epoch": slot.epoch,
                "batch_no": ledger.batch_no,
                "last_receipt": ledger.last_receipt,
                "last_stan": ledger.last_stan,
                "last_seq": ledger.last_seq,
                "settled_through": settled[-1].seq if settled else 0,
                "settlements": [summary_to_dict(s) for s in ledger.settlements],
                "open_batch": [record_to_dict(r) for r in ledger.open_batch],
                "last_success": record_to_dict(last) if last else None,
            })
        doc = {"version": STATE_VERSION, "generation": self._generation, "terminals": terminals}
        return _compact(doc).encode("utf-8")

    def note(
        self, index: int, slot: TerminalState, records: Sequence[TransactionRecord]
    ) -> None:
        """Queue the change that touched ``records`` of terminal ``index`` for the log."""
        ledger = slot.ledger
        last = ledger.last_success
        self._pending.append(_compact({
            "g": self._generation,
            "t": index,
            "e": slot.epoch,
            "batch_no": ledger.batch_no,
            "last_receipt": ledger.last_receipt,
            "last_stan": ledger.last_stan,
            "last_seq": ledger.last_seq,
            "last_success": last.seq if last else None,
            "records": [record_to_dict(r) for r in records],
        }))

    def snapshot_next(self) -> None:
        """Make the next write a full snapshot (after a settlement or a reset)."""
        self._snapshot_due = True

    def save_now(self) -> None:
        """Write a snapshot synchronously (at start and at stop)."""
        self._generation += 1
        self._pending.clear()
        self._write_snapshot(self.encode())
        self._snapshot_due = False

    def _write_snapshot(self, data: bytes) -> None:
        write_atomically(self.path, data)
        # Lines of the previous generation are now ignored; drop them to save space.
        fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.close(fd)
        self._log_lines = 0

    async def commit(self) -> None:
        """Return once every change noted before this call is on disk."""
        self._wanted += 1
        wanted = self._wanted
        while self._written < wanted:
            if self._writer is None:
                self._writer = asyncio.ensure_future(self._write_once())
            # Shielded: a request whose client vanished must not abort a shared write.
            await asyncio.shield(self._writer)

    async def _write_once(self) -> None:
        covered = self._wanted
        try:
            if self._snapshot_due or self._log_lines + len(self._pending) > COMPACT_AFTER:
                self._generation += 1
                self._pending.clear()
                self._snapshot_due = False
                try:
                    await asyncio.to_thread(self._write_snapshot, self.encode())
                except BaseException:
                    self._snapshot_due = True
                    raise
            elif self._pending:
                lines = "".join(line + "\n" for line in self._pending).encode("utf-8")
                self._log_lines += len(self._pending)
                self._pending.clear()
                await asyncio.to_thread(_append_durably, self.log_path, lines)
            self._written = covered
        finally:
            self._writer = None

    async def append_settled(
        self, index: int, epoch: int, records: Sequence[TransactionRecord]
    ) -> None:
        """Append a settled batch's records to the sidecar, durably."""
        lines = "".join(
            _compact({"terminal": index, "epoch": epoch, "record": record_to_dict(r)}) + "\n"
            for r in records
        )
        await asyncio.to_thread(_append_durably, self.settled_path, lines.encode("utf-8"))


def _append_durably(path: Path, data: bytes) -> None:
    _write_durably(path, data, os.O_APPEND)
