"""The MLflow -> Prefect bridge: an ASGI receiver for MLflow webhooks, and their registration.

``POST /webhook`` answers, in this order of checks:

====  ==========================================================================
413   body larger than ``max_body_bytes`` (by ``Content-Length`` or as it streams)
401   missing header, bad format, bad signature, stale or future timestamp (logged
      at WARNING without the secret or the signature; no event)
200   ``duplicate``: a delivery id already handled (no event)
503   the replay guard is full (fail closed; MLflow retries 5xx)
400   the body is not an MLflow webhook body
200   ``ignored`` (tag events, alias deletions, ...) or ``no_endpoint``
500   the endpoints directory cannot be read (MLflow retries)
502   Prefect refused or could not be reached (MLflow retries; the id is forgotten)
202   ``accepted``: one ``modelrelease.release.requested`` event per endpoint
====  ==========================================================================

``GET /healthz`` answers 200. Endpoint files are read on every delivery, so an edited or
added endpoint counts without a restart.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from pydantic import SecretStr

from modelrelease.adapters.mlflow_registry import MlflowRegistry
from modelrelease.domain.triggers import ReleaseTrigger
from modelrelease.domain.webhook import (
    DELIVERY_ID_HEADER,
    RELEASING,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Admission,
    Rejected,
    ReplayGuard,
    endpoints_following,
    ignored_reason,
    parse,
    verify,
)
from modelrelease.errors import InvalidInput, MlflowError, PrefectError
from modelrelease.settings import MlflowConfig, WebhookConfig
from modelrelease.spec import load_endpoints

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

WEBHOOK_PATH = "/webhook"
HEALTH_PATH = "/healthz"
DEFAULT_NAME = "modelrelease"
"""The MLflow webhook ``modelrelease webhook register`` creates or updates."""


class ReleaseRequester(Protocol):
    """Where release requests go: :class:`~modelrelease.adapters.prefect_events.PrefectEvents`."""

    def request_releases(self, triggers: Sequence[ReleaseTrigger]) -> None:
        """Emit one event per trigger; raise ``PrefectError`` if that failed."""
        ...


def _utcnow() -> datetime:
    return datetime.now(UTC)


class _TooLarge(Exception):
    pass


class WebhookReceiver:
    """The ASGI app behind ``modelrelease webhook serve``.

    Args:
        config: The webhook settings; ``secret`` must be set.
        endpoints_dir: The folder of ModelEndpoint files (``release.endpoints_dir``).
        releases: Where release requests go (a ``PrefectEvents``).
        clock: The current time (tests pass their own).

    Raises:
        InvalidInput: No secret is configured.
    """

    def __init__(self, config: WebhookConfig, endpoints_dir: Path, releases: ReleaseRequester,
                 *, clock: Callable[[], datetime] = _utcnow) -> None:
        if config.secret is None or not config.secret.get_secret_value():
            raise InvalidInput("serve webhook: no secret: set MODELRELEASE_WEBHOOK__SECRET "
                               "(the same one `modelrelease webhook register` gives MLflow)")
        self._secret: SecretStr = config.secret
        self.config = config
        self.endpoints_dir = endpoints_dir
        self.releases = releases
        self.clock = clock
        tolerance = _tolerance(config)
        self.guard = ReplayGuard(ttl=2 * tolerance, capacity=config.replay_capacity)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection (``http`` or ``lifespan``)."""
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if path == HEALTH_PATH:
            if method in ("GET", "HEAD"):
                await _respond(send, 200, {"status": "ok"})
            else:
                await _respond(send, 405, {"error": "method_not_allowed"},
                               [(b"allow", b"GET, HEAD")])
        elif path == WEBHOOK_PATH:
            if method == "POST":
                await self._webhook(scope, receive, send)
            else:
                await _respond(send, 405, {"error": "method_not_allowed"}, [(b"allow", b"POST")])
        else:
            await _respond(send, 404, {"error": "not_found", "detail": f"POST {WEBHOOK_PATH}"})

    async def _webhook(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = _client(scope)
        headers = _headers(scope)
        limit = self.config.max_body_bytes
        try:
            body = await _read_body(headers.get("content-length"), receive, limit)
        except _TooLarge:
            log.warning("webhook refused from %s: body larger than %d bytes", client, limit)
            await _respond(send, 413, {"error": "too_large",
                                       "detail": f"body larger than {limit} bytes"})
            return
        verified = verify(self._secret.get_secret_value(),
                          headers.get(DELIVERY_ID_HEADER.lower()),
                          headers.get(TIMESTAMP_HEADER.lower()), body,
                          headers.get(SIGNATURE_HEADER.lower()), self.clock(),
                          _tolerance(self.config))
        if isinstance(verified, Rejected):
            log.warning("webhook refused from %s: %s: %s", client, verified.kind.value,
                        verified.reason)
            await _respond(send, 401, {"error": verified.kind.value, "detail": verified.reason})
            return
        delivery = verified.delivery_id
        admission = self.guard.admit(delivery, self.clock())
        if admission is Admission.DUPLICATE:
            log.info("webhook delivery %s: duplicate, dropped", delivery)
            await _respond(send, 200, {"status": "duplicate", "delivery_id": delivery,
                                       "triggered": []})
            return
        if admission is Admission.FULL:
            log.warning("webhook delivery %s: replay guard full (%d ids), refused for now",
                        delivery, len(self.guard))
            await _respond(send, 503, {"error": "busy", "detail": "too many recent deliveries"},
                           [(b"retry-after", b"5")])
            return
        try:
            await self._handle(delivery, body, send)
        except BaseException:
            self.guard.forget(delivery)  # let MLflow's retry of this delivery through
            raise

    async def _handle(self, delivery: str, body: bytes, send: Send) -> None:
        started = time.monotonic()
        change = parse(body)
        if isinstance(change, Rejected):
            log.warning("webhook delivery %s: %s: %s", delivery, change.kind.value, change.reason)
            await _respond(send, 400, {"error": change.kind.value, "detail": change.reason,
                                       "delivery_id": delivery})
            return
        answer: dict[str, Any] = {"delivery_id": delivery, "event": change.event,
                                  "model": change.name, "version": change.version,
                                  "alias": change.alias, "triggered": []}
        ignored = ignored_reason(change)
        if ignored is not None:
            log.info("webhook delivery %s: %s: %s", delivery, change.describe(), ignored)
            await _respond(send, 200, {"status": "ignored", "reason": ignored, **answer})
            return
        try:
            endpoints = await asyncio.to_thread(load_endpoints, self.endpoints_dir)
        except InvalidInput as exc:
            self.guard.forget(delivery)
            log.error("webhook delivery %s: %s: %s", delivery, change.describe(), exc.message)
            await _respond(send, 500, {"error": "endpoints", "detail": exc.message, **answer})
            return
        triggers = endpoints_following(change, endpoints)
        if not triggers:
            reason = f"no endpoint in {self.endpoints_dir} follows {change.describe()}"
            log.info("webhook delivery %s: %s", delivery, reason)
            await _respond(send, 200, {"status": "no_endpoint", "reason": reason, **answer})
            return
        try:
            await asyncio.to_thread(self.releases.request_releases, triggers)
        except PrefectError as exc:
            self.guard.forget(delivery)
            log.error("webhook delivery %s: %s: %s", delivery, change.describe(), exc.message)
            await _respond(send, 502, {"error": "prefect", "detail": exc.message, **answer})
            return
        answer["triggered"] = [{"endpoint": t.endpoint, "namespace": t.namespace,
                                "version": t.version, "event_id": str(t.event_id)}
                               for t in triggers]
        log.info("webhook delivery %s: %s -> release requested for %s (%.0f ms)", delivery,
                 change.describe(),
                 ", ".join(f"{t.namespace}/{t.endpoint} v{t.version}" for t in triggers),
                 (time.monotonic() - started) * 1000)
        await _respond(send, 202, {"status": "accepted", **answer})


def _tolerance(config: WebhookConfig) -> timedelta:
    return timedelta(seconds=config.tolerance_s)


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "unknown client"


def _headers(scope: Scope) -> dict[str, str]:
    """Request headers by lower-case name; the first of repeated headers wins."""
    found: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", ()):
        found.setdefault(raw_name.decode("latin-1").lower(), raw_value.decode("latin-1"))
    return found


async def _read_body(content_length: str | None, receive: Receive, limit: int) -> bytes:
    """The whole body, refusing (``_TooLarge``) as soon as it passes ``limit`` bytes."""
    declared = (content_length or "").strip()
    if declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _respond(send: Send, status: int, document: dict[str, Any],
                   headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps(document, separators=(",", ":")).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


# --- registration in MLflow -------------------------------------------------------------------


def register_webhook(config: MlflowConfig, url: str, secret: SecretStr, *,
                     name: str = DEFAULT_NAME,
                     events: Sequence[str] = tuple(sorted(RELEASING))) -> tuple[str, str]:
    """Create the MLflow webhook ``name`` for ``events``, or update it to these values.

    Args:
        config: Where MLflow is (its tracking URI must be an http(s) server).
        url: The receiver's URL as MLflow reaches it (``.../webhook``).
        secret: The shared secret MLflow signs deliveries with.
        name: The webhook's name in MLflow: the key that makes this idempotent.
        events: MLflow event names, default the ones that start releases.

    MLflow never returns a webhook's secret, so an existing webhook is always updated
    (URL, events, secret, ACTIVE); running this twice leaves one webhook.

    Returns:
        The webhook's id and ``created`` or ``updated``.

    Raises:
        MlflowError: MLflow refused (e.g. a URL scheme it does not allow) or is unreachable.
    """
    what = f"register webhook {name} -> {url}"
    _check_server(config.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or "", what)
    from mlflow.exceptions import MlflowException  # a 3 s import: after the 5 s check
    value = secret.get_secret_value()
    wanted: Any = [str(event) for event in events]  # MLflow validates the names
    try:
        client = MlflowRegistry(config)._client
        existing = None
        token: str | None = None
        while existing is None:
            page = client.list_webhooks(max_results=100, page_token=token)
            existing = next((hook for hook in page if hook.name == name), None)
            token = page.token
            if not token:
                break
        description = "modelrelease: MLflow registry changes -> Prefect release events"
        if existing is None:
            hook = client.create_webhook(name=name, url=url, events=wanted,
                                         description=description, secret=value,
                                         status="ACTIVE")
            return str(hook.webhook_id), "created"
        hook = client.update_webhook(existing.webhook_id, url=url,
                                     events=wanted,
                                     description=description, secret=value, status="ACTIVE")
        return str(hook.webhook_id), "updated"
    except MlflowException as exc:
        # from None: the vendor exception stays out of tracebacks, the secret with it
        message = str(exc.message).replace(value, "***")
        raise MlflowError(f"{what}: {message}", retriable=False) from None
    except OSError as exc:
        raise MlflowError(f"{what}: MLflow unreachable: {exc}", retriable=True) from None


def _check_server(tracking_uri: str, what: str) -> None:
    """Fail fast (5 s) and plainly when MLflow is no server or does not answer."""
    import httpx

    try:
        parsed = httpx.URL(tracking_uri)
    except httpx.InvalidURL:
        parsed = httpx.URL("file:")
    if parsed.scheme not in ("http", "https"):
        raise MlflowError(f"{what}: webhooks need an MLflow tracking server, not "
                          f"{parsed.scheme or 'a local'} store: set MLFLOW_TRACKING_URI or "
                          "MODELRELEASE_MLFLOW__TRACKING_URI to http(s)://HOST:PORT")
    shown = str(parsed.copy_with(username=None, password=None, query=None))
    try:
        response = httpx.get(f"{tracking_uri.rstrip('/')}/health", timeout=5.0)
    except httpx.HTTPError as exc:
        raise MlflowError(f"{what}: MLflow unreachable at {shown}: {exc}",
                          retriable=True) from None
    if response.status_code >= 500:
        raise MlflowError(f"{what}: MLflow at {shown} answers HTTP {response.status_code}",
                          retriable=True)
