"""``get_once_routed``: the smoke test's first call waits out a route that is not ready yet.

Real HTTP servers on 127.0.0.1 stand in for the two ways a just-Ready pod's route lags: a
ClusterIP whose kube-proxy rules are not programmed yet refuses the connection (here: a
server that starts listening a second late), and an API server's service proxy answers
503 until its endpoint cache is filled (here: a server that answers 503 for a second).
The real node has these races only now and then (the first one after a restart of
kube-proxy or the API server), never on cue.
"""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from modelrelease.adapters.pod_access import get_once_routed
from modelrelease_localstack.process import free_ports

pytestmark = pytest.mark.integration


def _serve(status: Callable[[float], int], delay: float = 0.0) -> Iterator[tuple[str, list[int]]]:
    """A URL whose server answers ``status(seconds since start)``, listening after ``delay``."""
    (port,) = free_ports(1)
    answered: list[int] = []
    started = time.monotonic()
    servers: list[http.server.HTTPServer] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            code = status(time.monotonic() - started)
            answered.append(code)
            self.send_response(code)
            self.end_headers()
            self.wfile.write(b"pong" if code == 200 else b"no endpoints available")

        def log_message(self, *args: object) -> None:
            pass

    def serve() -> None:
        time.sleep(delay)
        server = http.server.HTTPServer(("127.0.0.1", port), Handler)
        servers.append(server)
        server.serve_forever(poll_interval=0.05)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}/ping", answered
    thread.join(timeout=delay + 5)
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def late_listener() -> Iterator[tuple[str, list[int]]]:
    yield from _serve(lambda _: 200, delay=1.0)


@pytest.fixture
def unavailable_for_a_second() -> Iterator[tuple[str, list[int]]]:
    yield from _serve(lambda since: 503 if since < 1.0 else 200)


@pytest.fixture
def broken() -> Iterator[tuple[str, list[int]]]:
    yield from _serve(lambda _: 500)


def test_a_refused_connection_is_retried_until_the_route_exists(
        late_listener: tuple[str, list[int]]) -> None:
    url, answered = late_listener
    with httpx.Client(trust_env=False) as http:
        answer = get_once_routed(http, url, within=30)
    assert answer.status_code == 200 and answer.text == "pong"
    assert answered == [200]


def test_a_503_is_retried_until_the_route_exists(
        unavailable_for_a_second: tuple[str, list[int]]) -> None:
    url, answered = unavailable_for_a_second
    with httpx.Client(trust_env=False) as http:
        answer = get_once_routed(http, url, within=30)
    assert answer.status_code == 200
    assert answered[0] == 503 and answered[-1] == 200 and set(answered) == {503, 200}


def test_a_route_that_never_comes_fails_after_the_window() -> None:
    (port,) = free_ports(1)
    with httpx.Client(trust_env=False) as http, pytest.raises(httpx.ConnectError):
        get_once_routed(http, f"http://127.0.0.1:{port}/ping", within=0.5)


def test_a_503_that_lasts_is_returned_after_the_window() -> None:
    for url, answered in _serve(lambda _: 503):
        time.sleep(0.3)  # listening
        with httpx.Client(trust_env=False) as http:
            answer = get_once_routed(http, url, within=0.5)
        assert answer.status_code == 503 and len(answered) >= 2


def test_any_other_answer_is_returned_at_once(broken: tuple[str, list[int]]) -> None:
    url, answered = broken
    time.sleep(0.3)  # listening
    with httpx.Client(trust_env=False) as http:
        answer = get_once_routed(http, url, within=30)
    assert answer.status_code == 500 and answered == [500]
