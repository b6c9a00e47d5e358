"""Prometheus metrics of a serving pod, as ASGI middleware around MLflow's scoring app.

- ``modelrelease_requests_total{path,status}`` and ``modelrelease_request_seconds{path}``
  (histogram): every request, by path and HTTP status;
- ``modelrelease_requests_in_flight``;
- ``modelrelease_model_info{model,version,image_digest}`` = 1: what this pod serves;
- ``modelrelease_predictions_total{value}``: class counts of ``/invocations`` answers
  whose predictions are labels (ints, strings, bools), and
  ``modelrelease_prediction_value`` (histogram) for numeric scores, for drift checks.
- ``modelrelease_generated_requests_total{path,status}`` and
  ``modelrelease_generated_request_seconds{path}``: the same, for requests carrying the
  ``X-Modelrelease-Load`` header (the release judge's load generator; also counted above),
  so the live share of a step is their difference (``domain.live``);
- ``modelrelease_shadow_requests_total{path,status}`` and
  ``modelrelease_shadow_request_seconds{path}``: requests carrying ``X-Modelrelease-Shadow``,
  the copies of live requests a primary sends its canary during a shadow step
  (``modelrelease.serving.shadow``). They are counted here only: they are neither live
  traffic nor the judge's load, and their answers are not summarised or sliced.
- ``modelrelease_gpu_utilization{gpu}`` (0..1): each GPU the pod sees, read through NVML
  at scrape time; exported only where NVIDIA's NVML library loads.
- with ``MODELRELEASE_SLICE_HEADER`` or ``MODELRELEASE_SLICE_COLUMN`` set (the spec's
  ``canary.checks.slices``): ``modelrelease_slice_key{key}`` = 1, and
  ``modelrelease_slice_requests_total{path,slice,status}`` and
  ``modelrelease_slice_request_seconds{path,slice}`` for ``/invocations``, with their
  ``generated`` twins. The slice is the header's value, or the column's when every row of
  a JSON body (up to 1 MiB) holds the same one; other requests are not sliced. At most
  ``MAX_SLICE_VALUES`` values are counted (the first seen), each cut to 128 characters.

``/metrics`` is answered by the middleware itself, in the Prometheus text format.
"""

from __future__ import annotations

import ctypes
import json
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from modelrelease.domain.live import GENERATED_HEADER, SLICE_COLUMN_ENV, SLICE_HEADER_ENV
from modelrelease.domain.sample_set import column_value
from modelrelease.domain.shadow import SHADOW_HEADER

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

KNOWN_PATHS = ("/invocations", "/ping", "/health", "/version", "/metrics")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
MAX_CLASSES = 50
MAX_SLICE_VALUES = 100
MAX_SLICE_LENGTH = 128
MAX_SLICED_BODY = 1 << 20
GENERATED = GENERATED_HEADER.lower().encode()
SHADOW = SHADOW_HEADER.lower().encode()


class _Utilization(ctypes.Structure):
    _fields_ = [("gpu", ctypes.c_uint), ("memory", ctypes.c_uint)]  # nvmlUtilization_t


