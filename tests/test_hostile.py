"""A terminal, a network or a disk that misbehaves never turns into a wrong answer,
a hang or a double charge. Real sockets, the real simulator, a real full disk."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ecrlink import (
    ConnectError,
    DuplicateInvoice,
    InDoubtPending,
    NotTerminalReply,
    Outcome,
    Terminal,
    TerminalBusy,
)
from ecrlink.journal import Journal, State
from ecrlink.payment import Event
from ecrlink.protocol import Sale
from ecrlink.simulator import Simulator
from ecrlink.transports import terminal_key
from tests.conftest import RawServer, fixture_bytes, http_reply
from tests.journal.test_faults import CuttingProxy

Start = Callable[[Callable[[socket.socket, bytes], None]], RawServer]


def target(request: bytes) -> str:
    return request.split(b" ")[1].decode()


def answering(sale: Callable[[str], bytes]) -> Callable[[socket.socket, bytes], None]:
    """A terminal whose sale reply is ``sale(request_id)``; ``last trans`` always shows
    the document's sample, a transaction from before ours (it proves nothing while
    the terminal may still be in ours)."""

    def handler(conn: socket.socket, request: bytes) -> None:
        line = target(request)
        rid = line.split("rqt=")[1].split("|")[0]
        if "last%20trans" in line:
            last = fixture_bytes("last_trans_chip.json").replace(b"Request:001", rid.encode())
            conn.sendall(http_reply(last.replace(b'"Manh123"', b'"UserName:Manh123"')))
            return
        conn.sendall(http_reply(sale(rid)))

    return handler


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(http=("127.0.0.1", 0)) as running:
        yield running


# --- 1. a deadline per exchange -------------------------------------------------------

def test_a_trickling_terminal_is_bounded_by_the_timeout_and_the_recovery_bound(
    raw_server: Start, tmp_path: Path
) -> None:
    body = fixture_bytes("sale_approved_swipe.json")

    def trickle(conn: socket.socket, request: bytes) -> None:
        conn.sendall(http_reply(body)[: -len(body)])
        for byte in body:  # one byte every 0.2 s: 140 s for the whole reply
            conn.sendall(bytes([byte]))
            time.sleep(0.2)

    server = raw_server(trickle)
    started = time.monotonic()
    with Terminal(server.url, journal=tmp_path / "j.sqlite3", timeout=1.0, status_timeout=0.5,
                  recovery_timeout=1.0) as pos:
        result = pos.sale(123456)
    took = time.monotonic() - started
    # pre-send last trans (0.5) + the sale (1.0) + recovery (1.0), with margin
    assert took < 5.0, took
    assert result.outcome is Outcome.UNKNOWN and "within 1 s" in (result.detail or "")
    assert pos.journal is not None and pos.journal.unresolved()[0].state is State.IN_DOUBT


# --- 2. one strict definition of approved ---------------------------------------------

def _approval(rid: str, **changes: object) -> dict[str, object]:
    doc = json.loads(fixture_bytes("sale_approved_swipe.json"))
    doc["requestId"] = rid
    for key, value in changes.items():
        if key.startswith("info."):
            doc["transInfo"][key[5:]] = value
        else:
            doc[key] = value
    return doc


NOT_CLEAN: dict[str, Callable[[str], dict[str, object]]] = {
    "returnCode false": lambda rid: _approval(rid, **{"info.returnCode": False}),
    "returnCode '0'": lambda rid: _approval(rid, **{"info.returnCode": "0"}),
    "returnCode 0.0": lambda rid: _approval(rid, **{"info.returnCode": 0.0}),
    "DECLINE beside 00": lambda rid: _approval(rid, **{"info.transStatus": "DECLINE"}),
    "void type on a sale": lambda rid: _approval(rid, **{"info.transType": "2"}),
    "another register": lambda rid: _approval(rid, clientId="QUAY9"),
    "inner id of another request": lambda rid: {
        **{k: v for k, v in _approval(rid, **{"info.requestId": "other"}).items()
           if k != "requestId"}},
    "51 beside transStatus APPROVE": lambda rid: _approval(rid, **{"info.returnCode": "51"}),
    "a decline for another register": lambda rid: _approval(
        rid, clientId="QUAY9", **{"info.returnCode": "51", "info.transStatus": "DECLINE"}),
    "only returnCode and amount": lambda rid: {
        "status": "DONE", "command": "sale",
        "transInfo": {"returnCode": "00", "amount": "123456"}},
}


@pytest.mark.parametrize("case", NOT_CLEAN)
def test_a_reply_that_is_not_clean_is_never_approved_nor_declined(
    raw_server: Start, tmp_path: Path, case: str
) -> None:
    server = raw_server(answering(lambda rid: json.dumps(NOT_CLEAN[case](rid)).encode()))
    with Terminal(server.url, client_id="UserName:Manh123", journal=tmp_path / "j.sqlite3",
                  status_timeout=0.3, recovery_timeout=0.5) as pos:
        result = pos.sale(123456)
    assert not result.approved and result.outcome is Outcome.UNKNOWN, (case, result)
    assert pos.journal is not None
    [entry] = pos.journal.entries(commands=["sale"])
    assert entry.state is State.IN_DOUBT and entry.note


# --- 3. one identity per terminal ------------------------------------------------------

def test_spellings_of_one_terminal_share_one_guard_and_one_lock(
    sim: Simulator, tmp_path: Path
) -> None:
    port = sim.http_url.rsplit(":", 1)[1]
    spellings = [f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port}/",
                 f"http://localhost:{port}", f"HTTP://LOCALHOST:{port}/"]
    assert len({terminal_key(u) for u in spellings}) == 1
    journal = tmp_path / "j.sqlite3"
    with Terminal(spellings[0], journal=journal, lock_timeout=0.3) as first:
        assert first.sale(10_000).approved
        assert first.journal is not None
        doubt = first.journal.begin(first.terminal, Sale.build(5_000, request_id="d1",
                                                               client_id="ECRLINK"))
        first.journal.record(doubt, Event.LOST)
        for url in spellings[1:]:
            with Terminal(url, journal=journal) as other, pytest.raises(InDoubtPending):
                other.sale(20_000)
        with first._lock(), Terminal(spellings[2], journal=journal, lock_timeout=0.3) as other, \
                pytest.raises(TerminalBusy):
            other.last_transaction()


def test_another_name_that_answers_with_the_same_tid_shares_the_guard(
    sim: Simulator, tmp_path: Path
) -> None:
    proxy = CuttingProxy(sim.http_url, keep=1 << 20)  # forwards everything
    try:
        journal = tmp_path / "j.sqlite3"
        with Terminal(sim.http_url, journal=journal) as direct, \
                Terminal(proxy.url, journal=journal) as via_proxy:
            assert terminal_key(direct.url) != terminal_key(via_proxy.url)
            assert direct.sale(10_000).approved and via_proxy.sale(11_000).approved
            assert direct.journal is not None
            doubt = direct.journal.begin(direct.terminal, Sale.build(
                5_000, request_id="d2", client_id="ECRLINK"))
            direct.journal.record(doubt, Event.LOST)
            with pytest.raises(InDoubtPending) as info:
                via_proxy.sale(20_000)
            assert info.value.journal_ids == (doubt,)
    finally:
        proxy.close()


# --- 4. what cannot have reached the terminal -------------------------------------------

def test_a_proxy_404_page_is_failed_at_once_not_in_doubt(raw_server: Start, tmp_path: Path) -> None:
    page = b"<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1>" \
        + b"x" * 5000 + b"</body></html>"
    server = raw_server(lambda conn, _: conn.sendall(
        http_reply(page, status="404 Not Found").replace(b"application/json", b"text/html")))
    started = time.monotonic()
    with Terminal(server.url, journal=tmp_path / "j.sqlite3") as pos, \
            pytest.raises(NotTerminalReply) as info:
        pos.sale(1000)
    assert time.monotonic() - started < 2.0
    assert info.value.status == 404 and "\n" not in str(info.value)
    assert len(str(info.value)) < 250 and "<" not in str(info.value)
    assert pos.journal is not None
    [entry] = pos.journal.entries(commands=["sale"])
    assert entry.state is State.FAILED and pos.journal.unresolved() == []


def test_a_refused_port_is_failed_at_once_not_in_doubt(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed when the block ends: nobody listens
    started = time.monotonic()
    with Terminal(f"http://127.0.0.1:{port}", journal=tmp_path / "j.sqlite3") as pos, \
            pytest.raises(ConnectError):
        pos.sale(1000)
    assert time.monotonic() - started < 2.0
    assert pos.journal is not None
    [entry] = pos.journal.entries(commands=["sale"])
    assert entry.state is State.FAILED and pos.journal.unresolved() == []


# --- 5. card numbers masked whatever the key ---------------------------------------------

PANS = ("4111111111111111", "5555 5555 5555 4444", "4012-8888-8888-1881", "378282246310005")


def test_full_card_numbers_under_odd_keys_never_reach_the_journal_or_the_log(
    raw_server: Start, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def leaky(rid: str) -> bytes:
        doc = _approval(rid, **{"info.CARDNO": PANS[0], "info.cardNumber": PANS[1],
                                "info. cardNo": PANS[2], "info.track2": PANS[3] + "=2512101",
                                "info.cardHolder": f"NGUYEN VAN A {PANS[0]}"})
        return json.dumps(doc).encode()

    server = raw_server(answering(leaky))
    journal = tmp_path / "j.sqlite3"
    from tests.cli.conftest import run

    r = run("sale", "123456", "-v", "--client-id", "UserName:Manh123", "-t", server.url,
            "--journal", str(journal))
    assert r.exit_code == 0, r.stderr
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("j.sqlite3*"))
    for pan in PANS:
        digits = pan.replace(" ", "").replace("-", "")
        assert pan.encode() not in stored and digits.encode() not in stored, pan
        assert pan not in r.stderr and digits not in r.stderr, pan
        assert pan not in r.stdout and digits not in r.stdout, pan
    assert "full card number" in r.stderr or "unmasked" in r.stderr


# --- 6. an answer the journal cannot record is still returned -----------------------------

FULL_DISK_CHILD = textwrap.dedent("""
    import json, os, resource, signal, sys
    import ecrlink
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death
    url, path = sys.argv[1], sys.argv[2]
    with ecrlink.Terminal(url, journal=path) as pos:
        real = pos._transport.exchange
        def exchange(line, *, timeout, on_sent=None):
            reply = real(line, timeout=timeout, on_sent=on_sent)
            if "cmd=sale" in line:  # the disk fills while the customer pays
                size = max(os.path.getsize(p) for p in (path, path + "-wal")
                           if os.path.exists(p))
                resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
            return reply
        pos._transport.exchange = exchange
        result = pos.sale(123000, invoice="HD-FULL")
    print(json.dumps(result.to_dict()))
