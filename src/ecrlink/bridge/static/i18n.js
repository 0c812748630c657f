/**
 * The console's words in Vietnamese (the default) and English, and the way numbers,
 * money and times are written in each. The chosen language is remembered in
 * localStorage (it is not a secret). Texts about a payment's outcome (a decline's
 * reason, what to do next) come from the bridge, in the language the console asks
 * for with `Accept-Language`: they are written once, in ecrlink's protocol tables.
 */

const TEXT = {
  vi: {
    app_title: "ecrlink – Thanh toán thẻ",
    skip: "Bỏ qua tới nội dung",
    tab_cashier: "Thu ngân",
    tab_manager: "Quản lý",
    lang_switch: "English",
    lang_switch_label: "Switch to English",
    logout: "Đăng xuất",
    login_title: "Đăng nhập",
    login_intro: "Nhập khóa API của quầy (do quản lý cấp). Khóa chỉ được giữ trong tab này và mất khi đóng tab.",
    api_key: "Khóa API",
    login: "Đăng nhập",
    login_first: "Chưa có khóa? Lần chạy đầu tiên, ecrlink serve tạo một khóa quản lý và in ra màn hình (khi cấu hình chưa có khóa nào).",
    login_bad_key: "Khóa API không đúng hoặc đã bị thu hồi.",
    login_no_bridge: "Không kết nối được tới bridge. Kiểm tra ecrlink serve đang chạy.",
    terminal: "Máy POS",
    no_terminals: "Chưa cấu hình máy POS nào.",
    amount: "Số tiền",
    amount_hint: "Nhập bằng bàn phím số hoặc các nút bên dưới.",
    invoice: "Số hóa đơn",
    invoice_hint: "Không bắt buộc. In trên hóa đơn và dùng để đối soát.",
    keypad: "Bàn phím số",
    key_clear: "Xóa hết",
    key_back: "Xóa một số",
    pay: "Thanh toán",
    pay_again_dup: "Vẫn thanh toán",
    new_sale: "Giao dịch mới",
    amount_required: "Nhập số tiền lớn hơn 0.",
    terminal_required: "Chọn máy POS.",
    state_idle: "Sẵn sàng",
    state_busy: "Đang giao dịch",
    state_in_doubt: "Chưa rõ kết quả",
    state_unreachable: "Mất kết nối",
    waiting_card: "Đang chờ khách quẹt/chạm thẻ…",
    waiting_hint: "Mời khách quẹt, cắm hoặc chạm thẻ trên máy POS và làm theo hướng dẫn trên máy.",
    sending: "Đang gửi tới máy POS…",
    approved_title: "Thanh toán thành công",
    declined_title: "Thanh toán không thành công",
    canceled_title: "Giao dịch đã hủy trên máy POS",
    failed_title: "Không gửi được tới máy POS",
    failed_text: "Máy POS chưa nhận lệnh, khách chưa bị trừ tiền.",
    settled_not_paid: "Đã xác định: giao dịch không thành công, khách chưa bị trừ tiền.",
    advice_ask_again: "Hỏi khách có muốn thanh toán lại không.",
    mismatch_title: "Sai số tiền",
    in_doubt_title: "Chưa rõ kết quả – KHÔNG thanh toán lại",
    in_doubt_1: "Máy POS chưa trả lời nên chưa biết khách đã bị trừ tiền hay chưa.",
    in_doubt_2: "Đừng cho khách quẹt thẻ lần nữa: có thể bị trừ tiền hai lần.",
    in_doubt_3: "Xem hóa đơn in ra trên máy POS (hoặc hỏi khách tin nhắn ngân hàng).",
    in_doubt_4: "Báo quản lý: quản lý sẽ xác nhận kết quả trong màn hình Quản lý.",
    reason: "Lý do",
    next_step: "Việc cần làm",
    card: "Thẻ",
    approval_code: "Mã chuẩn chi",
    ref_no: "Số tham chiếu (RefNo)",
    receipt_no: "Số hóa đơn POS",
    time: "Thời gian",
    paid_amount: "Số tiền",
    charged: "Máy POS đã trừ",
    elapsed: "Thời gian chờ",
    err_terminal_busy: "Máy POS đang bận với một giao dịch khác. Chờ giao dịch đó xong rồi thử lại.",
    err_in_doubt: "Máy POS còn một giao dịch chưa rõ kết quả. Quản lý cần xác nhận giao dịch đó trước.",
    err_duplicate_invoice: "Hóa đơn này đã được thanh toán bằng thẻ. Chỉ thanh toán lại nếu chắc chắn khách chưa trả.",
    err_bad_input: "Dữ liệu không hợp lệ",
    err_network_error: "Không kết nối được tới bridge. Kiểm tra mạng và ecrlink serve.",
    err_unauthorized: "Khóa API không còn hợp lệ. Đăng nhập lại.",
    err_forbidden: "Khóa API này không có quyền làm việc này (cần khóa quản lý).",
    err_not_found: "Không tìm thấy.",
    err_idempotency_conflict: "Yêu cầu trùng khóa với một yêu cầu khác.",
    err_other: "Lỗi",
    mgr_terminals: "Máy POS",
    mgr_name: "Tên",
    mgr_state: "Trạng thái",
    mgr_tid: "TID",
    mgr_last_seen: "Lần cuối thấy",
    mgr_actions: "Thao tác",
    settle: "Kết toán",
    settle_confirm: "Kết toán (chốt ca) máy POS {terminal}? Sau khi kết toán không thể hủy các giao dịch của lô này.",
    settle_done: "Đã kết toán máy POS {terminal}.",
    settle_failed: "Kết toán không thành công: {message}",
    in_doubt_list: "Giao dịch chưa rõ kết quả",
    in_doubt_none: "Không có giao dịch nào chưa rõ kết quả.",
    in_doubt_intro: "Xem hóa đơn in trên máy POS (hoặc sao kê ngân hàng) rồi xác nhận từng giao dịch.",
    resolve: "Xác nhận kết quả",
    resolve_title: "Xác nhận giao dịch {amount}",
    resolve_approved: "Đã thanh toán (có hóa đơn POS)",
    resolve_not_approved: "Không thanh toán (khách chưa bị trừ tiền)",
    resolve_receipt: "Số hóa đơn POS trên phiếu in",
    resolve_who: "Người xác nhận",
    resolve_note: "Ghi chú",
    resolve_ok: "Xác nhận",
    resolve_done: "Đã xác nhận.",
    receipt_required: "Nhập số hóa đơn POS (6 chữ số trên phiếu in).",
    who_required: "Nhập tên người xác nhận.",
    cancel: "Hủy bỏ",
    close: "Đóng",
    confirm: "Đồng ý",
    today: "Giao dịch hôm nay",
    refresh: "Làm mới",
    col_time: "Giờ",
    col_terminal: "Máy POS",
    col_type: "Loại",
    col_invoice: "Hóa đơn",
    col_amount: "Số tiền",
    col_state: "Kết quả",
    col_card: "Thẻ",
    col_receipt: "Số HĐ POS",
    cmd_sale: "Bán",
    cmd_void: "Hủy GD",
    cmd_settle: "Kết toán",
    st_processing: "Đang xử lý",
    st_approved: "Thành công",
    st_declined: "Từ chối",
    st_canceled: "Đã hủy",
    st_failed: "Không gửi được",
    st_amount_mismatch: "Sai số tiền",
    st_in_doubt: "Chưa rõ",
    st_voided: "Đã hủy (void)",
    void: "Hủy giao dịch",
    void_short: "Hủy GD",
    void_confirm: "Hủy (void) giao dịch {amount}, hóa đơn POS {receipt}? Tiền sẽ được hoàn cho khách.",
    void_done: "Đã hủy giao dịch hóa đơn POS {receipt}.",
    void_failed: "Hủy giao dịch không thành công: {message}",
    no_payments: "Chưa có giao dịch nào hôm nay.",
    totals: "Tổng kết",
    total_approved: "Bán thành công",
    total_voided: "Đã hủy",
    total_net: "Thực thu",
    total_declined: "Bị từ chối / hủy",
    total_in_doubt: "Chưa rõ",
    count_amount: "{count} GD · {amount}",
    reconcile: "Đối soát với sao kê ngân hàng",
    reconcile_bank: "Sao kê ngân hàng (CSV/XLSX)",
    reconcile_invoices: "Danh sách hóa đơn của phần mềm bán hàng (không bắt buộc)",
    reconcile_run: "Đối soát",
    reconcile_running: "Đang đối soát…",
    reconcile_ok: "Tất cả giao dịch đều khớp.",
    reconcile_attention: "Có giao dịch cần kiểm tra.",
    reconcile_download: "Tải báo cáo Excel (XLSX)",
    reconcile_need_file: "Chọn file sao kê ngân hàng.",
    cat_bank_only: "Ngân hàng có, quầy không có",
    cat_duplicate: "Trùng hóa đơn",
    cat_ecr_only: "Quầy có, ngân hàng không có",
    cat_amount_mismatch: "Lệch số tiền",
    cat_voided: "Đã hủy",
    cat_matched: "Khớp",
    col_category: "Kết quả đối soát",
    col_count: "Số GD",
    col_approval: "Mã chuẩn chi",
    rows_shown: "Hiện {shown}/{total} dòng cần kiểm tra trước.",
    live_on: "Trực tiếp",
    live_off: "Mất kết nối trực tiếp – đang thử lại",
  },
  en: {
    app_title: "ecrlink – Card payments",
    skip: "Skip to content",
    tab_cashier: "Cashier",
    tab_manager: "Manager",
    lang_switch: "Tiếng Việt",
    lang_switch_label: "Chuyển sang tiếng Việt",
    logout: "Log out",
    login_title: "Log in",
    login_intro: "Enter this counter's API key (from the manager). It is kept in this tab only and forgotten when the tab closes.",
    api_key: "API key",
    login: "Log in",
    login_first: "No key yet? On its first start, ecrlink serve makes a manager key and prints it (when the config names none).",
    login_bad_key: "The API key is wrong or was revoked.",
    login_no_bridge: "Cannot reach the bridge. Check that ecrlink serve is running.",
    terminal: "Terminal",
    no_terminals: "No terminal is configured.",
    amount: "Amount",
    amount_hint: "Type it, or use the keys below.",
    invoice: "Invoice no.",
    invoice_hint: "Optional. Printed on the slip and used for reconciliation.",
    keypad: "Keypad",
    key_clear: "Clear",
    key_back: "Delete one digit",
    pay: "Pay",
    pay_again_dup: "Charge anyway",
    new_sale: "New sale",
    amount_required: "Enter an amount greater than 0.",
    terminal_required: "Choose a terminal.",
    state_idle: "Ready",
    state_busy: "Busy",
    state_in_doubt: "Outcome unknown",
    state_unreachable: "Unreachable",
    waiting_card: "Waiting for the card…",
    waiting_hint: "Ask the customer to swipe, insert or tap the card on the terminal and follow its screen.",
    sending: "Sending to the terminal…",
    approved_title: "Payment approved",
    declined_title: "Payment declined",
    canceled_title: "Canceled at the terminal",
    failed_title: "Could not reach the terminal",
    failed_text: "The terminal never got the request; nothing was charged.",
    settled_not_paid: "Settled: the payment did not go through; the customer was not charged.",
    advice_ask_again: "Ask the customer whether to try again.",
    mismatch_title: "Wrong amount",
    in_doubt_title: "Outcome unknown – do NOT charge again",
    in_doubt_1: "The terminal did not answer, so nobody knows yet whether the card was charged.",
    in_doubt_2: "Do not let the customer pay by card again: they could be charged twice.",
    in_doubt_3: "Look at the slip the terminal printed (or the customer's bank message).",
    in_doubt_4: "Tell the manager: they confirm the outcome on the Manager screen.",
    reason: "Reason",
    next_step: "What to do next",
    card: "Card",
    approval_code: "Approval code",
    ref_no: "Reference (RefNo)",
    receipt_no: "Receipt no.",
    time: "Time",
    paid_amount: "Amount",
    charged: "The terminal charged",
    elapsed: "Waiting for",
    err_terminal_busy: "The terminal is busy with another payment. Wait for it to finish, then try again.",
    err_in_doubt: "A payment on this terminal has an unknown outcome. A manager must confirm it first.",
    err_duplicate_invoice: "This invoice was already paid by card. Charge again only if you are sure the customer has not paid.",
    err_bad_input: "Invalid input",
    err_network_error: "Cannot reach the bridge. Check the network and ecrlink serve.",
    err_unauthorized: "The API key is no longer valid. Log in again.",
    err_forbidden: "This API key may not do that (a manager key is needed).",
    err_not_found: "Not found.",
    err_idempotency_conflict: "The request reused the key of another request.",
    err_other: "Error",
    mgr_terminals: "Terminals",
    mgr_name: "Name",
    mgr_state: "State",
    mgr_tid: "TID",
    mgr_last_seen: "Last seen",
    mgr_actions: "Actions",
    settle: "Settle",
    settle_confirm: "Settle (close the batch of) terminal {terminal}? Its payments cannot be voided afterwards.",
    settle_done: "Terminal {terminal} settled.",
    settle_failed: "Settlement failed: {message}",
    in_doubt_list: "Payments with an unknown outcome",
    in_doubt_none: "No payment has an unknown outcome.",
    in_doubt_intro: "Look at the terminal's printed slip (or the bank statement), then confirm each payment.",
    resolve: "Confirm outcome",
    resolve_title: "Confirm payment of {amount}",
    resolve_approved: "Paid (there is a terminal slip)",
    resolve_not_approved: "Not paid (the customer was not charged)",
    resolve_receipt: "Receipt no. on the printed slip",
    resolve_who: "Confirmed by",
    resolve_note: "Note",
    resolve_ok: "Confirm",
    resolve_done: "Confirmed.",
    receipt_required: "Enter the receipt number (6 digits on the printed slip).",
    who_required: "Enter who confirms.",
    cancel: "Cancel",
    close: "Close",
    confirm: "OK",
    today: "Today's payments",
    refresh: "Refresh",
    col_time: "Time",
    col_terminal: "Terminal",
    col_type: "Type",
    col_invoice: "Invoice",
    col_amount: "Amount",
    col_state: "Outcome",
    col_card: "Card",
    col_receipt: "Receipt",
    cmd_sale: "Sale",
    cmd_void: "Void",
    cmd_settle: "Settlement",
    st_processing: "Processing",
    st_approved: "Approved",
    st_declined: "Declined",
    st_canceled: "Canceled",
    st_failed: "Not sent",
    st_amount_mismatch: "Wrong amount",
    st_in_doubt: "Unknown",
    st_voided: "Voided",
    void: "Void",
    void_short: "Void",
    void_confirm: "Void the payment of {amount}, receipt {receipt}? The money goes back to the customer.",
    void_done: "Receipt {receipt} voided.",
    void_failed: "The void failed: {message}",
    no_payments: "No payments today yet.",
    totals: "Totals",
    total_approved: "Approved sales",
    total_voided: "Voided",
    total_net: "Net",
    total_declined: "Declined / canceled",
    total_in_doubt: "Unknown",
    count_amount: "{count} · {amount}",
    reconcile: "Reconcile with the bank statement",
    reconcile_bank: "Bank statement (CSV/XLSX)",
    reconcile_invoices: "The register's invoice list (optional)",
    reconcile_run: "Reconcile",
    reconcile_running: "Reconciling…",
    reconcile_ok: "Everything matches.",
    reconcile_attention: "Some payments need a look.",
    reconcile_download: "Download the Excel report (XLSX)",
    reconcile_need_file: "Choose the bank statement file.",
    cat_bank_only: "At the bank only",
    cat_duplicate: "Duplicate invoice",
    cat_ecr_only: "At the register only",
    cat_amount_mismatch: "Amount differs",
    cat_voided: "Voided",
    cat_matched: "Matched",
    col_category: "Category",
    col_count: "Count",
    col_approval: "Approval",
    rows_shown: "Showing {shown} of {total} rows, those needing a look first.",
    live_on: "Live",
    live_off: "Live updates lost – retrying",
  },
};

