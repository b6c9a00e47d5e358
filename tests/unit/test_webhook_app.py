"""The webhook receiver (adapters.webhook) as an ASGI app, and its settings.

Requests go through ``httpx.ASGITransport`` (or raw ASGI messages where the transport
cannot express them: a streamed body without Content-Length, lifespan). Release requests go
to ``Recorder``, an in-memory implementation of the ``ReleaseRequester`` protocol; the real
Prefect path is the integration test's. Only the 502 test fakes Prefect at the transport
seam (``httpx.MockTransport`` answering 503), because a real server will not fail on cue.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from modelrelease.adapters.prefect_events import PrefectEvents
from modelrelease.adapters.webhook import WebhookReceiver
from modelrelease.domain.triggers import ReleaseTrigger
from modelrelease.errors import InvalidInput
from modelrelease.settings import PipelineSettings, WebhookConfig
from modelrelease.spec import endpoint_yaml
from tests.unit.test_webhook import NOW, SECRET, body, make_endpoint, signed


class Recorder:
    """A ReleaseRequester that keeps what it was asked to release."""

    def __init__(self) -> None:
        self.calls: list[list[ReleaseTrigger]] = []

    def request_releases(self, triggers: Sequence[ReleaseTrigger]) -> None:
        self.calls.append(list(triggers))


@pytest.fixture
def endpoints_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "endpoints"
    folder.mkdir()
    for endpoint in (make_endpoint("iris"), make_endpoint("iris-pinned", name="iris-clf",
                                                          version=3)):
        (folder / f"{endpoint.name}.yaml").write_text(endpoint_yaml(endpoint))
    return folder


def _config(**overrides: Any) -> WebhookConfig:
    return WebhookConfig.model_validate({"secret": SECRET, **overrides})


def _app(folder: Path, releases: Any = None, *, now: datetime = NOW,
         **config: Any) -> WebhookReceiver:
    return WebhookReceiver(_config(**config), folder, releases or Recorder(), clock=lambda: now)


def _post(app: WebhookReceiver, payload: bytes, headers: dict[str, str],
          path: str = "/webhook", method: str = "POST") -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
            return await client.request(method, path, content=payload, headers=headers)
    return asyncio.run(go())


def test_alias_delivery_requests_one_release(endpoints_dir: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder()
    app = _app(endpoints_dir, recorder)
    payload = body()
    with caplog.at_level(logging.INFO, "modelrelease.adapters.webhook"):
        response = _post(app, payload, signed(payload))
    assert response.status_code == 202
    answer = response.json()
    assert answer["status"] == "accepted"
    [[trigger]] = recorder.calls
    assert (trigger.endpoint, trigger.namespace, trigger.version) == ("iris", "ml", "4")
    assert answer["triggered"] == [{"endpoint": "iris", "namespace": "ml", "version": "4",
                                    "event_id": str(trigger.event_id)}]
    assert "model_version_alias.created iris-clf v4 @champion -> release requested for " \
           "ml/iris v4" in caplog.text


def test_version_created_releases_the_pinned_endpoint(endpoints_dir: Path) -> None:
    recorder = Recorder()
    payload = body("model_version.created", name="iris-clf", version="3", source="models:/x",
                   run_id=None, tags={}, description=None)
    response = _post(_app(endpoints_dir, recorder), payload, signed(payload))
    assert response.status_code == 202
    assert [t.endpoint for t in recorder.calls[0]] == ["iris-pinned"]


def test_a_replayed_delivery_is_dropped(endpoints_dir: Path) -> None:
    recorder = Recorder()
    app = _app(endpoints_dir, recorder)
    payload = body()
    first = _post(app, payload, signed(payload))
    again = _post(app, payload, signed(payload))
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json() == {"status": "duplicate", "delivery_id": signed(payload)[
        "X-MLflow-Delivery-Id"], "triggered": []}
    assert len(recorder.calls) == 1


@pytest.mark.parametrize(("headers", "error"), [
    pytest.param({"X-MLflow-Signature": signed(body(), secret="wrong")["X-MLflow-Signature"]},
                 "bad_signature", id="bad-signature"),
    pytest.param({"X-MLflow-Signature": ""}, "missing_header", id="no-signature"),
    pytest.param({"X-MLflow-Timestamp": str(int(NOW.timestamp()) - 301)}, "bad_signature",
                 id="timestamp-altered"),
])
def test_unauthenticated_deliveries_are_401_and_logged_without_secrets(
        endpoints_dir: Path, caplog: pytest.LogCaptureFixture, headers: dict[str, str],
        error: str) -> None:
    recorder = Recorder()
    payload = body()
    sent = {**signed(payload), **headers}
    with caplog.at_level(logging.INFO, "modelrelease.adapters.webhook"):
        response = _post(_app(endpoints_dir, recorder), payload, sent)
    assert response.status_code == 401
    assert response.json()["error"] == error
    assert recorder.calls == []
    assert f"webhook refused from 127.0.0.1:50000: {error}" in caplog.text
    for secret in (SECRET, sent["X-MLflow-Signature"]):
        assert not secret or (secret not in caplog.text and secret not in response.text)


@pytest.mark.parametrize(("offset", "error"), [
    pytest.param(timedelta(seconds=301), "stale_timestamp", id="stale"),
    pytest.param(timedelta(seconds=-301), "future_timestamp", id="future"),
])
def test_timestamps_outside_the_tolerance_are_401(endpoints_dir: Path, offset: timedelta,
                                                  error: str) -> None:
    payload = body()
    response = _post(_app(endpoints_dir, now=NOW + offset), payload, signed(payload))
    assert (response.status_code, response.json()["error"]) == (401, error)


def test_oversized_bodies_are_413_before_verifying(endpoints_dir: Path) -> None:
    payload = b"x" * 2048
    response = _post(_app(endpoints_dir, max_body_bytes=1024), payload, signed(payload))
    assert response.status_code == 413
    assert response.json() == {"error": "too_large", "detail": "body larger than 1024 bytes"}


def test_a_streamed_body_is_cut_off_at_the_limit(endpoints_dir: Path) -> None:
    app = _app(endpoints_dir, max_body_bytes=1024)
    chunks = [{"type": "http.request", "body": b"x" * 600, "more_body": True}] * 5
    received: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return chunks.pop(0)

    async def send(message: Any) -> None:
        received.append(message)

    scope = {"type": "http", "path": "/webhook", "method": "POST", "headers": []}
    asyncio.run(app(scope, receive, send))
    assert received[0]["status"] == 413
    assert len(chunks) == 3  # stopped reading after the second chunk


def test_a_disconnect_mid_body_is_treated_as_the_end(endpoints_dir: Path) -> None:
    messages = [{"type": "http.request", "body": b"{", "more_body": True},
                {"type": "http.disconnect"}]
    received: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: Any) -> None:
        received.append(message)

    scope = {"type": "http", "path": "/webhook", "method": "POST",
             "headers": [(k.lower().encode(), v.encode()) for k, v in signed(b"{").items()]}
    asyncio.run(_app(endpoints_dir)(scope, receive, send))
    assert received[0]["status"] == 400


@pytest.mark.parametrize(("payload", "status", "answer"), [
    pytest.param(b"not json", 400, {"error": "malformed_body", "detail": "body is not JSON"},
                 id="malformed"),
    pytest.param(body("model_version_tag.set", name="iris-clf", version="4", key="k",
                      value="v"), 200, {"status": "ignored"}, id="tag-event-ignored"),
    pytest.param(body(name="wine", alias="champion", version="1"), 200,
                 {"status": "no_endpoint"}, id="nobody-follows"),
])
def test_deliveries_that_release_nothing(endpoints_dir: Path, payload: bytes, status: int,
                                         answer: dict[str, str]) -> None:
    recorder = Recorder()
    response = _post(_app(endpoints_dir, recorder), payload, signed(payload))
    assert response.status_code == status
    assert answer.items() <= response.json().items()
    assert recorder.calls == []


def test_prefect_refusing_is_502_and_the_retry_goes_through(endpoints_dir: Path) -> None:
    # Fake Prefect at the transport seam: the one place it must fail on cue (503 once).
    answers = [503, 204]
    posted: list[Any] = []

    def prefect(request: httpx.Request) -> httpx.Response:
        posted.append(json.loads(request.content))
        return httpx.Response(answers.pop(0), text="unavailable")

    events = PrefectEvents("http://prefect.invalid/api", transport=httpx.MockTransport(prefect))
    app = _app(endpoints_dir, events)
    payload = body()
    failed = _post(app, payload, signed(payload))
    retried = _post(app, payload, signed(payload))  # MLflow resends the same delivery
    assert failed.status_code == 502
    assert "post events to http://prefect.invalid/api: HTTP 503" in failed.json()["detail"]
    assert retried.status_code == 202
    assert [event["event"] for batch in posted for event in batch] == [
        "modelrelease.release.requested"] * 2
    assert posted[0][0]["id"] == posted[1][0]["id"]


def test_an_invalid_endpoints_dir_is_500_and_retriable(endpoints_dir: Path) -> None:
    (endpoints_dir / "broken.yaml").write_text("spec: [")
    app = _app(endpoints_dir)
    payload = body()
    response = _post(app, payload, signed(payload))
    assert response.status_code == 500
    assert "broken.yaml" in response.json()["detail"]
    (endpoints_dir / "broken.yaml").unlink()
    assert _post(app, payload, signed(payload)).status_code == 202  # not taken for a replay


def test_a_full_replay_guard_refuses_for_now(endpoints_dir: Path) -> None:
    app = _app(endpoints_dir, replay_capacity=1)
    first, second = body(), body(name="iris-clf", alias="champion", version="5")
    assert _post(app, first, signed(first, delivery="one")).status_code == 202
    response = _post(app, second, signed(second, delivery="two"))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"


def test_an_unexpected_error_forgets_the_delivery(endpoints_dir: Path) -> None:
    class Broken:
        def request_releases(self, triggers: Sequence[ReleaseTrigger]) -> None:
            raise RuntimeError("boom")

    app = _app(endpoints_dir, Broken())
    payload = body()
    with pytest.raises(RuntimeError, match="boom"):
        _post(app, payload, signed(payload))
    assert len(app.guard) == 0


@pytest.mark.parametrize(("method", "path", "status", "allow"), [
    pytest.param("GET", "/healthz", 200, None, id="health"),
    pytest.param("POST", "/healthz", 405, "GET, HEAD", id="health-post"),
    pytest.param("GET", "/webhook", 405, "POST", id="webhook-get"),
    pytest.param("POST", "/elsewhere", 404, None, id="unknown-path"),
])
def test_routes(endpoints_dir: Path, method: str, path: str, status: int,
                allow: str | None) -> None:
    response = _post(_app(endpoints_dir), b"", {}, path=path, method=method)
    assert response.status_code == status
    assert response.headers.get("allow") == allow


def test_lifespan_and_other_scopes(endpoints_dir: Path) -> None:
    app = _app(endpoints_dir)
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[str] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: Any) -> None:
        sent.append(message["type"])

    asyncio.run(app({"type": "lifespan"}, receive, send))
    asyncio.run(app({"type": "websocket"}, receive, send))
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


@pytest.mark.parametrize("secret", [None, ""], ids=["unset", "empty"])
def test_no_secret_no_receiver(tmp_path: Path, secret: str | None) -> None:
    with pytest.raises(InvalidInput, match="MODELRELEASE_WEBHOOK__SECRET"):
        WebhookReceiver(WebhookConfig(secret=None if secret is None else SecretStr(secret)),
                        tmp_path, Recorder())


# --- settings -------------------------------------------------------------------------------


def test_webhook_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MODELRELEASE_WEBHOOK__SECRET", SECRET)
    monkeypatch.setenv("MODELRELEASE_WEBHOOK__PORT", "9000")
    monkeypatch.setenv("MODELRELEASE_WEBHOOK__TOLERANCE_S", "60")
    settings = PipelineSettings()
    assert settings.webhook.secret is not None
    assert settings.webhook.secret.get_secret_value() == SECRET
    assert (settings.webhook.port, settings.webhook.tolerance_s) == (9000, 60)
    assert (settings.webhook.host, settings.webhook.max_body_bytes) == ("127.0.0.1", 1 << 20)
    assert SECRET not in repr(settings) and SECRET not in str(settings.model_dump())


def test_webhook_defaults() -> None:
    config = WebhookConfig()
    assert (config.secret, config.tolerance_s, config.port) == (None, 300, 8765)
