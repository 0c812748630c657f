"""The web console in headless Chromium, against a real bridge and ``ecrlink simulate``.

A cashier's sale approved from the page (the slip shows a masked card), a decline
with its reason and what to do next, and a payment in doubt that the manager
resolves; each checked against the bridge's API and the simulator's own ledger, with
screenshots kept as artifacts (see ``browser.py``). The console runs under the
bridge's Content-Security-Policy: any script error or CSP violation fails the test.
"""

from __future__ import annotations

import re
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecrlink.simulator import Simulator

from .browser import COUNTER, PHONE, PageErrors, artifacts, chromium, shot

WAIT_MS = 30_000
TERMINAL = "lane1"  # the conftest bridge serves its simulator as lane1
FULL_PAN = re.compile(r"\d{13,19}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport=COUNTER)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: Any) -> Iterator[Any]:
    pg = context.new_page()
    errors = PageErrors(pg)
    yield pg
    errors.check()


def new_invoice() -> str:
    return f"HD{uuid.uuid4().hex[:8].upper()}"


def login(page: Any, bridge: Any, key: str) -> None:
    page.goto(bridge.url + "/")
    page.get_by_label(re.compile("Khóa API|API key")).fill(key)
    page.get_by_role("button", name=re.compile("^(Đăng nhập|Log in)$")).click()
    page.wait_for_selector("#cashier:not([hidden]), #manager:not([hidden])")


def key_in(page: Any, digits: str) -> None:
    """Press the on-screen keypad, as a cashier's finger would."""
    for part in re.findall(r"000|\d", digits):
        page.click(f"#keypad [data-key='{part}']")


def pay(page: Any, amount: str, invoice: str) -> None:
    page.fill("#amount", "")
    page.fill("#amount", amount)
    page.fill("#invoice", invoice)
    page.get_by_role("button", name=re.compile("^(Thanh toán|Pay)$")).click()


def wait_result(page: Any) -> str:
    page.wait_for_selector("#outcome-result:not([hidden])", timeout=WAIT_MS)
    return str(page.inner_text("#result-title"))


def api(bridge: Any, path: str, key: str | None = None, lang: str | None = None,
        **params: Any) -> Any:
    headers = {"Authorization": f"Bearer {key or bridge.manager_key}"}
    if lang is not None:
        headers["Accept-Language"] = lang
    r = httpx.get(bridge.url + path, params=params, timeout=10, headers=headers)
    r.raise_for_status()
    return r.json()


def payment_of(
    bridge: Any, invoice: str, key: str | None = None, lang: str | None = None
) -> dict[str, Any]:
    """The bridge's payment for ``invoice``, as the holder of ``key`` reads it (texts in
    ``lang`` as Accept-Language asks, else in that key's language)."""
    rows = api(bridge, "/v1/payments", key, lang, invoice=invoice)["data"]
    assert len(rows) == 1, rows
    return dict(rows[0])


def ledger(sim: Simulator, invoice: str) -> list[tuple[str, int | None]]:
    """What the terminal really did for this invoice: (status, amount) per record."""
    return [(t.status, t.amount) for t in sim.ledger.transactions if t.invoice == invoice]


def test_sale_approved_from_the_page(
    page: Any, bridge: Any, sim: Simulator, tmp_path: Path
) -> None:
    out = artifacts(tmp_path)
    sim.configure(card_delay=2.0)  # the customer takes a moment: the wait is seen
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    login(page, bridge, bridge.register_key)
    assert page.evaluate("sessionStorage.getItem('ecrlink.apiKey')") == bridge.register_key
    assert page.evaluate("localStorage.getItem('ecrlink.apiKey')") is None
    page.select_option("#terminal", TERMINAL)
    key_in(page, "150000")
    assert page.input_value("#amount") == "150.000"  # Vietnamese thousands grouping
    invoice = new_invoice()
    page.fill("#invoice", invoice)
    shot(page, out, "sale_1_keyed")
    # A counter screen of 1024x768: the Pay button is there without scrolling.
    box = page.locator("#pay").bounding_box()
    assert box is not None and box["y"] + box["height"] <= COUNTER["height"]
    assert box["height"] >= 44  # a finger's target
    page.click("#pay")
    page.wait_for_selector("#outcome-waiting:not([hidden])")
    assert re.fullmatch(r"\d+:\d\d", page.inner_text("#timer"))
    shot(page, out, "sale_2_waiting")
    assert wait_result(page) == "Thanh toán thành công"
    shot(page, out, "sale_3_approved")

    p = payment_of(bridge, invoice)
    tx = p["result"]["transaction"]
    assert p["state"] == "approved" and p["amount"] == 150000
    card = page.inner_text("#r-card")
    assert card == tx["card_no"] and "X" in card and not FULL_PAN.search(card)
    assert page.inner_text("#r-approval") == tx["approval_code"]
    assert page.inner_text("#r-ref") == tx["ref_no"]
    assert page.inner_text("#r-receipt") == tx["receipt_no"]
    assert page.inner_text("#result-amount") == "150.000 ₫"
    assert not FULL_PAN.search(page.content())
    assert ledger(sim, invoice) == [("approved", 150000)]
    # The key never travels in a URL.
    assert requests and not any(bridge.register_key in u for u in requests)


def test_decline_shows_reason_and_next_step(
    page: Any, bridge: Any, sim: Simulator, tmp_path: Path
) -> None:
    login(page, bridge, bridge.register_key)
    page.select_option("#terminal", TERMINAL)
    invoice = new_invoice()
    # Keyboard only: the invoice, then the amount typed in its field, Enter pays.
    page.fill("#invoice", invoice)
    page.focus("#amount")
    page.keyboard.type("200051")  # the simulator declines ...051: insufficient funds
    assert page.input_value("#amount") == "200.051"
    page.keyboard.press("Enter")
    assert wait_result(page) == "Thanh toán không thành công"
    shot(page, artifacts(tmp_path), "decline")
    # The console asks in its own language (Vietnamese by default), over the key's.
    p = payment_of(bridge, invoice, bridge.register_key, lang="vi")
    assert p["state"] == "declined" and p["result"]["return_code"] == "51"
    reason = page.inner_text("#decline-reason")
    advice = page.inner_text("#decline-advice")
    assert reason and reason == p["result"]["message"]  # in the page's language
    assert advice and advice == p["result"]["advice"]
    assert page.is_hidden("#receipt")
    assert ledger(sim, invoice) == [("declined", 200051)]
    # A new sale starts from an empty form.
    page.click("#new-sale")
    assert page.input_value("#amount") == ""
    assert page.evaluate("document.activeElement.id") == "amount"
    # ...999: the customer presses Cancel on the terminal.
    canceled = new_invoice()
    pay(page, "100999", canceled)
    assert wait_result(page) == "Giao dịch đã hủy trên máy POS"
    p = payment_of(bridge, canceled, bridge.register_key, lang="vi")
    assert p["state"] == "canceled"
    assert page.inner_text("#decline-advice") == p["result"]["advice"]
    assert ledger(sim, canceled) == [("canceled", 100999)]


def test_a_terminal_that_cannot_be_reached(
    page: Any, make_bridge: Callable[..., Any], tmp_path: Path
) -> None:
    """Nothing listens where the terminal should be: the cashier is told that nothing
    was charged, not that the outcome is unknown."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        nobody = f"http://127.0.0.1:{s.getsockname()[1]}"
    bridge = make_bridge(terminals={TERMINAL: nobody},
                         terminal_options="connect_timeout = 1")
    login(page, bridge, bridge.register_key)
    invoice = new_invoice()
    pay(page, "45000", invoice)
    assert wait_result(page) == "Không gửi được tới máy POS"
    assert "chưa bị trừ tiền" in page.inner_text("#decline-reason")
    shot(page, artifacts(tmp_path), "unreachable")
    assert payment_of(bridge, invoice)["state"] == "failed"


@pytest.fixture
def doubtful(make_bridge: Callable[..., Any], sim: Simulator) -> Any:
    """A bridge that gives up on the terminal after 2 s, and a customer who stays at the
    card reader for a minute: the terminal refuses ``last trans`` while busy, so
    recovery cannot tell, and the payment stays in doubt until a manager says."""
    sim.configure(card_delay=60.0)
    return make_bridge(terminal_options="timeout = 2\nrecovery_timeout = 2")


def test_in_doubt_resolved_by_the_manager(
    browser: Any, doubtful: Any, sim: Simulator, tmp_path: Path
) -> None:
    bridge = doubtful
    out = artifacts(tmp_path)
    cashier = browser.new_context(viewport=COUNTER)
    page = cashier_page = cashier.new_page()
    cashier_errors = PageErrors(page)
    login(page, bridge, bridge.register_key)
    page.select_option("#terminal", TERMINAL)
    invoice = new_invoice()
    pay(page, "300998", invoice)  # ...998: the terminal never answers, charges nothing
    assert wait_result(page).startswith("Chưa rõ kết quả")
    doubt = page.inner_text("#doubt")
    assert "Đừng cho khách quẹt thẻ lần nữa" in doubt and "quản lý" in doubt
    shot(page, out, "doubt_1_cashier")
    assert payment_of(bridge, invoice)["state"] == "in_doubt"
    # The next customer, at another counter, cannot pay on that terminal until the
    # manager says what happened.
    counter2 = browser.new_context(viewport=COUNTER)
    other = counter2.new_page()
    login(other, bridge, bridge.register_key)
    pay(other, "10000", new_invoice())
    other.wait_for_selector("#sale-error:has-text('chưa rõ kết quả')", timeout=WAIT_MS)
    assert other.is_hidden("#outcome-result")
    counter2.close()

    manager = browser.new_context(viewport=COUNTER)
    page = manager.new_page()
    errors = PageErrors(page)
    login(page, bridge, bridge.manager_key)
    page.get_by_role("button", name="Quản lý").click()
    row = page.locator("#doubt-table tbody tr", has_text=invoice)
    row.wait_for()
    shot(page, out, "doubt_2_manager", full_page=True)
    row.get_by_role("button").click()
    dialog = page.locator("#resolve-dialog")
    assert dialog.is_visible()
    # "Paid" needs the slip's receipt number: refused without one, nothing sent.
    assert page.get_by_role("radio", name=re.compile("Đã thanh toán")).is_checked()
    page.get_by_role("button", name="Xác nhận", exact=True).click()
    assert "số hóa đơn POS" in page.inner_text("#resolve-error")
    assert page.get_attribute("#resolve-receipt", "aria-invalid") == "true"
    assert payment_of(bridge, invoice)["state"] == "in_doubt"
    # What the slip shows here: nothing was printed. Choose "not paid", who, a note.
    page.get_by_role("radio", name=re.compile("Không thanh toán")).check()
    assert page.is_hidden("#resolve-receipt-field")
    page.get_by_label("Người xác nhận").fill("Lan (quản lý)")
    page.get_by_label("Ghi chú").fill("không có phiếu in")
    shot(page, out, "doubt_3_dialog")
    page.get_by_role("button", name="Xác nhận", exact=True).click()
    dialog.wait_for(state="hidden")
    page.wait_for_selector(f"#doubt-table tbody tr:has-text('{invoice}')", state="detached")
    today = page.locator("#payments-table tbody tr", has_text=invoice)
    today.wait_for()
    assert "Từ chối" in today.inner_text()
    shot(page, out, "doubt_4_resolved", full_page=True)
    p = payment_of(bridge, invoice)
    assert p["state"] == "declined"
    assert ledger(sim, invoice) in ([], [("never_answered", 300998)])  # nothing charged
    errors.check()
    manager.close()
    # The first cashier's screen, still open, now shows the outcome (live events).
    cashier_page.wait_for_selector("#result-title:text-is('Thanh toán không thành công')")
    assert cashier_page.is_hidden("#doubt")
    assert "chưa bị trừ tiền" in cashier_page.inner_text("#decline-reason")
    shot(cashier_page, out, "doubt_5_cashier_told")
    cashier_errors.check()
    cashier.close()


def test_english_is_remembered_and_fits_a_phone(page: Any, bridge: Any, tmp_path: Path) -> None:
    login(page, bridge, bridge.register_key)
    page.get_by_role("button", name="Switch to English").click()
    assert page.evaluate("document.documentElement.lang") == "en"
    key_in(page, "150000")
    assert page.input_value("#amount") == "150,000"
    page.reload()
    page.wait_for_selector("#cashier:not([hidden])")  # still logged in (sessionStorage)
    assert page.inner_text("#pay") == "Pay"
    page.set_viewport_size(PHONE)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shot(page, artifacts(tmp_path), "phone_en", full_page=True)
    page.get_by_role("button", name="Manager").click()
    page.wait_for_selector("#terminals-table tbody tr")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shot(page, artifacts(tmp_path), "phone_en_manager", full_page=True)
    page.get_by_role("button", name="Tiếng Việt").click()
    assert page.evaluate("localStorage.getItem('ecrlink.lang')") == "vi"


def test_wrong_key_is_refused_and_logout_forgets(page: Any, bridge: Any) -> None:
    page.goto(bridge.url + "/")
    page.get_by_label("Khóa API").fill("k_not_a_key")
    page.get_by_label("Khóa API").press("Enter")
    page.wait_for_selector("#login-error:has-text('không đúng')")
    assert page.is_hidden("#cashier")
    login(page, bridge, bridge.register_key)
    page.get_by_role("button", name="Đăng xuất").click()
    assert page.evaluate("sessionStorage.getItem('ecrlink.apiKey')") is None
    assert page.is_visible("#login")


def sell(bridge: Any, amount: int, invoice: str) -> dict[str, Any]:
    """A sale through the API (a web register), followed until it is final."""
    with bridge.client("register") as http:
        r = http.post(f"/v1/terminals/{TERMINAL}/payments", json={
            "amount": amount, "invoice": invoice}, headers={"Idempotency-Key": invoice})
        assert r.status_code == 201, r.text
        p = http.get(f"/v1/payments/{r.json()['id']}", params={"wait": 20}).json()
    assert p["state"] == "approved", p
    return dict(p)


def test_manager_voids_settles_and_reconciles(
    page: Any, bridge: Any, sim: Simulator, tmp_path: Path
) -> None:
    out = artifacts(tmp_path)
    first, second = new_invoice(), new_invoice()
    voided = sell(bridge, 150000, first)
    sell(bridge, 90000, second)
    login(page, bridge, bridge.manager_key)
    page.get_by_role("button", name="Quản lý").click()
    totals = page.locator("#totals")
    page.wait_for_selector("#totals:has-text('2 GD · 240.000 ₫')")

    # Void the first sale from its row, confirming in the dialog.
    receipt = voided["result"]["transaction"]["receipt_no"]
    row = page.locator("#payments-table tbody tr", has_text=first)
    row.get_by_role("button", name=f"Hủy giao dịch {receipt}").click()
    assert receipt in page.inner_text("#confirm-text")
    page.get_by_role("button", name="Đồng ý").click()
    page.wait_for_selector(f"#mgr-notice:has-text('Đã hủy giao dịch hóa đơn POS {receipt}')")
    page.locator("#payments-table tbody tr", has_text=first).filter(
        has_text="Đã hủy (void)").wait_for()
    page.wait_for_selector("#totals .net:text-is('90.000 ₫')")
    assert "1 GD · 150.000 ₫" in totals.inner_text()  # voided
    assert [t.status for t in sim.ledger.transactions if t.command == "void"] == ["approved"]
    shot(page, out, "manager_1_voided", full_page=True)

    # Settle the terminal.
    page.locator("#terminals-table tbody tr", has_text=TERMINAL).get_by_role(
        "button", name=f"Kết toán {TERMINAL}").click()
    page.get_by_role("button", name="Đồng ý").click()
    page.wait_for_selector("#mgr-notice:has-text('Đã kết toán')")
    assert sim.ledger.settlements, "the terminal closed no batch"

    # Reconcile the bank's statement of that batch against the bridge's journal.
    statement = tmp_path / "bank.csv"
    assert sim.write_statement(statement) == 3  # two sales and the void
    page.set_input_files("#bank-file", str(statement))
    page.get_by_role("button", name="Đối soát", exact=True).click()
    page.wait_for_selector("#reconcile-result:not([hidden])", timeout=WAIT_MS)
    summary = page.inner_text("#reconcile-summary")
    assert "Khớp" in summary and "Đã hủy" in summary, summary
    assert page.inner_text("#reconcile-verdict") == "Tất cả giao dịch đều khớp."
    assert page.locator("#reconcile-rows tbody tr").count() >= 2
    shot(page, out, "manager_2_reconciled", full_page=True)
    with page.expect_download() as download:
        page.get_by_role("link", name="Tải báo cáo Excel (XLSX)").click()
    saved = out / "reconcile.xlsx"
    download.value.save_as(saved)
    assert saved.read_bytes()[:2] == b"PK"  # a workbook (a zip), fetched with the key


def test_reload_during_the_card_wait_follows_the_same_payment(
    page: Any, bridge: Any, sim: Simulator, tmp_path: Path
) -> None:
    sim.configure(card_delay=3.0)
    login(page, bridge, bridge.register_key)
    invoice = new_invoice()
    pay(page, "75000", invoice)
    page.wait_for_selector("#waiting-text:text-is('Đang chờ khách quẹt/chạm thẻ…')")
    page.reload()  # F5 while the customer is at the card reader
    page.wait_for_selector("#outcome-waiting:not([hidden])")
    assert wait_result(page) == "Thanh toán thành công"
    shot(page, artifacts(tmp_path), "reload_resumed")
    assert payment_of(bridge, invoice)["state"] == "approved"
    assert ledger(sim, invoice) == [("approved", 75000)]  # one sale, not two


def test_manager_screen_follows_live_events(page: Any, bridge: Any) -> None:
    login(page, bridge, bridge.manager_key)
    page.get_by_role("button", name="Quản lý").click()
    page.wait_for_selector("#live.on")
    invoice = new_invoice()
    sell(bridge, 64000, invoice)  # from another register; nobody presses Refresh
    page.locator("#payments-table tbody tr", has_text=invoice).wait_for(timeout=10_000)


def test_every_control_has_a_name(page: Any, bridge: Any) -> None:
    """Screen readers and Playwright find every input by its label, every button by
    its name, on both screens and in the dialogs."""
    login(page, bridge, bridge.manager_key)
    page.get_by_role("button", name="Quản lý").click()
    page.wait_for_selector("#terminals-table tbody tr")
    unnamed = page.evaluate("""() => {
        const bad = [];
        for (const el of document.querySelectorAll("input, select, textarea")) {
          if (!el.labels.length && !el.getAttribute("aria-label")) bad.push(el.outerHTML);
        }
        for (const el of document.querySelectorAll("button, a[href]")) {
          if (!el.textContent.trim() && !el.getAttribute("aria-label")) bad.push(el.outerHTML);
        }
        return bad;
    }""")
    assert unnamed == []
    small = page.evaluate("""() => [...document.querySelectorAll("button")]
        .filter((b) => b.offsetParent !== null)
        .filter((b) => b.getBoundingClientRect().height < 44)
        .map((b) => b.outerHTML)""")
    assert small == []  # counter touchscreens: 44 px or more


def test_a_double_tap_on_pay_is_one_sale(page: Any, bridge: Any, sim: Simulator) -> None:
    login(page, bridge, bridge.register_key)
    invoice = new_invoice()
    page.fill("#amount", "52000")
    page.fill("#invoice", invoice)
    page.dblclick("#pay")
    assert wait_result(page) == "Thanh toán thành công"
    assert payment_of(bridge, invoice)["state"] == "approved"
    assert ledger(sim, invoice) == [("approved", 52000)]


@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(typed=st.text(st.sampled_from("0123456789.,- ₫a"), max_size=20))
def test_the_amount_field_keeps_digits_grouped(page: Any, bridge: Any, typed: str) -> None:
    """Whatever is typed or pasted, the field holds at most 12 digits, without leading
    zeros, grouped by thousands (the number Pay sends)."""
    if page.url == "about:blank":
        login(page, bridge, bridge.register_key)
    page.fill("#amount", typed)
    digits = "".join(ch for ch in typed if ch.isdigit()).lstrip("0")[:12]
    want = f"{int(digits):,}".replace(",", ".") if digits else ""
    assert page.input_value("#amount") == want


def test_bridge_killed_during_the_card_wait(
    page: Any, bridge: Any, sim: Simulator, tmp_path: Path
) -> None:
    """SIGKILL while the customer is at the card reader, then a restart: the page keeps
    following the same payment (its requests fail meanwhile, and are asked again) and
    ends on the outcome the terminal really had, one sale."""
    sim.configure(card_delay=3.0)
    login(page, bridge, bridge.register_key)
    invoice = new_invoice()
    pay(page, "88000", invoice)
    page.wait_for_selector("#waiting-text:text-is('Đang chờ khách quẹt/chạm thẻ…')")
    bridge.kill()
    bridge.start()
    page.wait_for_selector("#result-title:text-is('Thanh toán thành công')", timeout=60_000)
    shot(page, artifacts(tmp_path), "killed_bridge_approved")
    assert payment_of(bridge, invoice)["state"] == "approved"
    assert ledger(sim, invoice) == [("approved", 88000)]