class NvmlUtilisation(Collector):
    """``modelrelease_gpu_utilization{gpu}``: NVML's utilisation of each visible GPU, 0..1."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self.lib = lib

    @classmethod
    def load(cls, name: str = "libnvidia-ml.so.1") -> NvmlUtilisation | None:
        """The collector, or None where NVML is missing or does not initialise."""
        try:
            lib = ctypes.CDLL(name)
            if lib.nvmlInit_v2() != 0:
                return None
        except (OSError, AttributeError):
            return None
        return cls(lib)

    def collect(self) -> Any:
        """One gauge per GPU; a GPU NVML cannot read is left out."""
        family = GaugeMetricFamily("modelrelease_gpu_utilization",
                                   "GPU utilisation (0..1), read through NVML.", labels=["gpu"])
        count = ctypes.c_uint()
        if self.lib.nvmlDeviceGetCount_v2(ctypes.byref(count)) == 0:
            for index in range(count.value):
                handle, rates = ctypes.c_void_p(), _Utilization()
                if (self.lib.nvmlDeviceGetHandleByIndex_v2(index, ctypes.byref(handle)) == 0
                        and self.lib.nvmlDeviceGetUtilizationRates(
                            handle, ctypes.byref(rates)) == 0):
                    family.add_metric([str(index)], rates.gpu / 100.0)
        yield family


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
            ``MODELRELEASE_MODEL_VERSION``, ``MODELRELEASE_IMAGE_DIGEST``) and the slice
            key (``MODELRELEASE_SLICE_HEADER`` or ``MODELRELEASE_SLICE_COLUMN``).
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
        self.generated = Counter("modelrelease_generated_requests",
                                 "Requests of the release judge's load generator (also counted "
                                 "in modelrelease_requests).", ["path", "status"],
                                 registry=self.registry)
        self.generated_latency = Histogram(
            "modelrelease_generated_request_seconds", "Latency of the load generator's requests.",
            ["path"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.generated_latency.labels("/invocations")  # exported from the start, at zero
        self.shadow = Counter("modelrelease_shadow_requests",
                              "Copies of live requests a primary sent this pod (not counted "
                              "in modelrelease_requests).", ["path", "status"],
                              registry=self.registry)
        self.shadow_latency = Histogram(
            "modelrelease_shadow_request_seconds", "Latency of the copies of live requests.",
            ["path"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.shadow_latency.labels("/invocations")
        gpus = NvmlUtilisation.load()
        if gpus is not None:
            self.registry.register(gpus)
        info = Gauge("modelrelease_model_info", "The model this pod serves.",
                     ["model", "version", "image_digest"], registry=self.registry)
        info.labels(env.get("MODELRELEASE_MODEL_NAME", ""),
                    env.get("MODELRELEASE_MODEL_VERSION", ""),
                    env.get("MODELRELEASE_IMAGE_DIGEST", "")).set(1)
        self._classes: set[str] = set()
        self.slice_header = (env.get(SLICE_HEADER_ENV) or "").lower().encode() or None
        self.slice_column = env.get(SLICE_COLUMN_ENV) or None
        self._slices: set[str] = set()
        if self.slice_header or self.slice_column:
            key = (f"header {env[SLICE_HEADER_ENV]}" if self.slice_header
                   else f"column {self.slice_column}")
            Gauge("modelrelease_slice_key", "Where requests' slice value is read.", ["key"],
                  registry=self.registry).labels(key).set(1)
            self.sliced = Counter("modelrelease_slice_requests", "Requests served, by slice.",
                                  ["path", "slice", "status"], registry=self.registry)
            self.sliced_latency = Histogram(
                "modelrelease_slice_request_seconds", "Request latency, by slice.",
                ["path", "slice"], buckets=LATENCY_BUCKETS, registry=self.registry)
            self.generated_sliced = Counter(
                "modelrelease_generated_slice_requests",
                "The load generator's requests, by slice.", ["path", "slice", "status"],
                registry=self.registry)
            self.generated_sliced_latency = Histogram(
                "modelrelease_generated_slice_request_seconds",
                "Latency of the load generator's requests, by slice.", ["path", "slice"],
                buckets=LATENCY_BUCKETS, registry=self.registry)

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
        headers = scope.get("headers") or ()
        generated = any(key.lower() == GENERATED for key, _ in headers)
        shadow = not generated and any(key.lower() == SHADOW for key, _ in headers)
        status = 500
        chunks: list[bytes] = []
        request_body = bytearray()
        keep_body = self.slice_column is not None and label == "/invocations"

        async def recording_receive() -> Message:
            message = await receive()
            if keep_body and message["type"] == "http.request" and \
                    len(request_body) <= MAX_SLICED_BODY:
                request_body.extend(message.get("body", b""))
            return message

        start = time.perf_counter()
        counted = False

        def count() -> None:
            """Count the request once: as its answer ends, or as the app gives up."""
            nonlocal counted
            if counted:
                return
            counted = True
            took = time.perf_counter() - start
            if shadow:
                self.shadow_latency.labels(label).observe(took)
                self.shadow.labels(label, str(status)).inc()
                return
            self.latency.labels(label).observe(took)
            self.requests.labels(label, str(status)).inc()
            if generated:
                self.generated_latency.labels(label).observe(took)
                self.generated.labels(label, str(status)).inc()
            if label == "/invocations":
                self._count_slice(headers, bytes(request_body), generated, status, took)

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body":
                if label == "/invocations":
                    chunks.append(bytes(message.get("body", b"")))
                if not message.get("more_body", False):
                    # before the client has the whole answer, so a scrape that follows
                    # it always counts it (the app may still log for a while after)
                    count()
            await send(message)

        self.in_flight.inc()
        try:
            await self.app(scope, recording_receive if keep_body else receive, recording_send)
        finally:
            self.in_flight.dec()
            count()
        if label == "/invocations" and status == 200 and not shadow:
            self._summarise(b"".join(chunks))  # after the answer: off the client's path

    def slice_of(self, headers: Any, body: bytes) -> str | None:
        """The request's slice value (module doc), or None: not sliced."""
        if self.slice_header is not None:
            value = next((bytes(v).decode("latin-1") for k, v in headers
                          if bytes(k).lower() == self.slice_header), None)
        elif self.slice_column is not None and len(body) <= MAX_SLICED_BODY:
            value = column_value(body, self.slice_column)
        else:
            return None
        if not value:
            return None
        value = value[:MAX_SLICE_LENGTH]
        if value not in self._slices and len(self._slices) >= MAX_SLICE_VALUES:
            return None
        self._slices.add(value)
        return value

    def _count_slice(self, headers: Any, body: bytes, generated: bool, status: int,
                     took: float) -> None:
        value = self.slice_of(headers, body)
        if value is None:
            return
        self.sliced_latency.labels("/invocations", value).observe(took)
        self.sliced.labels("/invocations", value, str(status)).inc()
        if generated:
            self.generated_sliced_latency.labels("/invocations", value).observe(took)
            self.generated_sliced.labels("/invocations", value, str(status)).inc()

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
