"""The one exception tree of ecrlink.

Everything ecrlink raises on purpose is an ``EcrError``; foreign errors (httpx,
pyserial, sqlite3, OSError) are translated at the boundary that meets them::

    EcrError
    ├── ProtocolError
    │   ├── LocalProtocolError        our caller asked for something the protocol cannot say
    │   │   └── FieldError            one field broke one rule (names both); also a ValueError
    │   └── RemoteProtocolError       the terminal sent something we cannot accept
    │       ├── ReplyTooLarge
    │       ├── RequestIdMismatch     a reply that answers another request
    │       └── ConflictingReply      says approved, but its own fields contradict it
    ├── TransportError                the bytes did not make it
    │   ├── ConnectError
    │   ├── ReadError                 connection closed or broken while waiting for the reply
    │   ├── WriteError
    │   ├── NotTerminalReply          a proxy, a portal or a wrong address answered (HTTP 4xx)
    │   └── TransportTimeout          also a builtin TimeoutError
    │       ├── ConnectTimeout
    │       └── ReadTimeout
    ├── TerminalBusy                  another transaction holds the terminal
    ├── InDoubtPending                a previous payment on this terminal is still unknown
    ├── DuplicateInvoice              this invoice was already paid (allow_duplicate=True)
    ├── JournalError
    │   └── IllegalTransition         a state change the payment state table does not allow
    ├── ConfigError
    └── ReconcileError
        └── InputFileError            a file we cannot read (names file, row, column)

Which of these mean "the terminal may have charged the card" is decided by the
client, not here: a ``TransportError`` after the first byte was sent, or any
``RemoteProtocolError``, leaves a payment in doubt.
``NotTerminalReply`` is a ``TransportError`` that leaves nothing in doubt: whoever
answered was not the terminal.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "ConflictingReply",
    "ConnectError",
    "ConnectTimeout",
    "DuplicateInvoice",
    "EcrError",
    "FieldError",
    "IllegalTransition",
    "InDoubtPending",
    "InputFileError",
    "JournalError",
    "LocalProtocolError",
    "NotTerminalReply",
    "ProtocolError",
    "ReadError",
    "ReadTimeout",
    "ReconcileError",
    "RemoteProtocolError",
    "ReplyTooLarge",
    "RequestIdMismatch",
    "TerminalBusy",
    "TransportError",
    "TransportTimeout",
    "WriteError",
]


class EcrError(Exception):
    """Root of every error ecrlink raises on purpose."""


class ProtocolError(EcrError):
    """A message could not be built or understood."""


class LocalProtocolError(ProtocolError):
    """The caller asked for something the protocol cannot express."""


class FieldError(LocalProtocolError, ValueError):
    """One field of a request broke one rule.

    ``field`` names the field as the user knows it (``amount``, ``invoice``, ``F4``),
    ``rule`` says in English what was expected; ``str(exc)`` is ``"field: rule"``.
    ``code`` names the rule for programs (``"too_long"``) and ``params`` holds its values
    (``{"max": 20, "length": 25}``): ``ecrlink.protocol.field_texts.field_message(exc,
    "vi")`` says it all in Vietnamese. ecrlink raises every one through
    ``field_texts.field_error``; ``code`` is None for one raised without a known rule.
    """

    def __init__(
        self,
        field: str,
        rule: str,
        value: object = None,
        *,
        code: str | None = None,
        params: dict[str, object] | None = None,
    ) -> None:
        self.field = field
        self.rule = rule
        self.value = value
        self.code = code
        self.params: dict[str, object] = dict(params or {})
        super().__init__(f"{field}: {rule}")


class RemoteProtocolError(ProtocolError):
    """The terminal sent bytes that are not an acceptable reply."""

    def __init__(self, message: str, raw: bytes = b"") -> None:
        super().__init__(message)
        self.raw = raw


class ReplyTooLarge(RemoteProtocolError):
    """The reply grew past the size limit without ending."""


class RequestIdMismatch(RemoteProtocolError):
    """The reply carries another requestId than the request: it is not our answer."""


class ConflictingReply(RemoteProtocolError):
    """A reply that says approved but is not a clean approval of our request.

    ``reasons`` lists what contradicts the approval (a transStatus DECLINE, another
    register's clientId, no transaction identifiers...), as
    ``ecrlink.protocol.approval.approval_conflicts`` found them. Like every
    ``RemoteProtocolError`` it leaves a payment in doubt: the card may or may not
    have been charged.
    """

    def __init__(self, message: str, raw: bytes = b"", reasons: tuple[str, ...] = ()) -> None:
        super().__init__(message, raw)
        self.reasons = reasons


class TransportError(EcrError):
    """The request or the reply did not cross the link."""


class ConnectError(TransportError):
    """The terminal could not be reached (refused, no route, no such port)."""


class ReadError(TransportError):
    """The link broke or closed while the reply was awaited."""


class WriteError(TransportError):
    """The request could not be written."""


class NotTerminalReply(TransportError):
    """Something that is not the terminal answered: a proxy, a captive portal, a wrong
    address; nothing was charged.

    Raised for every HTTP 4xx status: a card terminal answers its one request with
    JSON, and even a terminal refusing a malformed request with 400 has charged
    nothing. ``status`` is the HTTP status; ``first_line`` the first non-empty line of
    the body without HTML tags, at most 120 characters (never the whole page).
    """

    def __init__(self, status: int, url: str, first_line: str = "") -> None:
        self.status = status
        self.url = url
        self.first_line = first_line
        message = f"HTTP {status} from {url} (not a card terminal)"
        super().__init__(f"{message}: {first_line}" if first_line else message)


class TransportTimeout(TransportError, TimeoutError):
    """A bound on waiting was reached."""


class ConnectTimeout(TransportTimeout):
    """The terminal did not accept the connection in time."""


class ReadTimeout(TransportTimeout):
    """The terminal did not finish its reply in time."""


class TerminalBusy(EcrError):
    """Another transaction holds the terminal (our lock, or the terminal said so)."""


class InDoubtPending(EcrError):
    """A payment on this terminal is still in doubt; a new sale needs ``force=True``."""

    def __init__(self, message: str, journal_ids: tuple[int, ...] = ()) -> None:
        super().__init__(message)
        self.journal_ids = journal_ids


class DuplicateInvoice(EcrError):
    """A sale for an invoice (F3) that the journal shows approved already; names it."""

    def __init__(self, message: str, journal_id: int) -> None:
        super().__init__(message)
        self.journal_id = journal_id


class JournalError(EcrError):
    """The journal could not be opened, read or written."""


class IllegalTransition(JournalError):
    """A state change that ``ecrlink.payment.states`` does not allow; nothing was written."""


class ConfigError(EcrError):
    """The configuration file or an option is wrong."""


class ReconcileError(EcrError):
    """Reconciliation could not be carried out."""


class InputFileError(ReconcileError):
    """A file given to reconciliation cannot be read; says where."""

    def __init__(
        self,
        path: str,
        message: str,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        self.path = path
        self.row = row
        self.column = column
        where = path
        if row is not None:
            where += f", row {row}"
        if column is not None:
            where += f", column {column!r}"
        super().__init__(f"{where}: {message}")
