"""Fault-suite helpers: a fault-injecting registry proxy, endpoint tuning, end-state checks.

The proxy is a seam in front of the real registry (as ``tests/integration`` puts an
``httpx`` transport in front of it): a TCP relay on 127.0.0.1 that, while a fault window
is open, answers every new request with a 503 or closes the connection unanswered (the
two alternate), and cuts the connections it is relaying. Outside the window it relays
bytes unchanged, so pushes and pulls see the real registry.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import yaml

from modelrelease_localstack.process import free_ports
from tests.e2e.helpers import Endpoint
from tests.kube import eventually

_BODY = b'{"errors":[{"code":"UNAVAILABLE","message":"injected by the faults suite"}]}'
_503 = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(_BODY), _BODY))


class FaultyProxy:
    """A TCP relay to ``upstream`` (``host:port``) that can fail for a while; see the module doc.

    Args:
        upstream: The real registry, ``127.0.0.1:PORT``.
    """

    def __init__(self, upstream: str) -> None:
        host, port = upstream.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.port = free_ports(1)[0]
        self.failed = 0
        """Requests answered 503 or dropped so far."""
        self._until = 0.0
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", self.port))
        self._server.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True, name="faulty-proxy")

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``, for image references through the proxy."""
        return f"127.0.0.1:{self.port}"

    def fail_for(self, seconds: float) -> None:
        """Answer 503 or drop every connection for the next ``seconds``."""
        self._until = time.monotonic() + seconds

    def heal(self) -> None:
        """End the fault window now."""
        self._until = 0.0

    @property
    def failing(self) -> bool:
        """Whether the fault window is open."""
        return time.monotonic() < self._until

    def __enter__(self) -> FaultyProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._server.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            if self.failing:
                with self._lock:
                    self.failed += 1
                    answer = self.failed % 2 == 1
                if answer:
                    with suppress(OSError):
                        conn.settimeout(2)
                        conn.recv(65536)
                        conn.sendall(_503)
                return  # closing it unanswered is the other fault
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                return
            with upstream:
                self._relay(conn, upstream)

    def _relay(self, a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        while peers and not self._stop.is_set() and not self.failing:
            readable, _, _ = select.select(list(peers), [], [], 0.2)
            for src in readable:
                try:
                    data = src.recv(65536)
                    if data:
                        peers[src].sendall(data)
                        continue
                    peers[src].shutdown(socket.SHUT_WR)
                except OSError:
                    return
                peers.pop(src)


def tune(endpoint: Endpoint, **spec: Any) -> None:
    """Change top-level fields of the endpoint file's ``spec`` (merged one level deep)."""
    document = yaml.safe_load(endpoint.file.read_text())
    for key, value in spec.items():
        if isinstance(value, dict) and isinstance(document["spec"].get(key), dict):
            document["spec"][key].update(value)
        else:
            document["spec"][key] = value
    endpoint.file.write_text(yaml.safe_dump(document))


def report(fault: str, converged: bool, seconds: float, lost: int | None,
           **extra: Any) -> None:
    """The suite's one JSON line per injected fault."""
    print(json.dumps({"fault": fault, "converged": converged, "seconds": round(seconds, 2),
                      "lost_requests": lost, **extra}), flush=True)


def wait_phase(endpoint: Endpoint, phases: set[str], timeout: float = 120) -> str:
    """Poll the ModelEndpoint until its phase is one of ``phases``; return it."""
    phase = eventually(lambda: endpoint.status().get("phase") in phases
                       and endpoint.status()["phase"], timeout, f"phase in {sorted(phases)}")
    return str(phase)


def assert_promoted(endpoint: Endpoint, result: Any, alias: str = "production") -> None:
    """The end state of a promotion: primary image, no canary, status and MLflow agree."""
    assert result.outcome == "promoted", result.reason
    digest = result.image.split("@")[1]
    assert (endpoint.image("primary") or "").endswith(digest)
    eventually(lambda: endpoint.image("canary") is None, 60, "canary removed")
    status = endpoint.status()
    assert status["phase"] == "Promoted", status
    assert status["primary"] == {"version": result.version, "digest": digest,
                                 "image": result.image}, status["primary"]
    assert not status.get("canary"), status
    assert status["history"][-1]["releaseId"] == result.release_id
    tags = endpoint.mlflow_tags(result.version)
    assert tags["modelrelease.status"] == "promoted", tags
    assert tags["modelrelease.image_digest"] == digest
    assert tags["modelrelease.release_id"] == result.release_id
    from mlflow.tracking import MlflowClient

    held = MlflowClient(tracking_uri=endpoint.settings.mlflow.tracking_uri
                        ).get_model_version_by_alias(endpoint.model, alias)
    assert held.version == result.version


def assert_untouched(endpoint: Endpoint, before: dict[str, Any], primary: str | None) -> None:
    """Nothing changed in the cluster: same status, same primary, no canary."""
    assert endpoint.image("canary") is None
    assert endpoint.image("primary") == primary
    after = endpoint.status() if primary is not None else {}
    assert after == before, (before, after)


@contextmanager
def timed() -> Iterator[list[float]]:
    """Yields a list that holds the seconds the block took once it ends."""
    began = time.monotonic()
    box: list[float] = []
    try:
        yield box
    finally:
        box.append(time.monotonic() - began)
