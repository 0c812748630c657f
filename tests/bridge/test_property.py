"""Property-based tests of the API from its own OpenAPI document (schemathesis).

Schemathesis reads ``/openapi.json`` from a running bridge, generates requests for
every operation (valid and invalid bodies, headers, paths, queries) and checks each
answer: never a 5xx, the status codes and content types the document lists, bodies
that match its schemas. A bounded number of examples per operation keeps the run
under a minute. ``GET /v1/events`` never ends by design: it is driven here by
hypothesis directly (bad and good ``Last-Event-ID`` values), reading only the start.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from ecrlink.bridge.openapi import openapi_document
from ecrlink.simulator import Simulator

from .conftest import BridgeProcess

EXAMPLES = 20


@pytest.fixture(scope="module")
def api_bridge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BridgeProcess]:
    root: Path = tmp_path_factory.mktemp("property")
    with Simulator(http=("127.0.0.1", 0), state_file=root / "sim.json",
                   no_answer_timeout=1.0) as sim:
        process = BridgeProcess(root / "bridge", {"lane1": sim.http_url},
                                terminal_options="timeout = 2\nrecovery_timeout = 1\n"
                                "status_timeout = 1")
        process.start()
        try:
            yield process
        finally:
            process.stop()
            log = process.log()
            assert "Traceback" not in log
            assert log.count("ecrlink.bridge.access") > 20  # the requests did happen


@pytest.fixture(scope="module")
def api_schema(api_bridge: BridgeProcess) -> Any:
    """The document as the running bridge serves it."""
    return schemathesis.openapi.from_url(f"{api_bridge.url}/openapi.json")


# One test per operation, listed from the document itself (the same function the
# bridge serves it from), so a new route is tested without touching this file.
OPERATIONS = [
    (method.upper(), path)
    for path, methods in openapi_document(["lane1"])["paths"].items()
    for method in methods
    if path != "/v1/events"
]


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_no_input_makes_the_bridge_fail(
    api_bridge: BridgeProcess, api_schema: Any, method: str, path: str
) -> None:
    operation = api_schema[path][method]
    cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE),
                      operation.as_strategy(GenerationMode.NEGATIVE))

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
              database=None)
    @given(case=cases)
    def run(case: Any) -> None:
        case.call_and_validate(
            base_url=api_bridge.url,
            headers={"Authorization": f"Bearer {api_bridge.manager_key}"},
            checks=[not_a_server_error, status_code_conformance, content_type_conformance,
                    response_schema_conformance],
            timeout=30,
        )

    run()


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
          database=None)
@given(last=st.one_of(st.integers(min_value=-10, max_value=2**64).map(str),
                      st.text(st.characters(min_codepoint=32, max_codepoint=126),
                              max_size=30).filter(lambda t: t == t.strip())))
def test_event_stream_resume_point_is_checked(api_bridge: BridgeProcess, last: str) -> None:
    headers = {"Authorization": f"Bearer {api_bridge.register_key}", "Last-Event-ID": last}
    with httpx.stream("GET", f"{api_bridge.url}/v1/events", headers=headers,
                      timeout=10) as reply:
        assert reply.status_code in (200, 422)
        if reply.status_code == 422:
            reply.read()
            assert reply.json()["error"]["field"] == "Last-Event-ID"
        else:
            assert last == "" or (last.isdigit() and int(last) <= 2**62)  # "": from now
            first = next(reply.iter_lines())
            assert first.startswith("retry:")
