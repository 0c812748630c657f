"""ISO 8583 response codes as Vietnamese acquirers return them in ``returnCode``.

Written from the ISO 8583 (1987) meanings. Each code has a message a cashier
understands, in Vietnamese and English, and what to do next. The tables published
by Vietnamese web payment gateways reuse these numbers with other meanings; they do
not apply to card terminals.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["RETURN_CODES", "Action", "ReturnCode", "describe"]


class Action(enum.StrEnum):
    """What the cashier should do next."""

    NONE = "none"
    RETRY = "retry"
    OTHER_CARD = "other_card"
    CALL_BANK = "call_bank"
    CHECK_TERMINAL = "check_terminal"
    CHECK_INPUT = "check_input"


ACTION_TEXT: dict[Action, tuple[str, str]] = {
    Action.NONE: ("Không cần làm gì thêm.", "Nothing more to do."),
    Action.RETRY: ("Thử lại giao dịch.", "Try the transaction again."),
    Action.OTHER_CARD: (
        "Đề nghị khách dùng thẻ khác hoặc trả tiền mặt.",
        "Ask the customer for another card or cash.",
    ),
    Action.CALL_BANK: (
        "Gọi tổng đài ngân hàng thanh toán (ngân hàng đặt máy).",
        "Call the acquiring bank's help desk.",
    ),
    Action.CHECK_TERMINAL: (
        "Kiểm tra máy POS (kết nối, cài đặt) rồi thử lại.",
        "Check the terminal (connection, setup), then try again.",
    ),
    Action.CHECK_INPUT: (
        "Kiểm tra lại số tiền / số hóa đơn rồi thử lại.",
        "Check the amount / receipt number and try again.",
    ),
}


@dataclass(frozen=True, slots=True)
class ReturnCode:
    """One response code: its meaning in both languages and the next step."""

    code: str
    vi: str
    en: str
    action: Action

    def message(self, lang: str = "en") -> str:
        """The meaning in ``lang`` (``"vi"`` or ``"en"``)."""
        return self.vi if lang == "vi" else self.en

    def advice(self, lang: str = "en") -> str:
        """What to do next, in ``lang``."""
        vi, en = ACTION_TEXT[self.action]
        return vi if lang == "vi" else en


def _table(*rows: tuple[str, str, str, Action]) -> dict[str, ReturnCode]:
    return {code: ReturnCode(code, vi, en, action) for code, vi, en, action in rows}


A = Action
RETURN_CODES: dict[str, ReturnCode] = _table(
    ("00", "Giao dịch thành công", "Approved", A.NONE),
    ("01", "Liên hệ ngân hàng phát hành thẻ", "Refer to card issuer", A.CALL_BANK),
    ("02", "Liên hệ ngân hàng phát hành thẻ (trường hợp đặc biệt)",
     "Refer to card issuer, special condition", A.CALL_BANK),
    ("03", "Đơn vị chấp nhận thẻ không hợp lệ", "Invalid merchant", A.CALL_BANK),
    ("04", "Thẻ bị giữ lại (thu hồi thẻ)", "Pick up card", A.OTHER_CARD),
    ("05", "Giao dịch bị từ chối", "Do not honour", A.OTHER_CARD),
    ("06", "Lỗi xử lý", "Error", A.RETRY),
    ("07", "Thẻ bị giữ lại (trường hợp đặc biệt)", "Pick up card, special condition",
     A.OTHER_CARD),
    ("12", "Giao dịch không hợp lệ", "Invalid transaction", A.CHECK_INPUT),
    ("13", "Số tiền không hợp lệ", "Invalid amount", A.CHECK_INPUT),
    ("14", "Số thẻ không hợp lệ", "Invalid card number", A.OTHER_CARD),
    ("15", "Không có ngân hàng phát hành thẻ này", "No such issuer", A.OTHER_CARD),
    ("19", "Vui lòng thực hiện lại giao dịch", "Re-enter transaction", A.RETRY),
    ("21", "Không có thao tác nào được thực hiện", "No action taken", A.RETRY),
    ("25", "Không tìm thấy giao dịch gốc", "Unable to locate record", A.CHECK_INPUT),
    ("30", "Lỗi định dạng giao dịch", "Format error", A.CHECK_TERMINAL),
    ("41", "Thẻ báo mất", "Lost card, pick up", A.OTHER_CARD),
    ("43", "Thẻ báo bị đánh cắp", "Stolen card, pick up", A.OTHER_CARD),
    ("51", "Tài khoản không đủ số dư", "Insufficient funds", A.OTHER_CARD),
    ("54", "Thẻ hết hạn", "Expired card", A.OTHER_CARD),
    ("55", "Sai mã PIN", "Incorrect PIN", A.RETRY),
    ("57", "Chủ thẻ không được phép thực hiện giao dịch này",
     "Transaction not permitted to cardholder", A.OTHER_CARD),
    ("58", "Máy POS không được phép thực hiện giao dịch này",
     "Transaction not permitted to terminal", A.CALL_BANK),
    ("59", "Nghi ngờ gian lận", "Suspected fraud", A.OTHER_CARD),
    ("61", "Vượt hạn mức số tiền giao dịch", "Exceeds withdrawal amount limit", A.OTHER_CARD),
    ("62", "Thẻ bị hạn chế sử dụng", "Restricted card", A.OTHER_CARD),
    ("63", "Vi phạm bảo mật", "Security violation", A.CALL_BANK),
    ("65", "Vượt số lần giao dịch cho phép", "Exceeds withdrawal frequency limit",
     A.OTHER_CARD),
    ("68", "Ngân hàng phản hồi quá chậm", "Response received too late", A.RETRY),
    ("75", "Nhập sai PIN quá số lần cho phép", "Allowable number of PIN tries exceeded",
     A.OTHER_CARD),
    ("76", "Không tìm thấy giao dịch gốc (khóa không hợp lệ)",
     "Invalid or unknown original transaction", A.CHECK_INPUT),
    ("78", "Thẻ chưa được kích hoạt hoặc đã bị khóa", "Card blocked or not activated",
     A.OTHER_CARD),
    ("91", "Ngân hàng phát hành thẻ không phản hồi", "Issuer or switch inoperative", A.RETRY),
    ("92", "Không tìm thấy đường định tuyến giao dịch", "Routing error, destination not found",
     A.CALL_BANK),
    ("94", "Giao dịch trùng lặp", "Duplicate transmission", A.CHECK_INPUT),
    ("96", "Lỗi hệ thống", "System malfunction", A.RETRY),
    ("97", "Lỗi khóa bảo mật của máy POS", "Terminal security (key) error", A.CALL_BANK),
)
del A


def describe(code: str | None) -> ReturnCode:
    """The table entry for ``code``; an unknown code gets a generic 'not approved' entry."""
    if code is not None:
        known = RETURN_CODES.get(code.strip().zfill(2))
        if known is not None:
            return known
    shown = code if code else "?"
    return ReturnCode(
        shown,
        f"Giao dịch không thành công (mã {shown})",
        f"Not approved (code {shown})",
        Action.CALL_BANK,
    )
