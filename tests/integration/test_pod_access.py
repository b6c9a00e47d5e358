"""``PodAccess.get_once_routed``: a refused first call is retried on the ClusterIP path only.

The path is decided from a real Service on the stack's API server (its ClusterIP; the mode
is forced). The URL called is a real HTTP server on 127.0.0.1 that starts listening a
moment after the first call, standing in for a ClusterIP whose kube-proxy rules are not
programmed yet (a refused connection is what it answers then): the node agent's stack has
no kube-proxy to race with.
"""

from __future__ import annotations

import http.server
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from modelrelease.adapters.kube import KubeCluster
from modelrelease.adapters.pod_access import PodAccess
from modelrelease.domain.pod_access import AccessMode
from modelrelease.localstack.process import free_ports
from modelrelease.localstack.stack import Stack
from modelrelease.settings import KubeConfig

pytestmark = pytest.mark.integration


class _Ping(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"pong")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def late_server() -> Iterator[str]:
    """A URL whose server starts listening 1 s from now."""
    (port,) = free_ports(1)
    started: list[http.server.HTTPServer] = []

    def serve() -> None:
        time.sleep(1.0)
        server = http.server.HTTPServer(("127.0.0.1", port), _Ping)
        started.append(server)
        server.serve_forever(poll_interval=0.05)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}/ping"
    thread.join(timeout=5)
    for server in started:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def kube(stack: Stack) -> Iterator[KubeCluster]:
    cluster = KubeCluster(KubeConfig(kubeconfig=stack.kubeconfig))
    yield cluster
    cluster.close()


@pytest.fixture(scope="module")
def service(kube: KubeCluster) -> Iterator[tuple[str, str]]:
    """A namespace with a Service that has a ClusterIP (no pods behind it)."""
    namespace = f"pod-access-{uuid.uuid4().hex[:6]}"
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    kube.apply({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "ep", "namespace": namespace},
                "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})
    yield namespace, "ep"
    kube.delete("v1", "Namespace", namespace)


def test_the_cluster_ip_path_waits_for_the_rules(kube: KubeCluster, service: tuple[str, str],
        late_server: str) -> None:
    access = PodAccess(kube, AccessMode.DIRECT, *service)
    with httpx.Client(trust_env=False) as http:
        answer = access.get_once_routed(http, late_server, within=30)
    assert answer.status_code == 200 and answer.text == "pong"


def test_the_cluster_ip_path_gives_up_after_its_window(
        kube: KubeCluster, service: tuple[str, str]) -> None:
    (port,) = free_ports(1)
    access = PodAccess(kube, AccessMode.DIRECT, *service)
    with httpx.Client(trust_env=False) as http, pytest.raises(httpx.ConnectError):
        access.get_once_routed(http, f"http://127.0.0.1:{port}/ping", within=0.5)


def test_the_proxy_path_does_not_retry(kube: KubeCluster, service: tuple[str, str],
        late_server: str) -> None:
    access = PodAccess(kube, AccessMode.PROXY, *service)
    with httpx.Client(trust_env=False) as http, pytest.raises(httpx.ConnectError):
        access.get_once_routed(http, late_server, within=30)
