"""The pure protocol core of Web ECR V201: no sockets, no serial, no clock, no storage.

Requests encode to the exact request line; replies parse into typed results; the
framer finds the end of a reply in an unframed byte stream; the return-code table
says what a code means and what to do. Both the client and the simulator use it.
"""

from .cards import card_last4, mask_card_numbers, mask_pan
from .codes import RETURN_CODES, Action, ReturnCode, describe
from .fields import check_amount, check_field, check_receipt_no, transliterate
from .framing import JsonFramer
from .replies import (
    MAX_REPLY_BYTES,
    VIETNAM_TIME,
    Outcome,
    Result,
    Status,
    Transaction,
    check_answers,
    parse_reply,
)
from .requests import (
    INVOICE_FIELD,
    MAX_REQUEST_LINE,
    REFERENCE_FIELD,
    Command,
    LastTrans,
    Request,
    Sale,
    Settle,
    Void,
    parse_request_line,
)

__all__ = [
    "INVOICE_FIELD",
    "MAX_REPLY_BYTES",
    "MAX_REQUEST_LINE",
    "REFERENCE_FIELD",
    "RETURN_CODES",
    "VIETNAM_TIME",
    "Action",
    "Command",
    "JsonFramer",
    "LastTrans",
    "Outcome",
    "Request",
    "Result",
    "ReturnCode",
    "Sale",
    "Settle",
    "Status",
    "Transaction",
    "Void",
    "card_last4",
    "check_amount",
    "check_answers",
    "check_field",
    "check_receipt_no",
    "describe",
    "mask_card_numbers",
    "mask_pan",
    "parse_reply",
    "parse_request_line",
    "transliterate",
]
