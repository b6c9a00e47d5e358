"""Shadow copies on a primary pod, as ASGI middleware (``modelrelease.domain.shadow``).

:class:`ShadowMiddleware` answers ``/modelrelease/shadow`` (the control) and, while a
setting holds, hands a copy of each chosen live ``/invocations`` request to the shadow
sender once the user's answer has been sent: a child process (``serving.shadow_sender``)
that sends the copies (``serving.mirror``) a bounded number at a time, queues a bounded
number more, drops (and counts) the rest, and records both answers. Handing a copy over
is one write to a Unix socket, never waited for. A slow or dead canary therefore loses
copies, never the user's time.

On a canary, a copy (``X-Modelrelease-Shadow``) is served with ``X-Modelrelease-Served-Ms``:
how long it took to start answering, as the primary times its own answer.

The pod's ``/metrics`` gains ``modelrelease_shadow_copies_total{outcome}`` (answered,
failed, dropped), ``modelrelease_shadow_agreement_total{agree}`` and
``modelrelease_shadow_queue`` (copies waiting).
"""

from __future__ import annotations

import hmac
import json
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import parse_qsl

from prometheus_client import CollectorRegistry

from modelrelease.domain.live import GENERATED_HEADER
from modelrelease.domain.shadow import (
    CONTROL_PATH,
    REQUEST_ID_HEADER,
    SERVED_HEADER,
    SHADOW_HEADER,
    TARGET_ENV,
    TOKEN_ENV,
    TOKEN_HEADER,
    ShadowSetting,
    copies,
    parse_setting,
)
from modelrelease.errors import InvalidInput
from modelrelease.serving.metrics import ASGIApp, Message, Receive, Scope, Send
from modelrelease.serving.mirror import Copy
from modelrelease.serving.shadow_sender import SenderProcess

MAX_BODY: Final = 1 << 20
"""A request or answer larger than this is not copied (counted as dropped)."""
_SKIP: Final = frozenset({b"host", b"content-length", b"connection", b"transfer-encoding",
                          b"keep-alive", b"upgrade", b"te", b"trailer",
                          GENERATED_HEADER.lower().encode(), SHADOW_HEADER.lower().encode()})
_SHADOW: Final = SHADOW_HEADER.lower().encode()
_SERVED: Final = SERVED_HEADER.lower().encode()
_TOKEN: Final = TOKEN_HEADER.lower().encode()
_UNMARKED: Final = frozenset({GENERATED_HEADER.lower().encode(), _SHADOW})
NONE_AFTER: Final = 1 << 62
"""A record number above any: asking for the records after it asks for none."""


