"""Prometheus metrics of a serving pod, as ASGI middleware around MLflow's scoring app.

- ``modelrelease_requests_total{path,status}`` and ``modelrelease_request_seconds{path}``
  (histogram): every request, by path and HTTP status;
- ``modelrelease_requests_in_flight``;
- ``modelrelease_model_info{model,version,image_digest}`` = 1: what this pod serves;
- ``modelrelease_predictions_total{value}``: class counts of ``/invocations`` answers
  whose predictions are labels (ints, strings, bools), and
  ``modelrelease_prediction_value`` (histogram) for numeric scores, for drift checks.

``/metrics`` is answered by the middleware itself, in the Prometheus text format.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

KNOWN_PATHS = ("/invocations", "/ping", "/health", "/version", "/metrics")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
MAX_CLASSES = 50


def _flatten(value: Any) -> list[Any]:
    if isinstance(value, list):
        return [leaf for item in value for leaf in _flatten(item)]
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _flatten(item)]
    return [value]


class MetricsMiddleware:
    """Counts, times and summarises the wrapped scoring app's requests.

    Args:
        app: The ASGI app (MLflow's scoring server).
        env: Where to read the model's identity (``MODELRELEASE_MODEL_NAME``,
            ``MODELRELEASE_MODEL_VERSION``, ``MODELRELEASE_IMAGE_DIGEST``).
    """

    def __init__(self, app: ASGIApp, env: Mapping[str, str]) -> None:
        self.app = app
        self.registry = CollectorRegistry()
        self.requests = Counter("modelrelease_requests", "Requests served.",
                                ["path", "status"], registry=self.registry)
        self.latency = Histogram("modelrelease_request_seconds", "Request latency.", ["path"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.in_flight = Gauge("modelrelease_requests_in_flight", "Requests in progress.",
                               registry=self.registry)
        self.predictions = Counter("modelrelease_predictions", "Predicted labels.", ["value"],
                                   registry=self.registry)
        self.values = Histogram("modelrelease_prediction_value", "Predicted numeric values.",
                                registry=self.registry)
        info = Gauge("modelrelease_model_info", "The model this pod serves.",
                     ["model", "version", "image_digest"], registry=self.registry)
        info.labels(env.get("MODELRELEASE_MODEL_NAME", ""),
                    env.get("MODELRELEASE_MODEL_VERSION", ""),
                    env.get("MODELRELEASE_IMAGE_DIGEST", "")).set(1)
        self._classes: set[str] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve ``/metrics``; count and time everything else."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        if path == "/metrics":
            body = generate_latest(self.registry)
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", CONTENT_TYPE_LATEST.encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        label = path if path in KNOWN_PATHS else "other"
        status = 500
        chunks: list[bytes] = []

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body" and label == "/invocations":
                chunks.append(bytes(message.get("body", b"")))
            await send(message)

        start = time.perf_counter()
        self.in_flight.inc()
        try:
            await self.app(scope, receive, recording_send)
        finally:
            self.in_flight.dec()
            self.latency.labels(label).observe(time.perf_counter() - start)
            self.requests.labels(label, str(status)).inc()
        if label == "/invocations" and status == 200:
            self._summarise(b"".join(chunks))

    def _summarise(self, body: bytes) -> None:
        try:
            predictions = json.loads(body).get("predictions")
        except (ValueError, AttributeError):
            return
        for value in _flatten(predictions):
            if isinstance(value, float):
                self.values.observe(value)
            elif isinstance(value, bool | int | str):
                key = str(value)
                if key in self._classes or len(self._classes) < MAX_CLASSES:
                    self._classes.add(key)
                    self.predictions.labels(key).inc()
