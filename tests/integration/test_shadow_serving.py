"""Shadow copies between two real scoring servers (MLflow's, on uvicorn, on loopback).

The primary is the serving entrypoint's stack (``ShadowMiddleware`` around
``MetricsMiddleware`` around MLflow's scoring app) with a real iris model; the canary is
the same stack with another real model. Copies travel over real HTTP. No fake anywhere:
a slow canary is the drills' latency fault, a dead one a closed port.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from modelrelease.domain.fault import FaultSetting
from modelrelease.domain.live import GENERATED_HEADER
from modelrelease.domain.shadow import (
    CONTROL_PATH,
    SERVED_HEADER,
    SHADOW_HEADER,
    TARGET_ENV,
    TOKEN_ENV,
    TOKEN_HEADER,
)
from modelrelease.serving.faults import with_fault
from modelrelease.serving.metrics import MetricsMiddleware
from modelrelease.serving.shadow import ShadowMiddleware
from modelrelease.serving.shadow_sender import SenderProcess
from modelrelease.spec import Fault
from modelrelease_localstack.demo_model import save_iris_model
from tests.kube import eventually
from tests.support import serve_asgi

pytestmark = pytest.mark.integration
TOKEN = "s3cret-token"
PUT_BODY = b'{"percent": 100, "seconds": 5}'
AUTH = {TOKEN_HEADER: TOKEN}
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5], [6.3, 2.5, 5.0, 1.9]]


def body(i: int) -> dict[str, Any]:
    return {"dataframe_split": {
        "columns": ["sepal_length", "sepal_width", "petal_length", "petal_width"],
        "data": [ROWS[i % len(ROWS)]]}}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from mlflow.pyfunc import load_model

    root = tmp_path_factory.mktemp("shadow-models")
    save_iris_model(str(root / "same"))
    save_iris_model(str(root / "other"), shuffled=True)
    return {"same": load_model(str(root / "same")), "other": load_model(str(root / "other"))}


def scoring(model: Any, fault: FaultSetting | None = None) -> MetricsMiddleware:
    from mlflow.pyfunc.scoring_server import init

    return MetricsMiddleware(with_fault(init(model), fault), {})


Serve = Callable[..., tuple[str, str, ShadowMiddleware]]


@pytest.fixture
def serve(models: dict[str, Any]) -> Iterator[Serve]:
    """Starts a canary (``model``, ``fault``) and a primary copying to it: their URLs."""
    from contextlib import ExitStack

    with ExitStack() as stack:
        def start(model: str = "same", fault: FaultSetting | None = None, *,
                  target: str | None = None, token: str | None = TOKEN,
                  clock: Callable[[], float] = time.time,
                  mirror: Callable[..., SenderProcess] = SenderProcess
                  ) -> tuple[str, str, ShadowMiddleware]:
            # as the serving entrypoint stacks them on every pod (no target: no copies)
            canary_app = scoring(models[model], fault)
            canary = stack.enter_context(serve_asgi(
                ShadowMiddleware(canary_app, {}, canary_app.registry)))
            inner = scoring(models["same"])
            env = {TARGET_ENV: target or canary} | ({TOKEN_ENV: token} if token else {})
            primary_app = ShadowMiddleware(inner, env, inner.registry, clock, mirror)
            primary = stack.enter_context(serve_asgi(primary_app))
            return primary, canary, primary_app
        yield start


def metric(text: str, line_start: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(line_start))


def shadow_on(http: httpx.Client, primary: str, **setting: Any) -> dict[str, Any]:
    answer = http.put(f"{primary}{CONTROL_PATH}", headers=AUTH,
                      json={"percent": 100, "seconds": 120} | setting)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def state(http: httpx.Client, primary: str, after: int = 0) -> dict[str, Any]:
    answer = http.get(f"{primary}{CONTROL_PATH}", headers=AUTH, params={"after": after})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_copies_reach_the_canary_unseen_and_both_answers_are_recorded(serve: Serve) -> None:
    primary, canary, _ = serve("other")
    with httpx.Client(timeout=30) as http:
        before = [http.post(f"{primary}/invocations", json=body(i)) for i in range(4)]
        on = shadow_on(http, primary)
        assert on["setting"]["percent"] == 100 and on["target"] == canary
        live = [http.post(f"{primary}/invocations", json=body(i),
                          headers={"X-Request-Id": f"user-{i}"}) for i in range(24)]
        judge = [http.post(f"{primary}/invocations", json=body(i),
                           headers={GENERATED_HEADER: "judge"}) for i in range(6)]
        # the users' answers are the primary's, as before shadow was on
        assert [r.status_code for r in live + judge] == [200] * 30
        assert [r.json() for r in live[:4]] == [r.json() for r in before]
        assert all("x-modelrelease-shadow" not in r.headers for r in live)
        eventually(lambda: state(http, primary)["counts"].get("answered") == 24, 30,
                   "24 copies answered by the canary")
        seen = state(http, primary)
        records = seen["records"]
        assert [r["request_id"] for r in records] != []
        assert sorted(r["request_id"] for r in records) == sorted(f"user-{i}" for i in range(24))
        assert seen["counts"] | {"queued": 0} == {"offered": 24, "answered": 24, "failed": 0,
                                                   "dropped": 0, "queued": 0,
                                                   "agreed": seen["counts"]["agreed"],
                                                   "disagreed": seen["counts"]["disagreed"]}
        # the shuffled model disagrees on some of the 4 rows, agrees on others
        assert seen["counts"]["disagreed"] > 0 and seen["counts"]["agreed"] > 0
        assert seen["counts"]["agreed"] + seen["counts"]["disagreed"] == 24
        # both timed in their own process, the canary's from its X-Modelrelease-Served-Ms
        assert all(r["canary"]["status"] == 200 and 0 < r["canary"]["ms"] < 1000
                   and 0 < r["primary"]["ms"] < 1000 for r in records)
        assert all("input" not in r and "body" not in r["canary"] for r in records)
        copy = http.post(f"{canary}/invocations", json=body(0),
                         headers={SHADOW_HEADER: "by-hand"})
        assert float(copy.headers[SERVED_HEADER]) > 0  # what the records' canary ms are
        # paging: nothing after the last one
        assert state(http, primary, seen["next"])["records"] == []
        # the canary counted the copies apart: no live traffic, no judge's load
        metrics = http.get(f"{canary}/metrics").text
        assert metric(metrics, 'modelrelease_shadow_requests_total{path="/invocations",'
                               'status="200"}') == 25
        assert metric(metrics, 'modelrelease_requests_total{path="/invocations"') == 0
        assert metric(metrics, 'modelrelease_generated_requests_total{path="/invocations"') == 0
        assert metric(metrics, "modelrelease_predictions_total") == 0
        own = http.get(f"{primary}/metrics").text
        assert metric(own, 'modelrelease_shadow_copies_total{outcome="answered"}') == 24
        assert metric(own, 'modelrelease_shadow_agreement_total{agree="false"}') == \
            seen["counts"]["disagreed"]
        assert metric(own, 'modelrelease_requests_total{path="/invocations"') == 34
        # off: nothing more is copied
        off = http.delete(f"{primary}{CONTROL_PATH}", headers=AUTH)
        assert off.status_code == 200 and off.json()["setting"] is None
        for i in range(5):
            assert http.post(f"{primary}/invocations", json=body(i)).status_code == 200
        time.sleep(0.5)
        assert state(http, primary)["counts"]["offered"] == 24


def test_the_share_asked_is_the_share_copied_and_payloads_only_when_allowed(
        serve: Serve) -> None:
    primary, _, _ = serve("same")
    with httpx.Client(timeout=30) as http:
        shadow_on(http, primary, percent=10, payloads=True)
        for i in range(50):
            assert http.post(f"{primary}/invocations", json=body(i)).status_code == 200
        eventually(lambda: state(http, primary)["counts"].get("answered") == 5, 30,
                   "5 of 50 copied")
        records = state(http, primary)["records"]
        assert len(records) == 5 and all(r["agree"] is True for r in records)
        assert json.loads(records[0]["input"]) in [body(i) for i in range(4)]
        assert records[0]["primary"]["body"] == records[0]["canary"]["body"]
        assert len(records[0]["request_id"]) == 32  # made up: the request had none


def test_a_slow_canary_loses_copies_not_the_users_answers(serve: Serve) -> None:
    """One sender, a queue of 2, a canary 1 s late: most copies are dropped and counted."""
    def small(target: str, registry: Any) -> SenderProcess:
        return SenderProcess(target, registry, queue_size=2, senders=1)

    primary, _, _ = serve("same", FaultSetting(Fault.LATENCY, 1.0), mirror=small)
    with httpx.Client(timeout=30) as http:
        shadow_on(http, primary)
        answers = [http.post(f"{primary}/invocations", json=body(i)) for i in range(12)]
        assert [a.status_code for a in answers] == [200] * 12
        counts = state(http, primary)["counts"]
        assert counts["dropped"] > 0
        assert counts["offered"] + counts["dropped"] == 12
        eventually(lambda: state(http, primary)["counts"]["queued"] == 0, 30, "queue drained")
        assert metric(http.get(f"{primary}/metrics").text,
                      'modelrelease_shadow_copies_total{outcome="dropped"}') == counts["dropped"]


def test_a_dead_canary_costs_users_nothing(serve: Serve) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    primary, _, _ = serve("same", target=dead)
    with httpx.Client(timeout=30) as http:
        shadow_on(http, primary)
        answers = [http.post(f"{primary}/invocations", json=body(i)) for i in range(6)]
        assert [a.status_code for a in answers] == [200] * 6
        eventually(lambda: state(http, primary)["counts"].get("failed") == 6, 30,
                   "6 copies failed")
        records = state(http, primary)["records"]
        assert all(r["canary"]["status"] is None and r["canary"]["error"].startswith("ConnectError")
                   for r in records), records
        assert all(r["agree"] is None for r in records)


def test_a_setting_ends_by_itself(serve: Serve) -> None:
    now = [1000.0]
    primary, _, _ = serve("same", clock=lambda: now[0])
    with httpx.Client(timeout=30) as http:
        assert shadow_on(http, primary, seconds=30)["setting"]["seconds_left"] == 30
        http.post(f"{primary}/invocations", json=body(0))
        now[0] += 30  # the pipeline that asked is gone: the pod stops by itself
        assert state(http, primary)["setting"] is None
        http.post(f"{primary}/invocations", json=body(1))
        eventually(lambda: state(http, primary)["counts"].get("answered") == 1, 30,
                   "one copy answered")
        time.sleep(0.3)
        assert state(http, primary)["counts"]["offered"] == 1


@pytest.mark.parametrize(
    ("token", "method", "payload", "status", "says"),
    [
        pytest.param(None, "GET", None, 401, f"send {TOKEN_HEADER}", id="no-token"),
        pytest.param("wrong", "PUT", {"percent": 5, "seconds": 5}, 401, TOKEN_HEADER,
                     id="wrong-token"),
        pytest.param(TOKEN, "PUT", {"percent": 500, "seconds": 5}, 400,
                     "percent must be a whole number from 1 to 100, got 500", id="bad-percent"),
        pytest.param(TOKEN, "PUT", "not json", 400, "set shadow: the body is not JSON",
                     id="not-json"),
        pytest.param(TOKEN, "POST", {}, 405, "POST is not allowed (GET, PUT, DELETE)",
                     id="bad-method"),
    ],
)
def test_the_control_refuses_what_it_cannot_do(serve: Serve, token: str | None, method: str,
                                               payload: Any, status: int, says: str) -> None:
    primary, _, app = serve("same")
    headers = {TOKEN_HEADER: token} if token else {}
    content = payload if isinstance(payload, str) else json.dumps(payload)
    with httpx.Client(timeout=30) as http:
        answer = http.request(method, f"{primary}{CONTROL_PATH}", headers=headers,
                              content=None if payload is None else content)
        assert answer.status_code == status, answer.text
        assert says in answer.json()["error"]
        assert app.setting is None  # nothing half-changed


def test_a_pod_without_token_or_target_refuses_the_control(serve: Serve) -> None:
    primary, _, _ = serve("same", token=None)
    with httpx.Client(timeout=30) as http:
        answer = http.put(f"{primary}{CONTROL_PATH}", headers=AUTH,
                          json={"percent": 100, "seconds": 5})
        assert answer.status_code == 404
        assert f"started without {TOKEN_ENV}" in answer.json()["error"]
    inner = MetricsMiddleware(_ok_app, {})
    app = ShadowMiddleware(inner, {TOKEN_ENV: TOKEN})
    status, said = asyncio.run(app.control("PUT", TOKEN, PUT_BODY, {}))
    assert (status, app.setting) == (409, None)
    assert f"this pod has no {TARGET_ENV}" in said["error"]
    app = ShadowMiddleware(inner, {TOKEN_ENV: TOKEN, TARGET_ENV: "https://canary:8443"})
    status, said = asyncio.run(app.control("PUT", TOKEN, PUT_BODY, {}))
    assert (status, app.setting) == (409, None)
    assert "copies go to the canary Service over plain http://HOST[:PORT]" in said["error"]


async def _ok_app(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("not called")


def test_a_copy_crosses_to_the_sender_as_it_was() -> None:
    from modelrelease.serving.mirror import Copy
    from modelrelease.serving.shadow_sender import decode_copy, encode_copy

    copy = Copy("req-7", b'{"x": [1]}', (("content-type", "application/json"),
                                         ("x-tenant", "é")), 200, b'{"predictions": [2]}',
                True, 4.25)
    assert decode_copy(encode_copy(copy)) == copy
    empty = Copy("r", b"", (), 500, b"", False, 0.0)
    assert decode_copy(encode_copy(empty)) == empty
