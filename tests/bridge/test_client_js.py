"""``/v1/client.js`` in headless Chromium against a real bridge and ``ecrlink simulate``.

The module is imported by the page from the bridge itself, as a web register would,
and every payment is checked on the other side too: the bridge's list and the
simulator's own ledger (what the terminal really did). The retry test loses the
answer to a POST that did reach the bridge (Playwright sends it, then tells the page
the network failed): client.js must send it again with the same Idempotency-Key and
get the same payment, one sale at the terminal.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ecrlink.bridge
from ecrlink.simulator import Simulator

from .browser import COUNTER, PageErrors, artifacts, chromium, shot

MODULE = "/v1/client.js"
TERMINAL = "lane1"  # the conftest bridge serves its simulator as lane1


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser: Any, bridge: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=COUNTER)
    pg = context.new_page()
    errors = PageErrors(pg)
    # A page of the bridge's origin (the console's), from which the module is imported.
    pg.goto(bridge.url + "/")
    yield pg
    context.close()
    errors.check()


def run(page: Any, body: str, **args: Any) -> Any:
    """Run ``body`` (an async function body) in the page with ``mod`` = client.js."""
    script = (
        "async (args) => { const mod = await import(args.module); "
        "const out = await (async () => {" + body + "})(); return out; }"
    )
    return page.evaluate(script, {"module": MODULE, **args})


def ledger_sales(sim: Simulator, invoice: str) -> list[tuple[str, int | None]]:
    """What the terminal really did for this invoice (F3): (status, amount) per sale."""
    return [(t.status, t.amount) for t in sim.ledger.transactions
            if t.command == "sale" and t.invoice == invoice]


def bridge_payments(bridge: Any, invoice: str) -> list[dict[str, Any]]:
    r = httpx.get(bridge.url + "/v1/payments", params={"invoice": invoice},
                  headers={"Authorization": f"Bearer {bridge.manager_key}"}, timeout=5)
    r.raise_for_status()
    return list(r.json()["data"])


def test_exports_pay_void_settle_status(page: Any) -> None:
    names = run(page, "return Object.keys(mod).sort();")
    for name in ("pay", "voidPayment", "void", "settle", "status", "createClient",
                 "EcrlinkError"):
        assert name in names
    assert run(page, "return mod.void === mod.voidPayment;") is True


def test_pay_approved_then_status(
    page: Any, bridge: Any, sim: Simulator, tmp_path: Path
) -> None:
    invoice = f"JS{uuid.uuid4().hex[:10].upper()}"
    out = run(page, """
        const c = mod.createClient({ apiKey: args.key });
        const seen = [];
        const p = await c.pay(args.terminal, { amount: 150000, invoice: args.invoice },
                              { onUpdate: (x) => seen.push(x.state) });
        const again = await c.status(p.id);
        return { p, seen, again };
    """, key=bridge.register_key, terminal=TERMINAL, invoice=invoice)
    p = out["p"]
    assert p["state"] == "approved", p
    assert p["amount"] == 150000 and p["invoice"] == invoice
    assert out["seen"][0] == "processing" and out["seen"][-1] == "approved"
    assert out["again"]["id"] == p["id"] and out["again"]["state"] == "approved"
    card = p["result"]["transaction"]["card_no"]
    assert "X" in card and sum(ch.isdigit() for ch in card) <= 8
    assert [x["id"] for x in bridge_payments(bridge, invoice)] == [p["id"]]
    assert ledger_sales(sim, invoice) == [("approved", 150000)]
    shot(page, artifacts(tmp_path), "client_js_pay")


def test_same_key_twice_is_one_payment(page: Any, bridge: Any, sim: Simulator) -> None:
    invoice = f"JS{uuid.uuid4().hex[:10].upper()}"
    out = run(page, """
        const key = mod.newIdempotencyKey();
        const send = () => fetch(`/v1/terminals/${args.terminal}/payments`, {
          method: "POST",
          headers: { "Authorization": `Bearer ${args.key}`, "Idempotency-Key": key,
                     "Content-Type": "application/json" },
          body: JSON.stringify({ amount: 120000, invoice: args.invoice }),
        }).then(async (r) => ({ status: r.status, body: await r.json() }));
        const first = await send();
        const second = await send();
        const c = mod.createClient({ apiKey: args.key });
        const final = await c.follow(first.body.id);
        return { key, first, second, final };
    """, key=bridge.register_key, terminal=TERMINAL, invoice=invoice)
    assert out["first"]["status"] == 201
    assert out["second"]["status"] == 200
    assert out["second"]["body"]["id"] == out["first"]["body"]["id"]
    assert out["final"]["state"] == "approved"
    assert len(bridge_payments(bridge, invoice)) == 1
    assert ledger_sales(sim, invoice) == [("approved", 120000)]


def test_retry_after_network_error_keeps_the_key(
    page: Any, bridge: Any, sim: Simulator
) -> None:
    """The first POST reaches the bridge, its answer is lost on the way back; client.js
    retries with the same key and gets the payment the first one created."""
    invoice = f"JS{uuid.uuid4().hex[:10].upper()}"
    keys: list[str] = []
    delivered: list[int] = []

    def lose_first_answer(route: Any) -> None:
        keys.append(route.request.headers.get("idempotency-key", ""))
        response = route.fetch()  # the request really reaches the bridge
        delivered.append(response.status)
        if len(keys) == 1:
            route.abort("connectionreset")  # ... and the page never hears back
        else:
            route.fulfill(response=response)

    page.route("**/v1/terminals/*/payments", lose_first_answer)
    out = run(page, """
        const c = mod.createClient({ apiKey: args.key });
        const p = await c.pay(args.terminal, { amount: 130000, invoice: args.invoice });
        return p;
    """, key=bridge.register_key, terminal=TERMINAL, invoice=invoice)
    assert len(keys) == 2, keys
    assert keys[0] and keys[0] == keys[1]
    assert delivered == [201, 200]  # created once, then answered again
    assert out["state"] == "approved"
    assert [x["id"] for x in bridge_payments(bridge, invoice)] == [out["id"]]
    assert ledger_sales(sim, invoice) == [("approved", 130000)]


def test_errors_keep_code_and_field(page: Any, bridge: Any) -> None:
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if r.method == "POST" else None)
    out = run(page, """
        const c = mod.createClient({ apiKey: args.key });
        const grab = async (f) => {
          try { await f(); return null; }
          catch (e) { return { name: e.name, code: e.code, field: e.field, status: e.status,
                               message: e.message, isError: e instanceof mod.EcrlinkError }; }
        };
        return {
          local: await grab(() => c.pay(args.terminal, { amount: 0 })),
          fraction: await grab(() => c.pay(args.terminal, { amount: 1500.5 })),
          field: await grab(() => c.pay(args.terminal, { amount: 1000, fields: { "9": "x" } })),
          unknown: await grab(() => c.pay("no-such-terminal", { amount: 1000 })),
          nokey: await grab(() => mod.createClient({ apiKey: "wrong" }).terminals()),
          missing: await grab(() => c.status("pay_00000000000000000000")),
        };
    """, key=bridge.register_key, terminal=TERMINAL)
    assert out["local"]["code"] == "bad_input" and out["local"]["field"] == "amount"
    assert out["local"]["isError"] and out["local"]["status"] is None
    assert out["fraction"]["code"] == "bad_input" and out["fraction"]["field"] == "amount"
    assert (out["field"]["code"], out["field"]["status"]) == ("bad_input", 422)
    assert out["field"]["field"] and out["field"]["field"].startswith("fields")
    assert out["unknown"]["status"] == 404 and out["unknown"]["code"] == "not_found"
    assert out["nokey"]["status"] == 401
    assert out["missing"]["status"] == 404
    # Only two POSTs left the page (the bad field, the unknown terminal): the bad
    # amounts were refused before anything was sent.
    assert len(sent) == 2, sent


def test_module_loads_nothing_from_elsewhere(page: Any, bridge: Any) -> None:
    seen: list[str] = []
    page.on("request", lambda r: seen.append(r.url))
    page.reload()
    run(page, "return typeof mod.createClient;")
    assert seen and all(u.startswith(bridge.url) for u in seen), seen
    src = httpx.get(bridge.url + MODULE, timeout=5)
    assert src.status_code == 200 and "javascript" in src.headers["content-type"]
    assert "eval(" not in src.text and "new Function" not in src.text
    assert re.search(r"^\s*import\s", src.text, re.M) is None  # no dependencies


REGISTER_PAGE = """<!doctype html><meta charset="utf-8"><title>POS</title>
<script type="module">
  import { createClient } from "%s/v1/client.js";
  window.payHere = (key, invoice) => createClient({ apiKey: key })
    .pay("lane1", { amount: 99000, invoice })
    .then((p) => p.state, (e) => `error ${e.code}`);
  window.ready = true;
