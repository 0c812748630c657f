"""The bridge's endpoints over real HTTP, against a bridge process and the simulator."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from ecrlink.simulator import Simulator

from .conftest import BridgeProcess


def sales(sim: Simulator) -> list[Any]:
    """What the terminal really did: its sales, in order."""
    return [t for t in sim.ledger.transactions if t.command == "sale"]


def pay(client: httpx.Client, amount: int, key: str, terminal: str = "lane1",
        **body: Any) -> httpx.Response:
    return client.post(f"/v1/terminals/{terminal}/payments", json={"amount": amount, **body},
                       headers={"Idempotency-Key": key})


def final(client: httpx.Client, payment_id: str) -> dict[str, Any]:
    """Long-poll until the payment is no longer processing."""
    for _ in range(10):
        reply = client.get(f"/v1/payments/{payment_id}", params={"wait": 20})
        assert reply.status_code == 200, reply.text
        if reply.json()["state"] != "processing":
            return dict(reply.json())
    raise AssertionError("still processing")


def error(reply: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return dict(body["error"])


def journal_rows(bridge: BridgeProcess) -> int:
    with sqlite3.connect(bridge.journal) as db:
        return int(db.execute("SELECT COUNT(*) FROM entries").fetchone()[0])


def test_health_needs_no_key_and_terminals_need_one(bridge: BridgeProcess) -> None:
    with bridge.client(None) as anonymous:
        health = anonymous.get("/v1/health")
        assert health.status_code == 200
        assert health.json()["status"] == "ok" and health.json()["version"]
        error(anonymous.get("/v1/terminals"), 401, "unauthorized")
        error(anonymous.get("/v1/terminals", headers={"Authorization": "Bearer nope"}), 401,
              "unauthorized")
        error(anonymous.get("/v1/terminals", headers={"Authorization": "Basic abc"}), 401,
              "unauthorized")
    with bridge.client() as register:
        terminals = register.get("/v1/terminals").json()
    assert [t["name"] for t in terminals] == ["lane1"]
    assert terminals[0]["url"] == bridge.sim_url
    assert terminals[0]["state"] in ("idle", "busy")  # the start-up recovery may run


def test_sale_approved_long_poll_and_the_ledger_agree(
    bridge: BridgeProcess, sim: Simulator
) -> None:
    sim.configure(card_delay=1.0)
    with bridge.client() as register:
        created = pay(register, 150_000, "sale-1", invoice="HD0001", reference="LANE1")
        assert created.status_code == 201, created.text
        payment = created.json()
        assert payment["state"] == "processing"
        assert payment["id"].startswith("pay_")
        assert created.headers["location"] == f"/v1/payments/{payment['id']}"
        assert payment["journal_id"] is not None  # written down before it started
        assert (payment["amount"], payment["invoice"], payment["reference"]) == (
            150_000, "HD0001", "LANE1")
        started = time.monotonic()
        done = final(register, payment["id"])
        assert time.monotonic() - started < 10
        terminals = register.get("/v1/terminals").json()
    assert done["state"] == "approved"
    assert done["result"]["approved"] is True
    assert done["result"]["transaction"]["amount"] == 150_000
    assert done["message"] == "Approved"  # the register key's language: en
    [sale] = sales(sim)
    assert sale.amount == 150_000 and sale.fields[2] == "HD0001"
    assert done["receipt_no"] == f"{sale.receipt_no:06d}"
    assert done["result"]["transaction"]["card_no"].count("X") >= 6  # masked
    assert terminals[0]["tid"] == sale_tid(sim)
    assert terminals[0]["last_seen"] is not None


def sale_tid(sim: Simulator) -> str:
    return str(sim.state()["tid"])


def test_declines_and_cancels_are_final_with_the_reason(
    bridge: BridgeProcess, sim: Simulator
) -> None:
    with bridge.client("manager") as manager:  # manager key: Vietnamese texts
        declined = final(manager, pay(manager, 150_051, "d1").json()["id"])
        canceled = final(manager, pay(manager, 150_999, "c1").json()["id"])
    assert declined["state"] == "declined"
    assert declined["result"]["return_code"] == "51"
    assert "Không đủ" in declined["message"] or "tiền" in declined["message"]
    assert canceled["state"] == "canceled"
    assert [s.status.value for s in sales(sim)] == ["declined", "canceled"]


def test_idempotency_key_replays_the_same_payment_and_refuses_another_body(
    bridge: BridgeProcess, sim: Simulator
) -> None:
    with bridge.client() as register:
        first = pay(register, 120_000, "same-key", invoice="HD7")
        assert first.status_code == 201
        again = pay(register, 120_000, "same-key", invoice="HD7")
        assert again.status_code == 200
        assert again.json()["id"] == first.json()["id"]
        other = error(pay(register, 120_001, "same-key", invoice="HD7"), 409,
                      "idempotency_conflict")
        assert other["field"] == "Idempotency-Key" and other["payment"] == first.json()["id"]
        # the same key on another route is another request too
        error(register.post("/v1/terminals/lane1/settlements", json={},
                            headers={"Idempotency-Key": "same-key"}), 409,
              "idempotency_conflict")
        final(register, first.json()["id"])
        assert pay(register, 120_000, "same-key", invoice="HD7").json()["state"] == "approved"
    assert len(sales(sim)) == 1


@pytest.mark.parametrize(
    ("headers", "field"),
    [({}, "Idempotency-Key"), ({"Idempotency-Key": ""}, "Idempotency-Key"),
     ({"Idempotency-Key": "x" * 65}, "Idempotency-Key"),
     ({"Idempotency-Key": "tab\there"}, "Idempotency-Key")],
)
def test_idempotency_key_is_required_and_checked(
    bridge: BridgeProcess, sim: Simulator, headers: dict[str, str], field: str
) -> None:
    with bridge.client() as register:
        reply = register.post("/v1/terminals/lane1/payments", json={"amount": 1000},
                              headers=headers)
    assert error(reply, 422, "bad_input")["field"] == field
    assert sales(sim) == []


BAD_SALES: list[tuple[Any, str]] = [
    ({"amount": -5}, "amount"),
    ({"amount": 0}, "amount"),
    ({"amount": 1.5}, "amount"),
    ({"amount": "150000"}, "amount"),
    ({"amount": True}, "amount"),
    ({"amount": 10**10}, "amount"),
    ({}, "amount"),
    ({"amount": 1000, "invoice": "A|B"}, "invoice"),
    ({"amount": 1000, "invoice": "x" * 21}, "invoice"),
    ({"amount": 1000, "invoice": "Hóa đơn"}, "invoice"),
    ({"amount": 1000, "invoice": 5}, "invoice"),
    ({"amount": 1000, "reference": "a&b"}, "reference"),
    ({"amount": 1000, "fields": {"3": "x"}}, "fields"),
    ({"amount": 1000, "fields": {"1": 5}}, "fields.1"),
    ({"amount": 1000, "fields": {"4": "50%"}}, "F4"),
    ({"amount": 1000, "fields": ["a"]}, "fields"),
    ({"amount": 1000, "allow_duplicate": "yes"}, "allow_duplicate"),
    ({"amount": 1000, "colour": "red"}, "colour"),
    ([1000], "body"),
]


def test_bad_input_is_422_naming_the_field_and_nothing_is_written_or_sent(
    bridge: BridgeProcess, sim: Simulator
) -> None:
    with bridge.client() as register:
        for n, (body, field) in enumerate(BAD_SALES):
            reply = register.post("/v1/terminals/lane1/payments", json=body,
                                  headers={"Idempotency-Key": f"bad-{n}"})
            assert error(reply, 422, "bad_input")["field"] == field, body
        not_json = register.post("/v1/terminals/lane1/payments", content=b"{amount: 5",
                                 headers={"Idempotency-Key": "bad-json"})
        assert error(not_json, 422, "bad_input")["field"] == "body"
        assert register.get("/v1/payments").json()["data"] == []
        # the keys were not used: the first good request with one of them is created
        created = pay(register, 1000, "bad-0")
        assert created.status_code == 201
        final(register, created.json()["id"])
    assert journal_rows(bridge) == 1
    assert len(sales(sim)) == 1


def test_void_settle_and_last_transaction(bridge: BridgeProcess, sim: Simulator) -> None:
    with bridge.client() as register:
        sale = final(register, pay(register, 200_000, "s1").json()["id"])
        last = register.get("/v1/terminals/lane1/last-transaction")
        assert last.status_code == 200
        assert last.json()["transaction"]["receipt_no"] == sale["receipt_no"]
        voided = register.post("/v1/terminals/lane1/voids", json={"receipt_no":
                               sale["receipt_no"]}, headers={"Idempotency-Key": "v1"})
        assert voided.status_code == 201, voided.text
        void = final(register, voided.json()["id"])
        assert (void["command"], void["state"], void["amount"]) == ("void", "approved", None)
        assert void["receipt_no"] == sale["receipt_no"]
        unknown = final(register, register.post(
            "/v1/terminals/lane1/voids", json={"receipt_no": "999999"},
            headers={"Idempotency-Key": "v2"}).json()["id"])
        assert unknown["state"] == "declined"
        error(register.post("/v1/terminals/lane1/voids", json={"receipt_no": "12a"},
                            headers={"Idempotency-Key": "v3"}), 422, "bad_input")
        settled = register.post("/v1/terminals/lane1/settlements", content=b"",
                                headers={"Idempotency-Key": "settle-1"})
        assert settled.status_code == 201, settled.text
        settle = final(register, settled.json()["id"])
        assert (settle["command"], settle["state"]) == ("settle", "approved")
        error(register.post("/v1/terminals/lane1/settlements", json={"now": True},
                            headers={"Idempotency-Key": "settle-2"}), 422, "bad_input")
    done = [(t.command, t.return_code) for t in sim.ledger.transactions]
    assert [c for c, _ in done] == ["sale", "void", "void", "settle"]
    assert done[2][1] == "12"  # the unknown receipt: refused by the terminal
    assert sim.state()["settlements"]


def test_listing_filters_and_pages(bridge: BridgeProcess) -> None:
    with bridge.client() as register:
        ids = []
        for n, amount in enumerate((10_000, 20_051, 30_000)):
            ids.append(pay(register, amount, f"l{n}", invoice=f"INV{n}").json()["id"])
            final(register, ids[-1])
        page = register.get("/v1/payments", params={"limit": 2}).json()
        assert [p["id"] for p in page["data"]] == [ids[2], ids[1]]  # newest first
        rest = register.get("/v1/payments", params={"limit": 2,
                                                    "cursor": page["next_cursor"]}).json()
        assert [p["id"] for p in rest["data"]] == [ids[0]] and rest["next_cursor"] is None
        assert [p["id"] for p in register.get(
            "/v1/payments", params={"state": "declined"}).json()["data"]] == [ids[1]]
        assert [p["id"] for p in register.get(
            "/v1/payments", params={"invoice": "INV2"}).json()["data"]] == [ids[2]]
        assert register.get("/v1/payments", params={"terminal": "lane9"}).json()["data"] == []
        today = register.get("/v1/payments/" + ids[0]).json()["created_at"][:10]
        assert len(register.get("/v1/payments", params={"since": today, "until": today})
                   .json()["data"]) == 3
        assert register.get("/v1/payments", params={"until": today + "T00:00:00"}).json()[
            "data"] == []
        for params, field in (({"state": "lost"}, "state"), ({"limit": 0}, "limit"),
                              ({"limit": 501}, "limit"), ({"cursor": "zz"}, "cursor"),
                              ({"since": "yesterday"}, "since"), ({"colour": "x"}, "colour")):
            reply = register.get("/v1/payments", params=params)
            assert error(reply, 422, "bad_input")["field"] == field


def test_terminal_busy_while_a_customer_pays(bridge: BridgeProcess, sim: Simulator) -> None:
    sim.configure(card_delay=3.0)
    with bridge.client() as register:
        first = pay(register, 50_000, "busy-1").json()
        busy = error(pay(register, 60_000, "busy-2"), 409, "terminal_busy")
        assert busy["payments"] == [first["id"]]
        error(register.get("/v1/terminals/lane1/last-transaction"), 409, "terminal_busy")
        assert register.get("/v1/terminals").json()[0]["state"] == "busy"
        assert final(register, first["id"])["state"] == "approved"
        # the refused request used no key: it may be sent again
        assert pay(register, 60_000, "busy-2").status_code == 201
    assert [s.amount for s in sales(sim)][:1] == [50_000]


def wait_for_sales(sim: Simulator, count: int, seconds: float = 10.0) -> list[Any]:
    deadline = time.monotonic() + seconds
    while len(done := [s for s in sales(sim) if s.status.value != "pending"]) < count:
        assert time.monotonic() < deadline, sales(sim)
        time.sleep(0.1)
    return done


def test_in_doubt_blocks_sales_until_a_manager_resolves_it(
    make_bridge: Callable[..., BridgeProcess], sim: Simulator
) -> None:
    # The customer takes 4 s; the bridge waits 1 s for the reply and 1 s for recovery:
    # nobody knows what happened, and the terminal is still busy when asked again.
    bridge = make_bridge(
        terminal_options="timeout = 1\nrecovery_timeout = 1\nstatus_timeout = 1")
    sim.configure(card_delay=4.0)
    with bridge.client() as register, bridge.client("manager") as manager:
        doubt = final(register, pay(register, 70_000, "doubt-1").json()["id"])
        assert doubt["state"] == "in_doubt"
        assert "do NOT charge again" in doubt["message"]
        refused = error(pay(register, 80_000, "after-1"), 409, "in_doubt")
        assert refused["payments"] == [doubt["id"]]
        assert doubt["id"] in refused["message"]
        assert register.get("/v1/terminals").json()[0]["state"] == "in_doubt"
        [paid] = wait_for_sales(sim, 1)  # the receipt the terminal printed
        body = {"approved_receipt": f"{paid.receipt_no:06d}", "who": "Lan"}
        error(register.post(f"/v1/payments/{doubt['id']}/resolve", json=body), 403,
              "forbidden")
        error(manager.post(f"/v1/payments/{doubt['id']}/resolve", json={"who": "Lan"}), 422,
              "bad_input")
        resolved = manager.post(f"/v1/payments/{doubt['id']}/resolve", json=body)
        assert resolved.status_code == 200, resolved.text
        assert resolved.json()["state"] == "approved"
        assert resolved.json()["receipt_no"] == body["approved_receipt"]
        error(manager.post(f"/v1/payments/{doubt['id']}/resolve", json=body), 409,
              "not_in_doubt")
        error(manager.post("/v1/payments/pay_nope/resolve", json=body), 404, "not_found")
        sim.configure(card_delay=0.0)
        after = final(register, pay(register, 80_000, "after-1").json()["id"])
        assert after["state"] == "approved"
    assert [s.amount for s in sales(sim)] == [70_000, 80_000]


def test_an_in_doubt_payment_is_settled_by_the_terminal_later(
    make_bridge: Callable[..., BridgeProcess], sim: Simulator
) -> None:
    bridge = make_bridge(terminal_options="timeout = 1\nrecovery_timeout = 1")
    sim.configure(card_delay=3.0)
    with bridge.client() as register:
        doubt = final(register, pay(register, 71_000, "d-1").json()["id"])
        assert doubt["state"] == "in_doubt"
        wait_for_sales(sim, 1)
        sim.configure(card_delay=0.0)
        # the next sale's flow asks last trans first: the terminal shows the payment
        after = final(register, pay(register, 72_000, "d-2").json()["id"])
        assert after["state"] == "approved"
        settled = register.get(f"/v1/payments/{doubt['id']}").json()
    assert settled["state"] == "approved"
    assert settled["receipt_no"] == f"{sales(sim)[0].receipt_no:06d}"


def test_every_error_has_the_one_shape(bridge: BridgeProcess) -> None:
    with bridge.client() as register:
        assert error(register.get("/v1/nothing"), 404, "not_found")
        assert error(register.get("/v1/payments/pay_unknown"), 404, "not_found")
        assert error(pay(register, 1000, "k", terminal="lane9"), 404, "not_found")
        assert error(register.get("/v1/terminals/lane9/last-transaction"), 404, "not_found")
        assert error(register.get("/v1/terminals/lane1/payments"), 405, "method_not_allowed")
        assert error(register.delete("/v1/payments"), 405, "method_not_allowed")
        big = register.post("/v1/terminals/lane1/payments", content=b" " * (65 * 1024),
                            headers={"Idempotency-Key": "big"})
        assert error(big, 413, "payload_too_large")
        error(register.get("/v1/payments/x", params={"wait": "61"}), 404, "not_found")
        some = pay(register, 1000, "w").json()["id"]
        for wait in ("61", "-1", "nan", "soon"):
            assert error(register.get(f"/v1/payments/{some}", params={"wait": wait}), 422,
                         "bad_input")["field"] == "wait"
        assert error(register.post("/v1/reconciliations"), 403, "forbidden")


def test_cors_only_for_listed_origins_with_private_network_access(
    make_bridge: Callable[..., BridgeProcess],
) -> None:
    bridge = make_bridge(serve_extra='allowed_origins = ["https://pos.example.vn"]')
    preflight = {"Origin": "https://pos.example.vn", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,idempotency-key,content-type",
                 "Access-Control-Request-Private-Network": "true"}
    with bridge.client(None) as anonymous:
        ok = anonymous.options("/v1/terminals/lane1/payments", headers=preflight)
        assert ok.status_code == 204
        assert ok.headers["access-control-allow-origin"] == "https://pos.example.vn"
        assert ok.headers["access-control-allow-private-network"] == "true"
        assert "Idempotency-Key" in ok.headers["access-control-allow-headers"]
        assert "POST" in ok.headers["access-control-allow-methods"]
        other = anonymous.options("/v1/terminals/lane1/payments",
                                  headers={**preflight, "Origin": "https://evil.example"})
        error(other, 403, "forbidden")
        assert "access-control-allow-origin" not in other.headers
    with bridge.client() as register:
        listed = register.get("/v1/terminals", headers={"Origin": "https://pos.example.vn"})
        assert listed.headers["access-control-allow-origin"] == "https://pos.example.vn"
        unlisted = register.get("/v1/terminals", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in unlisted.headers


def test_console_client_js_and_openapi_are_served(bridge: BridgeProcess) -> None:
    with bridge.client(None) as anonymous:
        console = anonymous.get("/")
        assert console.status_code == 200
        assert console.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in console.headers["content-security-policy"]
        js = anonymous.get("/v1/client.js")
        assert js.status_code == 200
        assert js.headers["content-type"].startswith("text/javascript")
        doc = anonymous.get("/openapi.json").json()
        error(anonymous.get("/../config.toml"), 404, "not_found")
        error(anonymous.get("/.hidden.js"), 404, "not_found")
    assert doc["openapi"].startswith("3.1")
    for path in ("/v1/health", "/v1/terminals", "/v1/terminals/{name}/payments",
                 "/v1/terminals/{name}/voids", "/v1/terminals/{name}/settlements",
                 "/v1/terminals/{name}/last-transaction", "/v1/payments/{id}",
                 "/v1/payments", "/v1/payments/{id}/resolve", "/v1/events",
                 "/v1/reconciliations", "/openapi.json", "/", "/v1/client.js"):
        assert path in doc["paths"], path


def test_no_key_and_no_card_data_in_the_log(bridge: BridgeProcess, sim: Simulator) -> None:
    with bridge.client() as register:
        final(register, pay(register, 99_000, "log-1", invoice="SECRET-INV").json()["id"])
        register.get("/v1/terminals", headers={"Authorization": "Bearer wrong-key-123"})
    bridge.stop()
    log = bridge.log() + bridge.output()
    assert "POST /v1/terminals/lane1/payments 201" in log  # the access log is there
    for secret in (bridge.register_key, bridge.manager_key, "wrong-key-123", "SECRET-INV",
                   "XXXX", "Authorization"):
        assert secret not in log, secret


def test_an_unreachable_terminal_fails_the_payment_and_charges_nothing(
    make_bridge: Callable[..., BridgeProcess], sim: Simulator,
) -> None:
    from .conftest import free_port

    nowhere = f"http://127.0.0.1:{free_port()}"
    bridge = make_bridge(terminals={"lane1": sim.http_url, "lane2": nowhere},
                         terminal_options="connect_timeout = 1")
    with bridge.client() as register:
        created = pay(register, 40_000, "nowhere-1", terminal="lane2")
        assert created.status_code == 201, created.text
        failed = final(register, created.json()["id"])
        lanes = {t["name"]: t for t in register.get("/v1/terminals").json()}
        error(register.get("/v1/terminals/lane2/last-transaction"), 503,
              "terminal_unreachable")
        ok = final(register, pay(register, 41_000, "lane1-1").json()["id"])
    assert failed["state"] == "failed"
    assert "Not charged" in failed["message"]
    assert lanes["lane2"]["state"] == "unreachable" and lanes["lane1"]["state"] == "idle"
    assert ok["state"] == "approved"  # one terminal down does not stop the others
    assert [s.amount for s in sales(sim)] == [41_000]


def test_idempotency_keys_survive_a_restart(bridge: BridgeProcess, sim: Simulator) -> None:
    with bridge.client() as register:
        first = final(register, pay(register, 130_000, "restart-key").json()["id"])
        bridge.restart()
        again = pay(register, 130_000, "restart-key")
        other = pay(register, 130_500, "restart-key")
        void = register.post("/v1/terminals/lane1/voids",
                             json={"receipt_no": first["receipt_no"]},
                             headers={"Idempotency-Key": "restart-void"})
        final(register, void.json()["id"])
        bridge.restart()
        void_again = register.post("/v1/terminals/lane1/voids",
                                   json={"receipt_no": first["receipt_no"]},
                                   headers={"Idempotency-Key": "restart-void"})
    assert again.status_code == 200 and again.json()["id"] == first["id"]
    assert again.json()["state"] == "approved"
    error(other, 409, "idempotency_conflict")
    assert void_again.status_code == 200 and void_again.json()["id"] == void.json()["id"]
    assert [t.command for t in sim.ledger.transactions] == ["sale", "void"]
