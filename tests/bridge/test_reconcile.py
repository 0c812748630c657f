"""``POST /v1/reconciliations``: the bank's statement against the journal, over HTTP."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

from ecrlink.simulator import Simulator

from .conftest import BridgeProcess
from .test_api import error, final, pay, wait_for_sales


def test_reconcile_a_statement_settles_an_in_doubt_payment_and_serves_the_xlsx(
    make_bridge: Callable[..., BridgeProcess], sim: Simulator, tmp_path: Path
) -> None:
    bridge = make_bridge(
        terminal_options="timeout = 1\nrecovery_timeout = 1\nstatus_timeout = 1")
    with bridge.client() as register, bridge.client("manager") as manager:
        paid = final(register, pay(register, 101_000, "r-1", invoice="HD-R1").json()["id"])
        sim.configure(card_delay=3.0)
        doubt = final(register, pay(register, 102_000, "r-2", invoice="HD-R2").json()["id"])
        assert doubt["state"] == "in_doubt"
        wait_for_sales(sim, 2)
        statement = tmp_path / "bank.csv"
        assert sim.write_statement(statement, include_open_batch=True) == 2
        files = {"bank": ("bank.csv", statement.read_bytes(), "text/csv")}
        error(register.post("/v1/reconciliations", files=files), 403, "forbidden")
        reply = manager.post("/v1/reconciliations", files=files)
        assert reply.status_code == 201, reply.text
        report = reply.json()
        assert report["xlsx_url"] == f"/v1/reconciliations/{report['id']}.xlsx"
        assert len(report["rows"]) >= 2
        xlsx = manager.get(report["xlsx_url"])
        assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"  # a zip: XLSX
        error(register.get(report["xlsx_url"]), 403, "forbidden")
        error(manager.get("/v1/reconciliations/rec_0000000000000000.xlsx"), 404, "not_found")
        settled = register.get(f"/v1/payments/{doubt['id']}").json()
        bad = manager.post("/v1/reconciliations",
                           files={"bank": ("bank.csv", b"nothing,here\n1,2\n", "text/csv")})
        no_file = manager.post("/v1/reconciliations", files={"other": ("x.csv", b"a", "text/csv")})
        wrong_kind = manager.post("/v1/reconciliations",
                                  files={"bank": ("bank.pdf", b"%PDF", "application/pdf")})
        not_multipart = manager.post("/v1/reconciliations", json={"bank": "x"})
    assert paid["state"] == "approved"
    assert settled["state"] == "approved"  # the statement proves it
    assert error(bad, 422, "bad_input")["field"] == "bank"
    assert error(no_file, 422, "bad_input")["field"] == "other"
    assert error(wrong_kind, 422, "bad_input")["field"] == "bank"
    assert error(not_multipart, 422, "bad_input")["field"] in ("bank", "body")


def test_the_upload_limit_is_larger_than_the_json_limit_but_bounded(
    make_bridge: Callable[..., BridgeProcess],
) -> None:
    bridge = make_bridge(tuning="max_upload_mb = 0.5")
    big = io.BytesIO(b"x" * (300 * 1024))
    with bridge.client("manager") as manager:
        mid = manager.post("/v1/reconciliations", files={"bank": ("bank.csv", big, "text/csv")})
        huge = manager.post("/v1/reconciliations",
                            files={"bank": ("bank.csv", b"x" * (600 * 1024), "text/csv")})
    assert error(mid, 422, "bad_input")["field"] == "bank"  # read, not refused for size
    error(huge, 413, "payload_too_large")
