"""``judge``: what a last trans reply proves about an in-doubt payment."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from ecrlink.journal import Entry, State, Verdict, judge
from ecrlink.protocol import parse_reply

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def previous(**kw: object) -> Entry:
    base: dict[str, object] = dict(
        id=7, terminal="t", command="sale", state=State.APPROVED, request_id="prev",
        client_id="c", amount=1000, fields=("", "", "", "", ""), created_at=NOW,
        updated_at=NOW, receipt_no="5", batch_no="1", ref_no="111", approval_code="A1",
    )
    base.update(kw)
    return Entry(**base)  # type: ignore[arg-type]


def last_trans(**info: object) -> bytes:
    base: dict[str, object] = {"amount": "5000", "returnCode": "00", "receiptNo": "6",
                               "batchNo": "1", "refNo": "222", "approvalCode": "B2"}
    base.update(info)
    return json.dumps({"requestId": "q", "command": "last_trans", "status": "DONE",
                       "transInfo": base}).encode()


def test_our_request_id_means_approved() -> None:
    verdict = judge("ours", 5000, previous(), parse_reply(last_trans(requestId="ours")))
    assert verdict.verdict is Verdict.APPROVED


def test_our_request_id_with_another_amount_is_approved_and_flagged() -> None:
    verdict = judge("ours", 4000, previous(), parse_reply(last_trans(requestId="ours")))
    assert verdict.verdict is Verdict.APPROVED and "AMOUNT MISMATCH" in verdict.reason


def test_previous_approval_still_last_means_not_approved() -> None:
    by_id = judge("ours", 5000, previous(), parse_reply(last_trans(requestId="prev")))
    assert by_id.verdict is Verdict.NOT_APPROVED
    # older firmware: no requestId inside transInfo, matched by refNo + approval code
    by_ref = judge("ours", 5000, previous(), parse_reply(last_trans(refNo="111",
                                                                    approvalCode="A1")))
    assert by_ref.verdict is Verdict.NOT_APPROVED


def test_a_transaction_we_cannot_place_proves_nothing() -> None:
    assert judge("ours", 5000, previous(), parse_reply(last_trans(requestId="zzz"))).verdict \
        is Verdict.UNKNOWN
    assert judge("ours", 5000, None, parse_reply(last_trans())).verdict is Verdict.UNKNOWN
    assert judge("ours", 5000, previous(), parse_reply(last_trans())).verdict is Verdict.UNKNOWN


def test_empty_terminal_and_empty_journal_means_not_approved() -> None:
    empty = b'{"requestId":"q","command":"last_trans","status":"DONE",' \
            b'"transInfo":{"returnCode":"25","transStatus":"DECLINE"}}'
    assert judge("ours", 5000, None, parse_reply(empty)).verdict is Verdict.NOT_APPROVED
    # but with an approval in the journal, an empty terminal is a contradiction: unknown
    assert judge("ours", 5000, previous(), parse_reply(empty)).verdict is Verdict.UNKNOWN