""")


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
def test_a_full_disk_still_returns_the_approval_and_recovers_on_restart(
    sim: Simulator, tmp_path: Path
) -> None:
    journal = tmp_path / "j.sqlite3"
    with Terminal(sim.http_url, journal=journal) as pos:  # a known last transaction
        assert pos.sale(10_000).approved
    child = subprocess.run([sys.executable, "-c", FULL_DISK_CHILD, sim.http_url, str(journal)],
                           capture_output=True, text=True, timeout=60)
    assert child.returncode == 0, child.stderr
    result = json.loads(child.stdout)
    assert result["outcome"] == "approved" and result["transaction"]["amount"] == 123000
    assert "full" in (result["unrecorded"] or "") or "large" in (result["unrecorded"] or "")
    assert "could not record" in child.stderr
    with Journal(journal) as j:
        [entry] = [e for e in j.entries(commands=["sale"]) if e.invoice == "HD-FULL"]
        assert entry.state is State.PENDING  # written before sending; the answer was not
    with Terminal(sim.http_url, journal=journal) as pos:  # the next start
        [recovered] = pos.recover()
    assert recovered.outcome is Outcome.APPROVED, recovered.detail
    with Journal(journal) as j:
        assert j.get(entry.id).state is State.APPROVED


# --- 7. the same invoice twice -------------------------------------------------------------

def test_a_paid_invoice_is_refused_unless_allowed(sim: Simulator, tmp_path: Path) -> None:
    journal = tmp_path / "j.sqlite3"
    with Terminal(sim.http_url, journal=journal) as pos:
        first = pos.sale(99_000, invoice="HD9999")
        assert first.approved
        sales = len(sim.ledger.transactions)
        with pytest.raises(DuplicateInvoice, match=rf"HD9999.*entry {first.journal_id}"):
            pos.sale(99_000, invoice="HD9999")
        assert len(sim.ledger.transactions) == sales  # nothing sent
        assert pos.sale(99_000, invoice="HD9998").approved  # another invoice is fine
        assert pos.sale(50_000, invoice="HD9999", allow_duplicate=True).approved
    with Terminal(sim.http_url, journal=journal, duplicate_window=0.2) as pos:
        time.sleep(0.3)
        assert pos.sale(1_000, invoice="HD9998").approved  # outside that window


def test_a_declined_invoice_may_be_paid_again(sim: Simulator, tmp_path: Path) -> None:
    with Terminal(sim.http_url, journal=tmp_path / "j.sqlite3") as pos:
        assert not pos.sale(20_051, invoice="HD7").approved
        assert pos.sale(20_000, invoice="HD7").approved
