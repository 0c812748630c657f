"""ecrlink: drive Vietnamese bank card terminals (Web ECR V201) from cash register software.

>>> import ecrlink                                            # doctest: +SKIP
>>> with ecrlink.Terminal("http://192.168.1.50") as pos:
...     result = pos.sale(150_000, invoice="HD0001")
"""

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
from .client import AsyncTerminal, Terminal
from .protocol import Outcome, Result, Status, Transaction, transliterate

__version__ = "0.1.0"

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