</script>"""


@pytest.fixture
def web_register() -> Iterator[Callable[[str], str]]:
    """A web POS on its own origin (another port of 127.0.0.1): ``serve(html)`` gives
    its URL."""
    pages: dict[str, bytes] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get("page", b"")
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def serve(html: str) -> str:
        pages["page"] = html.encode()
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield serve
    server.shutdown()
    server.server_close()


def test_a_web_register_on_another_origin(
    browser: Any, make_bridge: Callable[..., Any], sim: Simulator,
    web_register: Callable[[str], str],
) -> None:
    """The module imported across origins, as a web POS does: allowed origins pay,
    others get nothing from the bridge (and nothing is charged)."""
    url = web_register("")
    origin = url.rstrip("/")
    allowed = make_bridge(serve_extra=f'allowed_origins = ["{origin}"]')
    other = make_bridge(name="other", serve_extra='allowed_origins = ["https://pos.example.vn"]')
    for bridge, expected in ((allowed, "approved"), (other, "error network_error")):
        web_register(REGISTER_PAGE % bridge.url)
        context = browser.new_context()
        page = context.new_page()
        page.goto(url)
        invoice = f"JS{uuid.uuid4().hex[:10].upper()}"
        if expected == "approved":
            page.wait_for_function("window.ready === true")
            assert page.evaluate("([k, i]) => window.payHere(k, i)",
                                 [bridge.register_key, invoice]) == expected
            assert ledger_sales(sim, invoice) == [("approved", 99000)]
        else:
            # Not even the module loads for an origin the bridge does not allow.
            page.wait_for_timeout(1000)
            assert page.evaluate("window.ready === true") is False
            assert ledger_sales(sim, invoice) == []
        context.close()


# --- the module's pure parts, with hypothesis, in the browser ---------------------------

STATIC = Path(ecrlink.bridge.__file__).parent / "static"
ORIGIN = "http://ecrlink.invalid"  # never resolved: every request is answered below


@pytest.fixture(scope="module")
def static_page(browser: Any) -> Iterator[Any]:
    """A page whose origin serves the bridge's static files straight from the package
    (no bridge process needed for pure functions)."""
    context = browser.new_context()
    page = context.new_page()

    def serve(route: Any) -> None:
        name = route.request.url.removeprefix(ORIGIN + "/").removeprefix("v1/") or "blank"
        path = STATIC / name
        if name != "blank" and not path.is_file():
            route.fulfill(status=404, body="")
            return
        body = path.read_bytes() if name != "blank" else b"<!doctype html><title>t</title>"
        kind = "text/javascript" if name.endswith(".js") else "text/html"
        route.fulfill(status=200, body=body, headers={"Content-Type": kind})

    page.route(ORIGIN + "/**", serve)
    page.goto(ORIGIN + "/blank")
    yield page
    context.close()


_field = st.text(st.characters(blacklist_characters="\r\n\x00", codec="utf-8"), max_size=30)
_event = st.fixed_dictionaries({
    "event": st.sampled_from(["", "payment.updated", "terminal.updated"]),
    "id": st.text("0123456789", min_size=1, max_size=6),
    "data": st.lists(_field, min_size=1, max_size=3),
})


@settings(max_examples=100, deadline=None, derandomize=True, database=None)
@given(events=st.lists(_event, min_size=1, max_size=4),
       eol=st.sampled_from(["\n", "\r\n", "\r"]), comment=st.booleans(),
       cuts=st.lists(st.integers(0, 400), max_size=6))
def test_sse_reader_reads_any_stream_in_any_pieces(
    static_page: Any, events: list[dict[str, Any]], eol: str, comment: bool, cuts: list[int]
) -> None:
    """The SSE parser gives back every event (type, id, multi-line data) whatever the
    line endings, comments and the way the stream is cut into pieces."""
    text = ""
    for ev in events:
        if comment:
            text += ": keep-alive" + eol
        if ev["event"]:
            text += f"event: {ev['event']}{eol}"
        text += f"id: {ev['id']}{eol}"
        text += "".join(f"data: {line}{eol}" for line in ev["data"])
        text += eol
    bounds = sorted({min(c, len(text)) for c in cuts})
    pieces = [text[a:b] for a, b in zip([0, *bounds], [*bounds, len(text)], strict=True)]
    got = static_page.evaluate("""async (pieces) => {
        const { SseReader } = await import("/v1/client.js");
        const r = new SseReader();
        return pieces.flatMap((p) => r.feed(p));
    }""", pieces)
    assert got == [{"event": ev["event"], "id": ev["id"], "data": "\n".join(ev["data"]),
                    "retry": None} for ev in events]


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(amount=st.integers(0, 10**12 - 1))
def test_money_is_grouped_as_each_language_writes_it(static_page: Any, amount: int) -> None:
    got = static_page.evaluate("""async (n) => {
        const i18n = await import("/i18n.js");
        localStorage.setItem("ecrlink.lang", "vi");
        const vi = i18n.money(n);
        localStorage.setItem("ecrlink.lang", "en");
        const en = i18n.money(n);
        localStorage.removeItem("ecrlink.lang");
        return [vi, en];
    }""", amount)
    assert got == [f"{amount:,} ₫".replace(",", "."), f"{amount:,} ₫"]
