"""The serving entrypoint's fault injection: the middleware over a real ASGI app."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from modelrelease.domain.fault import FaultSetting
from modelrelease.serving.faults import FaultMiddleware, fault_from_env, with_fault
from modelrelease.serving.metrics import Receive, Scope, Send
from modelrelease.spec import Fault

pytestmark = pytest.mark.integration


async def scoring(scope: Scope, receive: Receive, send: Send) -> None:
    """A stand-in for MLflow's scoring app: 200 with a fixed body on every path."""
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"predictions": [0]}'})


def call(app: object, path: str, times: int = 1) -> tuple[list[int], float]:
    async def run() -> list[int]:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://pod") as http:
            return [(await http.post(path, json={})).status_code for _ in range(times)]

    began = time.perf_counter()
    codes = asyncio.run(run())
    return codes, time.perf_counter() - began


def test_no_fault_by_default() -> None:
    assert fault_from_env({}) is None
    assert with_fault(scoring, None) is scoring
    assert call(with_fault(scoring, fault_from_env({})), "/invocations", 3)[0] == [200] * 3


def test_latency_delays_invocations_only() -> None:
    app = with_fault(scoring, fault_from_env({"MODELRELEASE_FAULT": "latency:0.2"}))
    codes, seconds = call(app, "/invocations", 2)
    assert codes == [200, 200] and seconds >= 0.4
    codes, seconds = call(app, "/ping", 2)
    assert codes == [200, 200] and seconds < 0.2


@pytest.mark.parametrize(("draws", "expected"), [
    pytest.param([0.1, 0.6, 0.49, 0.5], [500, 200, 500, 200], id="half"),
    pytest.param([0.0, 0.99], [500, 200], id="edges"),
])
def test_errors_fail_their_share_of_invocations(draws: list[float],
                                                expected: list[int]) -> None:
    left = iter(draws)
    app = FaultMiddleware(scoring, FaultSetting(Fault.ERRORS, 0.5), chance=lambda: next(left))
    assert call(app, "/invocations", len(draws))[0] == expected
    assert call(app, "/ping", 3)[0] == [200] * 3  # probes never draw: the pod stays Ready


def test_errors_answer_a_json_500() -> None:
    app = with_fault(scoring, FaultSetting(Fault.ERRORS, 1.0))

    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://pod") as http:
            return await http.post("/invocations", json={})

    answer = asyncio.run(run())
    assert answer.status_code == 500 and answer.json()["error_code"] == "INJECTED_FAULT"


@pytest.mark.parametrize(("value", "message"), [
    pytest.param("crash", "injected fault (MODELRELEASE_FAULT=crash): exiting at startup",
                 id="crash"),
    pytest.param("latency:soon", "'soon' is not a number", id="malformed"),
])
def test_crash_and_malformed_values_exit_at_startup(value: str, message: str) -> None:
    with pytest.raises(SystemExit, match=message.replace("(", r"\(").replace(")", r"\)")):
        fault_from_env({"MODELRELEASE_FAULT": value})
