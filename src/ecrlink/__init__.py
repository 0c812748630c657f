"""ecrlink: drive Vietnamese bank card terminals (Web ECR V201) from cash register software.

>>> import ecrlink                                            # doctest: +SKIP
>>> with ecrlink.Terminal("http://192.168.1.50") as pos:
...     result = pos.sale(150_000, invoice="HD0001")
"""

from typing import TYPE_CHECKING, Any

from ._exceptions import (
    ConfigError,
    ConflictingReply,
    ConnectError,
    ConnectTimeout,
    DuplicateInvoice,
    EcrError,
    FieldError,
    IllegalTransition,
    InDoubtPending,
    InputFileError,
    JournalError,
    LocalProtocolError,
    NotTerminalReply,
    ProtocolError,
    ReadError,
    ReadTimeout,
    ReconcileError,
    RemoteProtocolError,
    ReplyTooLarge,
    RequestIdMismatch,
    TerminalBusy,
    TransportError,
    TransportTimeout,
    WriteError,
)
from ._version import __version__
from .protocol import Outcome, Result, Status, Transaction, transliterate

if TYPE_CHECKING:
    from .async_client import AsyncTerminal
    from .client import Terminal


__all__ = [
    "AsyncTerminal",
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
    "Outcome",
    "ProtocolError",
    "ReadError",
    "ReadTimeout",
    "ReconcileError",
    "RemoteProtocolError",
    "ReplyTooLarge",
    "RequestIdMismatch",
    "Result",
    "Status",
    "Terminal",
    "TerminalBusy",
    "Transaction",
    "TransportError",
    "TransportTimeout",
    "WriteError",
    "__version__",
    "transliterate",
]


def __getattr__(name: str) -> Any:
    # The clients are imported on first use: ``ecrlink --help`` and programs that use
    # only the protocol need neither SQLite nor the transports, and a blocking
    # program never imports asyncio.
    if name == "Terminal":
        from .client import Terminal

        return Terminal
    if name == "AsyncTerminal":
        from .async_client import AsyncTerminal

        return AsyncTerminal
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
