"""Fault injection for the serving entrypoint, as ASGI middleware. Off unless set.

A rollback drill sets ``MODELRELEASE_FAULT`` (see :mod:`modelrelease.domain.fault`) on its
canary only: ``latency:S`` sleeps S seconds before answering ``/invocations``,
``errors:P`` answers 500 to that share of ``/invocations`` requests, and ``crash`` exits
at startup (:func:`with_fault` raises ``SystemExit`` before the model is loaded).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping

from modelrelease.domain.fault import ENV, FaultSetting, parse_fault
from modelrelease.errors import InvalidInput
from modelrelease.serving.metrics import ASGIApp, Receive, Scope, Send
from modelrelease.spec import Fault

INJECTED_BODY = b'{"error_code": "INJECTED_FAULT", "message": "injected fault (drill)"}'


class FaultMiddleware:
    """Applies a latency or error fault to the wrapped app's ``/invocations`` requests.

    Args:
        app: The ASGI app (MLflow's scoring server).
        fault: The fault (latency or errors; a crash never gets this far).
        chance: Draws a number in [0, 1) per request (tests pass a fixed one).
    """

    def __init__(self, app: ASGIApp, fault: FaultSetting,
                 chance: Callable[[], float] = random.random) -> None:
        self.app = app
        self.fault = fault
        self.chance = chance

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Delay or fail ``/invocations``; pass everything else through untouched."""
        if scope["type"] != "http" or scope.get("path") != "/invocations":
            await self.app(scope, receive, send)
            return
        if self.fault.kind is Fault.LATENCY:
            await asyncio.sleep(self.fault.amount)
        elif self.chance() < self.fault.amount:
            await send({"type": "http.response.start", "status": 500,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": INJECTED_BODY})
            return
        await self.app(scope, receive, send)


def fault_from_env(env: Mapping[str, str]) -> FaultSetting | None:
    """The fault ``env`` asks for, or None (the default: no fault).

    Raises:
        SystemExit: The value is malformed (the pod fails at once, with the reason), or it
            asks for a crash.
    """
    try:
        fault = parse_fault(env.get(ENV))
    except InvalidInput as exc:
        raise SystemExit(exc.message) from None
    if fault is not None and fault.kind is Fault.CRASH:
        raise SystemExit(f"injected fault ({ENV}=crash): exiting at startup")
    return fault


def with_fault(app: ASGIApp, fault: FaultSetting | None) -> ASGIApp:
    """``app`` behind :class:`FaultMiddleware` when there is a fault, else ``app`` itself."""
    return app if fault is None else FaultMiddleware(app, fault)