const STORE = "ecrlink.lang";
const TZ = "Asia/Ho_Chi_Minh";

/** @returns {"vi"|"en"} the console's language (Vietnamese unless English was chosen) */
export function getLang() {
  try {
    return localStorage.getItem(STORE) === "en" ? "en" : "vi";
  } catch {
    return "vi";
  }
}

/** @param {"vi"|"en"} lang remembered for the next visit */
export function setLang(lang) {
  try {
    localStorage.setItem(STORE, lang === "en" ? "en" : "vi");
  } catch { /* private mode: this visit only */ }
}

/**
 * A text in the current language, `{name}` replaced from `params`.
 * @param {string} key
 * @param {Object<string, string|number>} [params]
 */
export function t(key, params = {}) {
  const table = TEXT[getLang()];
  const s = table[key] ?? TEXT.vi[key] ?? key;
  return s.replace(/\{(\w+)\}/g, (_, k) => String(params[k] ?? ""));
}

/** Whether a text exists (for error codes the bridge may add later). */
export function has(key) {
  return key in TEXT.vi;
}

/** Digits grouped by thousands: 150.000 (vi), 150,000 (en). */
export function groupDigits(n) {
  return new Intl.NumberFormat(getLang() === "en" ? "en-US" : "vi-VN",
    { maximumFractionDigits: 0 }).format(n);
}