class ShadowMiddleware:
    """Copies live ``/invocations`` requests to the canary while a setting holds.

    Args:
        app: The ASGI app to serve (the metrics middleware around MLflow's scoring app).
        env: ``MODELRELEASE_SHADOW_TARGET`` and ``MODELRELEASE_SHADOW_TOKEN`` (module doc).
        registry: Where the sender's counts are exported.
        clock: Wall-clock seconds (settings end by it).
        mirror: Makes the sender for a target (tests pass one with a bounded queue).
    """

    def __init__(self, app: ASGIApp, env: Mapping[str, str],
                 registry: CollectorRegistry | None = None,
                 clock: Callable[[], float] = time.time,
                 mirror: Callable[[str, CollectorRegistry | None], SenderProcess] = SenderProcess
                 ) -> None:
        self.app = app
        self.target = env.get(TARGET_ENV) or None
        self.token = env.get(TOKEN_ENV) or None
        self.registry = registry
        self.clock = clock
        self.make_mirror = mirror
        self.mirror: SenderProcess | None = None
        self.setting: ShadowSetting | None = None
        self.seen = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer the control, copy what the setting asks for, serve everything."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path")
        if path == CONTROL_PATH:
            await self._control(scope, receive, send)
            return
        marks = {bytes(k).lower() for k, _ in scope.get("headers") or ()} & _UNMARKED
        if path == "/invocations" and marks == {_SHADOW}:  # a copy, on the canary
            await self._serve_timed(scope, receive, send)
            return
        setting = self.setting
        if (path != "/invocations" or scope.get("method") != "POST" or setting is None
                or self.mirror is None or not setting.active(self.clock()) or marks):
            await self.app(scope, receive, send)
            return
        seen, self.seen = self.seen, self.seen + 1
        if not copies(seen, setting.percent):
            await self.app(scope, receive, send)
            return
        await self._serve_and_copy(scope, receive, send, self.mirror, setting)

    async def _serve_timed(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve a copy, saying in ``SERVED_HEADER`` how long it took to start answering."""
        started = time.perf_counter()

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                took = f"{(time.perf_counter() - started) * 1000.0:.3f}".encode()
                message = {**message, "headers": [*message.get("headers", ()),
                                                  (_SERVED, took)]}
            await send(message)

        await self.app(scope, receive, timed_send)

    async def _serve_and_copy(self, scope: Scope, receive: Receive, send: Send,
                              mirror: SenderProcess, setting: ShadowSetting) -> None:
        request = bytearray()
        answer = bytearray()
        status = 0
        started = time.perf_counter()
        took_ms = 0.0

        async def keep_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request" and len(request) <= MAX_BODY:
                request.extend(message.get("body", b""))
            return message

        async def keep_send(message: Message) -> None:
            nonlocal status, took_ms
            if message["type"] == "http.response.start":
                status = int(message["status"])
                took_ms = (time.perf_counter() - started) * 1000.0
            elif message["type"] == "http.response.body" and len(answer) <= MAX_BODY:
                answer.extend(message.get("body", b""))
            await send(message)

        await self.app(scope, keep_receive, keep_send)
        # the user has the whole answer now: everything below is off their path
        if len(request) > MAX_BODY or len(answer) > MAX_BODY or not status:
            mirror.drop()
            return
        headers = tuple((bytes(k).decode("latin-1"), bytes(v).decode("latin-1"))
                        for k, v in scope.get("headers") or () if bytes(k).lower() not in _SKIP)
        request_id = next((v for k, v in headers if k.lower() == REQUEST_ID_HEADER.lower()),
                          None) or uuid.uuid4().hex
        headers = tuple((k, v) for k, v in headers if k.lower() != REQUEST_ID_HEADER.lower())
        mirror.offer(Copy(request_id, bytes(request), headers, status, bytes(answer),
                          setting.payloads, took_ms))

    async def _control(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return
            body.extend(message.get("body", b""))
            if not message.get("more_body", False):
                break
        status, answer = await self.control(str(scope.get("method")), _token(scope),
                                            bytes(body), _query(scope))
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": json.dumps(answer).encode()})

    async def control(self, method: str, token: str | None, body: bytes,
                      query: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        """``GET``, ``PUT`` or ``DELETE /modelrelease/shadow``: the status and JSON answer."""
        if self.token is None:
            return 404, {"error": f"shadow control is off in this pod: it was started "
                                  f"without {TOKEN_ENV} (a Deployment from before shadow "
                                  "steps; release it once more)"}
        if token is None or not hmac.compare_digest(token.encode(), self.token.encode()):
            return 401, {"error": f"shadow control: send {TOKEN_HEADER}: <the endpoint's "
                                  f"shadow token> ({TOKEN_ENV} of the pod)"}
        now = self.clock()
        if method == "PUT":
            if self.target is None:
                return 409, {"error": f"set shadow: this pod has no {TARGET_ENV}, so it has "
                                      "nowhere to send copies"}
            try:
                setting = parse_setting(json.loads(body or b"null"), now)
            except (ValueError, InvalidInput) as exc:
                message = str(exc) if isinstance(exc, InvalidInput) else \
                    f"set shadow: the body is not JSON ({exc})"
                return 400, {"error": message}
            if self.mirror is None:
                try:
                    self.mirror = self.make_mirror(self.target, self.registry)
                except InvalidInput as exc:
                    return 409, {"error": f"set shadow: {exc}"}
            await self.mirror.start()
            self.setting, self.seen = setting, 0
        elif method == "DELETE":
            self.setting = None
        elif method != "GET":
            return 405, {"error": f"shadow control: {method} is not allowed (GET, PUT, "
                                  "DELETE)"}
        return 200, await self.state(now, query.get("after") if method == "GET" else None)

    async def state(self, now: float, after: str | None = "0") -> dict[str, Any]:
        """The setting, the counts since the pod started and the records after ``after``.

        ``next``: the last record's number, to ask ``?after=`` from next time. ``after``
        None (the answer to ``PUT`` and ``DELETE``): no records, only that number.
        """
        setting = self.setting if self.setting and self.setting.active(now) else None
        start = int(after) if after is not None and after.isdigit() else 0
        # without ``after``: none of the records, but the number of the last one made now
        ask = start if after is not None else NONE_AFTER
        counts, records = await self.mirror.snapshot(ask) if self.mirror else ({}, [])
        last = self.mirror.last_seq() if self.mirror else 0
        return {"target": self.target, "setting": setting.as_json(now) if setting else None,
                "seen": self.seen if setting else 0, "counts": counts,
                "records": [r.as_json() for r in records] if after is not None else [],
                "next": max(start, last) if after is not None else last}


def _token(scope: Scope) -> str | None:
    for key, value in scope.get("headers") or ():
        if bytes(key).lower() == _TOKEN:
            return bytes(value).decode("latin-1").strip()
    return None


def _query(scope: Scope) -> dict[str, str]:
    return dict(parse_qsl(bytes(scope.get("query_string") or b"").decode("latin-1")))
