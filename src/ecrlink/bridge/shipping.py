"""Shipping to head office from ``ecrlink serve``: ``ecrlink journal sync --follow`` in a
thread of the bridge, and what a manager needs to know about it (``GET /v1/sync``).

The shipping itself is ``ecrlink.journal.sync.follow_journal``'s, unchanged: it reads
the store's journal file through a read-only connection of its own, so a sale never
waits on head office, however slow or far away it is. This module only starts it with
the bridge, stops it with the bridge (the batch in hand finishes), starts it again
after an error that ended it (a refusal by head office, say), and keeps its state.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .._exceptions import JournalError

__all__ = ["HeadOffice", "disabled_status"]

log = logging.getLogger("ecrlink.bridge")

_RESTART = 60.0
"""Seconds before shipping starts again after an error that ended it."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class HeadOffice:
    """Ships the journal file ``journal`` to head office's ``url`` as ``site``, in a
    background thread, between :meth:`start` and :meth:`stop`. Thread-safe."""

    def __init__(
        self, journal: Path, url: str, site: str, *, interval: float = 1.0,
        retry_max: float = 30.0,
    ) -> None:
        from ..journal.central import redact_url

        self.journal = journal
        self.url = url
        self.site = site
        self.where = redact_url(url)
        self.interval = interval
        self.retry_max = retry_max
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._state = "starting"
        self._shipped: int | None = None
        self._shipped_at: str | None = None
        self._error: str | None = None
        self._error_at: str | None = None
        self._reachable: bool | None = None

    # --- life -------------------------------------------------------------------------

    def start(self) -> None:
        """Start shipping in a thread of its own."""
        log.info("bridge: shipping %s to head office %s as %s", self.journal, self.where,
                 self.site)
        self._thread = threading.Thread(target=self._run, name="ecrlink-head-office",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        """Stop after the batch in hand (if any); wait up to ``timeout`` seconds."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("bridge: shipping to head office did not stop in %g s; the next "
                            "start goes on from head office's cursor", timeout)
        with self._lock:
            self._state = "stopped"

    def _run(self) -> None:
        from ..journal.sync import Backoff, follow_journal

        while not self._stop.is_set():
            try:
                follow_journal(self.journal, self.url, self.site, interval=self.interval,
                               backoff=Backoff(cap=self.retry_max), say=self._said,
                               stop=self._stop, caught_up=self._caught_up)
            except JournalError as exc:
                self._failed("error", str(exc))
                log.error("bridge: shipping to head office %s stopped: %s; trying again in "
                          "%g s (sales go on, the journal keeps every payment)", self.where,
                          exc, _RESTART)
                self._stop.wait(_RESTART)
            except Exception as exc:  # a bug must not end shipping for good, nor the bridge
                self._failed("error", f"{type(exc).__name__}: {exc}")
                log.exception("bridge: shipping to head office failed; trying again in %g s",
                              _RESTART)
                self._stop.wait(_RESTART)

    # --- what follow_journal reports (in its thread) ----------------------------------

    def _said(self, key: str, values: dict[str, object]) -> None:
        if key == "unreachable":
            was = self._reachable
            self._failed("unreachable", str(values.get("error")))
            if was is not False:  # once per outage, not at each retry
                log.warning("bridge: head office %s unreachable (%s); retrying, sales go on "
                            "and the journal keeps every payment", self.where,
                            values.get("error"))
        elif key == "waiting":
            with self._lock:
                self._state = "waiting"
        elif key == "shipped":
            log.debug("bridge: shipped %s change(s) to head office; in sync up to change %s",
                      values.get("changes"), values.get("shipped"))

    def _caught_up(self, shipped: int) -> None:
        with self._lock:
            was, self._reachable = self._reachable, True
            moved = shipped != self._shipped
            self._state = "in_sync"
            self._shipped = shipped
            if moved or self._shipped_at is None:
                self._shipped_at = _now()
        if was is not True:
            log.info("bridge: head office %s caught up: in sync up to change %d", self.where,
                     shipped)

    def _failed(self, state: str, error: str) -> None:
        with self._lock:
            self._state = state
            self._reachable = False if state == "unreachable" else self._reachable
            self._error = error
            self._error_at = _now()

    # --- what a manager sees ----------------------------------------------------------

    def status(self, latest: int | None) -> dict[str, Any]:
        """The shipping's state for ``GET /v1/sync``; ``latest``: the journal's latest
        change number (None: unknown)."""
        with self._lock:
            state, shipped = self._state, self._shipped
            body = {
                "enabled": True, "site": self.site, "central": self.where,
                "reachable": self._reachable, "shipped": shipped,
                "shipped_at": self._shipped_at, "last_error": self._error,
                "last_error_at": self._error_at, "reason": None,
            }
        if state == "in_sync" and latest is not None and shipped is not None \
                and latest > shipped:
            state = "behind"
        behind = max(0, latest - shipped) if latest is not None and shipped is not None \
            else None
        return {**body, "state": state, "latest": latest, "behind": behind}


def disabled_status(reason: str) -> dict[str, Any]:
    """``GET /v1/sync`` when this bridge ships nothing, saying why."""
    return {"enabled": False, "state": "off", "site": None, "central": None,
            "reachable": None, "shipped": None, "shipped_at": None, "latest": None,
            "behind": None, "last_error": None, "last_error_at": None, "reason": reason}
