"""The pure protocol core of Web ECR V201: no sockets, no serial, no clock, no storage.

Requests encode to the exact request line; replies parse into typed results; the
framer finds the end of a reply in an unframed byte stream; the return-code table
says what a code means and what to do. ``approval`` holds the one strict rule of what
a clean approval is, ``cards`` the one rule of how card numbers are masked. Both the
client and the simulator use it.
"""

from .approval import APPROVED_CODE, approval_conflicts, return_code_text
from .cards import card_last4, luhn_valid, mask_card_numbers, mask_pan, mask_text
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
    "APPROVED_CODE",
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
    "approval_conflicts",
    "card_last4",
    "check_amount",
    "check_answers",
    "check_field",
    "check_receipt_no",
    "describe",
    "luhn_valid",
    "mask_card_numbers",
    "mask_pan",
    "mask_text",
    "parse_reply",
    "parse_request_line",
    "return_code_text",
    "transliterate",
]