/** Money in dong: 150.000 ₫ (vi), 150,000 ₫ (en). */
export function money(n) {
  return n == null ? "" : `${groupDigits(n)} ₫`;
}

/** A time of day (and the date unless today) in Vietnam time, as the slips show it. */
export function when(iso, { date = false } = {}) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const opts = { timeZone: TZ, hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false };
  if (date) Object.assign(opts, { day: "2-digit", month: "2-digit", year: "numeric" });
  return new Intl.DateTimeFormat(getLang() === "en" ? "en-GB" : "vi-VN", opts).format(d);
}

/** Today's start in Vietnam time, as an ISO time with its offset (`…T00:00:00+07:00`). */
export function todayStart() {
  const parts = new Intl.DateTimeFormat("en-CA", { timeZone: TZ, year: "numeric", month: "2-digit",
    day: "2-digit" }).format(new Date());
  return `${parts}T00:00:00+07:00`;
}

/** m:ss */
export function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

/** Fill every `[data-i18n]` element's text and `[data-i18n-attr]` attributes under `root`. */
export function translate(root = document) {
  document.documentElement.lang = getLang();
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-attr]")) {
    for (const pair of el.dataset.i18nAttr.split(";")) {
      const [attr, key] = pair.split(":");
      if (attr && key) el.setAttribute(attr.trim(), t(key.trim()));
    }
  }
}
