"""Every sentence the command line says to people, in Vietnamese and English.

Kept in one table so a translator reads one file; ``text(key, lang, **values)``
formats one. Messages that come from the protocol (return codes, advice) are in
``ecrlink.protocol.codes`` and reach people through ``Result.message``/``advice``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

__all__ = ["LANGS", "MESSAGES", "Lang", "default_lang", "text"]

Lang = Literal["vi", "en"]
LANGS: tuple[Lang, ...] = ("vi", "en")

MESSAGES: dict[str, tuple[str, str]] = {
    # --- payments ---------------------------------------------------------------------
    "waiting_card": (
        "Đang chờ khách hàng quẹt/chạm thẻ… {elapsed}s",
        "Waiting for the card… {elapsed}s",
    ),
    "waiting_terminal": ("Đang chờ máy POS… {elapsed}s", "Waiting for the terminal… {elapsed}s"),
    "title_approved": ("GIAO DỊCH THÀNH CÔNG", "APPROVED"),
    "title_declined": ("GIAO DỊCH KHÔNG THÀNH CÔNG", "DECLINED"),
    "title_canceled": ("GIAO DỊCH ĐÃ HỦY", "CANCELED"),
    "title_unknown": ("CHƯA RÕ KẾT QUẢ", "OUTCOME UNKNOWN"),
    "title_amount_mismatch": ("SAI SỐ TIỀN ĐÃ TRỪ", "WRONG AMOUNT CHARGED"),
    "amount": ("Số tiền", "Amount"),
    "card": ("Số thẻ", "Card"),
    "cardholder": ("Chủ thẻ", "Cardholder"),
    "approval_code": ("Mã chuẩn chi", "Approval code"),
    "ref_no": ("Số tham chiếu", "Ref. no"),
    "tid": ("TID", "TID"),
    "mid": ("MID", "MID"),
    "batch": ("Số lô", "Batch"),
    "receipt": ("Số hóa đơn", "Receipt"),
    "time": ("Thời gian", "Time"),
    "return_code": ("Mã trả về", "Return code"),
    "reason": ("Lý do", "Reason"),
    "next_step": ("Cần làm", "What to do"),
    "detail": ("Chi tiết", "Detail"),
    "journal_id": ("Nhật ký số", "Journal entry"),
    "resolve_hint": (
        "Khi đã xác định được kết quả: ecrlink journal resolve {id} --approved SỐ_HÓA_ĐƠN "
        "hoặc --not-approved",
        "Once the outcome is known: ecrlink journal resolve {id} --approved RECEIPT "
        "or --not-approved",
    ),
    "interrupted": (
        "Đã ngắt (Ctrl-C) khi đang thanh toán: giao dịch {id} hiện CHƯA RÕ KẾT QUẢ. Máy POS "
        "có thể vẫn trừ tiền. Chạy `ecrlink journal recover` để hỏi máy POS, hoặc xem hóa "
        "đơn in rồi `ecrlink journal resolve`.",
        "Interrupted (Ctrl-C) during the payment: transaction {id} is now IN DOUBT. The "
        "terminal may still charge the card. Run `ecrlink journal recover` to ask the "
        "terminal, or look at its printed receipt and use `ecrlink journal resolve`.",
    ),
    "recovered_first": (
        "Trước khi bắt đầu, đã hỏi máy POS về giao dịch bị gián đoạn trước đó (nhật ký số "
        "{id}). Kết quả:",
        "Before starting, the terminal was asked about an earlier interrupted payment "
        "(journal entry {id}). Its outcome:",
    ),
    # --- errors -------------------------------------------------------------------------
    "error": ("Lỗi", "Error"),
    "bad_input": ("Dữ liệu không hợp lệ, chưa gửi gì", "Bad input, nothing sent"),
    "unreachable": ("Không kết nối được máy POS", "Terminal unreachable"),
    "busy": ("Máy POS đang bận", "Terminal busy"),
    "in_doubt_pending": (
        "Từ chối: có giao dịch trước chưa rõ kết quả",
        "Refused: an earlier payment is still in doubt",
    ),
    "journal_error": ("Lỗi nhật ký", "Journal error"),
    "in_doubt_refusal": (
        "giao dịch {ids} chưa rõ kết quả. KHÔNG thanh toán lại: chạy `ecrlink journal "
        "recover`, hoặc xem phiếu in trên máy POS rồi `ecrlink journal resolve`; chỉ dùng "
        "--force khi đã chắc chắn",
        "payment(s) {ids} still in doubt. Do NOT charge again: run `ecrlink journal "
        "recover`, or read the terminal's printed receipt and use `ecrlink journal "
        "resolve`; --force only once you are sure",
    ),
    # --- ping -----------------------------------------------------------------------------
    "ping_ok": ("MÁY POS ĐÃ TRẢ LỜI (không trừ tiền)", "TERMINAL ANSWERED (nothing charged)"),
    "ping_terminal": ("Máy POS", "Terminal"),
    "ping_round_trip": ("Thời gian hỏi-đáp", "Round trip"),
    "ping_tid": ("TID", "TID"),
    "ping_mid": ("MID", "MID"),
    "ping_pos_serial": ("Số seri", "Serial"),
    "ping_batch_no": ("Lô (batch)", "Batch"),
    "ping_echo": ("Gửi lại requestId", "Repeats requestIds"),
    "ping_echo_yes": ("có", "yes"),
    "ping_echo_unseen": (
        "chưa thấy (như tài liệu V201; đối chiếu theo STAN/số hóa đơn)",
        "not seen (as documented for V201; recovery uses STAN/receipt)",
    ),
    "ping_last": ("Giao dịch gần nhất", "Last transaction"),
    "ping_last_none": ("chưa có", "none yet"),
    "duplicate_invoice": (
        "Từ chối: hóa đơn này đã được thanh toán, chưa gửi gì",
        "Refused: this invoice was already paid, nothing sent",
    ),
    "unrecorded": (
        "CHƯA GHI ĐƯỢC VÀO NHẬT KÝ (máy POS đã trả lời như trên; lần chạy sau sẽ đối chiếu lại)",
        "NOT RECORDED IN THE JOURNAL (the terminal answered as above; the next run "
        "recovers it)",
    ),
    # --- journal --------------------------------------------------------------------------
    "col_site": ("Cửa hàng", "Site"),
    "col_id": ("Số", "ID"),
    "col_created": ("Lúc", "Created"),
    "col_terminal": ("Máy POS", "Terminal"),
    "col_command": ("Lệnh", "Command"),
    "col_state": ("Trạng thái", "State"),
    "col_amount": ("Số tiền", "Amount"),
    "col_invoice": ("Hóa đơn", "Invoice"),
    "col_receipt": ("HĐ POS", "Receipt"),
    "col_card": ("Thẻ", "Card"),
    "col_note": ("Ghi chú", "Note"),
    "journal_title": ("Nhật ký giao dịch ({path})", "Journal ({path})"),
    "journal_empty": ("Không có giao dịch nào.", "No entries."),
    "journal_in_doubt_count": (
        "{count} giao dịch CHƯA RÕ KẾT QUẢ: xem hóa đơn in, rồi `ecrlink journal resolve`.",
        "{count} payment(s) IN DOUBT: check the printed receipts, then `ecrlink journal "
        "resolve`.",
    ),
    "journal_more": (
        "Đang hiện {shown} giao dịch mới nhất trong tổng số {total}; còn {more} giao dịch cũ "
        "hơn chưa hiện: `--limit N` để xem thêm, `--all` để xem tất cả.",
        "Showing the newest {shown} of {total} entries; {more} older not shown: "
        "`--limit N` shows more, `--all` shows every one.",
    ),
    "journal_more_many": (
        "Đang hiện {shown} giao dịch mới nhất trong hơn {total} giao dịch: `--limit N` để "
        "xem thêm, `--all` để xem tất cả.",
        "Showing the newest {shown} of more than {total} entries: `--limit N` shows more, "
        "`--all` shows every one.",
    ),
    "journal_in_doubt_hidden": (
        "Có giao dịch chưa rõ kết quả không nằm trong trang này: `ecrlink journal list "
        "--in-doubt` liệt kê tất cả.",
        "Some of them are not on this page: `ecrlink journal list --in-doubt` lists them "
        "all.",
    ),
    "journal_site_unknown": (
        "ecrlink: trụ sở chưa có cửa hàng {sites}; các cửa hàng đã đồng bộ: {known}",
        "ecrlink: head office has no site {sites}; the sites that have synced: {known}",
    ),
    "history": ("Lịch sử", "History"),
    "nothing_to_recover": ("Không có giao dịch nào cần xác minh.", "Nothing in doubt."),
    "recovering": ("Đang hỏi máy POS {terminal}…", "Asking terminal {terminal}…"),
    "resolved": (
        "Giao dịch {id} đã được ghi nhận là {state}.",
        "Journal entry {id} is now {state}.",
    ),
    "state_approved": ("THÀNH CÔNG", "APPROVED"),
    "state_declined": ("KHÔNG THÀNH CÔNG", "NOT APPROVED"),
    # --- demo -----------------------------------------------------------------------------
    "demo_title": (
        "ecrlink demo: một ngày bán hàng trên máy POS giả lập",
        "ecrlink demo: a business day on a simulated terminal",
    ),
    "demo_started": (
        "Máy POS giả lập: HTTP {http}, cổng nối tiếp {serial}",
        "Simulated terminal: HTTP {http}, serial {serial}",
    ),
    "demo_no_serial": (
        "Không có cổng nối tiếp giả lập trên hệ điều hành này; dùng HTTP thay thế.",
        "No simulated serial port on this platform; HTTP is used instead.",
    ),
    "demo_step_sale_http": (
        "Bán hàng qua HTTP, hóa đơn {invoice}",
        "Sale over HTTP, invoice {invoice}",
    ),
    "demo_step_sale_serial": (
        "Bán hàng qua cổng nối tiếp, hóa đơn {invoice}",
        "Sale over serial, invoice {invoice}",
    ),
    "demo_step_decline": ("Thẻ không đủ số dư (…051)", "Insufficient funds (…051)"),
    "demo_step_cancel": (
        "Khách hủy trên máy POS (…999)",
        "Customer cancels at the terminal (…999)",
    ),
    "demo_step_lost": (
        "Mất phản hồi, xác minh bằng last trans (…997)",
        "Reply lost, recovered with last trans (…997)",
    ),
    "demo_step_void": (
        "Hủy giao dịch đầu tiên (hóa đơn {invoice})", "Void of the first sale (invoice {invoice})"
    ),
    "demo_step_settle": ("Kết toán cuối ngày", "End-of-day settlement"),
    "demo_step_journal": (
        "Nhật ký: không còn giao dịch chưa rõ",
        "Journal: nothing left in doubt",
    ),
    "demo_step_reconcile": (
        "Đối soát nhật ký với sao kê ngân hàng",
        "Reconcile journal vs statement",
    ),
    "demo_col_step": ("Bước", "Step"),
    "demo_col_expected": ("Mong đợi", "Expected"),
    "demo_col_got": ("Kết quả", "Got"),
    "demo_col_ok": ("Đạt", "OK"),
    "demo_summary": ("Tổng kết", "Summary"),
    "demo_all_ok": (
        "Tất cả {count} bước đều đúng ({seconds:.1f}s).",
        "All {count} steps did what they should ({seconds:.1f}s).",
    ),
    "demo_failed": (
        "{failed}/{count} bước KHÔNG đúng như mong đợi.",
        "{failed} of {count} steps did NOT do what they should.",
    ),
}


def text(key: str, lang: str, /, **values: object) -> str:
    """The message ``key`` in ``lang`` (``vi``; anything else is English), formatted."""
    vi, en = MESSAGES[key]
    template = vi if lang == "vi" else en
    return template.format(**values) if values else template


def default_lang(environ: Mapping[str, str]) -> Lang:
    """``$ECRLINK_LANG``, else Vietnamese when the locale is Vietnamese, else English."""
    chosen = environ.get("ECRLINK_LANG", "").strip().lower()
    if chosen in LANGS:
        return "vi" if chosen == "vi" else "en"
    # POSIX precedence: the first of these that is set decides the messages' language.
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = environ.get(name)
        if value:
            return "vi" if value.lower().startswith("vi") else "en"
    return "en"
