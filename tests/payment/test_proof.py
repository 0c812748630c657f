"""``judge``: what a ``last trans`` answer proves about a payment whose answer was lost."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from ecrlink.payment import Attempt, Mark, Verdict, judge
from ecrlink.protocol import VIETNAM_TIME, parse_reply
from tests.conftest import fixture_bytes

SENT = datetime(2026, 1, 1, 3, 0, 0, tzinfo=UTC)  # 10:00 in Vietnam
BEFORE = {"amount": "1000", "STAN": "000041", "receiptNo": "5", "batchNo": "1",
          "refNo": "111", "approvalCode": "A1", "transType": "1", "returnCode": "00",
          "time": "20260101095000"}


def last_trans(**info: str) -> bytes:
    base = {"amount": "5000", "STAN": "000042", "receiptNo": "6", "batchNo": "1",
            "refNo": "222", "approvalCode": "B2", "transType": "1", "returnCode": "00",
            "time": "20260101100005"}
    base.update(info)
    return json.dumps({"requestId": "q", "clientId": "c", "command": "last_trans",
                       "status": "DONE", "transInfo": base}).encode()


EMPTY = (b'{"requestId":"q","command":"last_trans","status":"DONE",'
         b'"transInfo":{"returnCode":"25","transStatus":"DECLINE"}}')


def attempt(**kw: object) -> Attempt:
    mark = Mark.of(parse_reply(last_trans(**BEFORE)).transaction)  # type: ignore[arg-type]
    base: dict[str, object] = dict(
        request_id="ours", command="sale", amount=5000, sent_at=SENT,
        deadline=SENT + timedelta(seconds=180), mark=mark, mark_at=SENT - timedelta(minutes=5),
        clock_offset=0.0, echoes=False,
    )
    base.update(kw)
    return Attempt(**base)  # type: ignore[arg-type]


def verdict(raw: bytes, *, idle: bool = False, **kw: object) -> Verdict:
    return judge(attempt(**kw), parse_reply(raw), idle=idle).verdict


def test_our_request_id_means_approved_or_mismatch() -> None:
    assert verdict(last_trans(requestId="ours")) is Verdict.APPROVED
    assert verdict(last_trans(requestId="ours", amount="6500")) is Verdict.MISMATCH


def test_newer_transaction_with_our_amount_after_our_send_is_ours_without_echo() -> None:
    judgement = judge(attempt(), parse_reply(last_trans()), idle=False)
    assert judgement.verdict is Verdict.APPROVED
    assert "STAN 41" in judgement.reason and "STAN 42" in judgement.reason


def test_the_documents_own_last_trans_sample_proves_a_sale_without_echo() -> None:
    raw = fixture_bytes("last_trans_chip.json")  # 123000 VND, 2014-10-17 10:50:10
    t = parse_reply(raw).transaction
    assert t is not None and t.time is not None and t.request_id is None
    sent = t.time.astimezone(UTC) - timedelta(seconds=20)
    ours = attempt(amount=123000, sent_at=sent, deadline=sent + timedelta(seconds=180))
    assert judge(ours, parse_reply(raw), idle=False).verdict is Verdict.APPROVED
    # the same answer for a sale of another amount proves nothing
    other = attempt(amount=150000, sent_at=sent, deadline=sent + timedelta(seconds=180))
    assert judge(other, parse_reply(raw), idle=True).verdict is Verdict.UNKNOWN


def test_unchanged_mark_means_not_approved_only_once_the_terminal_is_idle() -> None:
    unchanged = last_trans(**BEFORE)
    waiting = judge(attempt(), parse_reply(unchanged), idle=False)
    assert waiting.verdict is Verdict.UNKNOWN and waiting.retry
    assert verdict(unchanged, idle=True) is Verdict.NOT_APPROVED


def test_empty_terminal_means_not_approved_only_once_idle() -> None:
    assert verdict(EMPTY, idle=False) is Verdict.UNKNOWN
    assert verdict(EMPTY, idle=True) is Verdict.NOT_APPROVED


def test_what_proves_nothing_stays_unknown() -> None:
    # another amount, even from the terminal after our send
    assert verdict(last_trans(amount="4000"), idle=True) is Verdict.UNKNOWN
    # made before our send (terminal time 09:58, we sent at 10:00, skew 2 min allowed)
    assert verdict(last_trans(time="20260101095730"), idle=True) is Verdict.UNKNOWN
    # after our deadline: not ours either
    assert verdict(last_trans(time="20260101101000"), idle=True) is Verdict.UNKNOWN
    # a void is not our sale
    assert verdict(last_trans(transType="2"), idle=True) is Verdict.UNKNOWN
    # someone else's request, on firmware that echoes
    assert verdict(last_trans(requestId="zzz"), idle=True) is Verdict.UNKNOWN
    # a terminal that echoes shows a newer transaction without an id: keypad-made
    assert verdict(last_trans(), idle=True, echoes=True) is Verdict.UNKNOWN
    # no high-water mark known before sending
    assert verdict(last_trans(), idle=True, mark=None) is Verdict.UNKNOWN
    # the terminal's clock is unknown and the mark is old
    assert verdict(last_trans(), idle=True, clock_offset=None) is Verdict.UNKNOWN


def test_fresh_mark_needs_no_clock() -> None:
    fresh = {"clock_offset": None, "mark_at": SENT - timedelta(seconds=1)}
    assert verdict(last_trans(time="19990101000000"), **fresh) is Verdict.APPROVED


def test_learned_clock_offset_places_a_terminal_whose_clock_is_off() -> None:
    # terminal clock one hour behind: 09:00:05 on it is 10:00:05 for us
    late = last_trans(time="20260101090005")
    assert verdict(late, clock_offset=-3600.0) is Verdict.APPROVED
    assert verdict(late, clock_offset=0.0, idle=True) is Verdict.UNKNOWN


@given(st.dictionaries(
    st.sampled_from(["amount", "STAN", "receiptNo", "batchNo", "refNo", "approvalCode",
                     "transType", "time", "requestId", "returnCode"]),
    st.text(alphabet="0123456789AB", max_size=14),
))
def test_never_approved_while_the_mark_is_unchanged(changes: dict[str, str]) -> None:
    """Whatever else a reply says, the old mark itself is never taken for our approval."""
    same = {**BEFORE, **{k: v for k, v in changes.items() if k in ("time", "returnCode")}}
    try:
        result = parse_reply(last_trans(**same))
    except Exception:
        return
    assert judge(attempt(), result, idle=True).verdict is not Verdict.APPROVED


def test_mark_round_trips_through_json() -> None:
    t = parse_reply(fixture_bytes("sale_chip_serial.json")).transaction
    assert t is not None
    mark = Mark.of(t)
    assert Mark.from_json(mark.to_json()) == mark and mark.identified
    assert mark.time == datetime(2018, 3, 5, 15, 22, 36, tzinfo=VIETNAM_TIME).isoformat()
