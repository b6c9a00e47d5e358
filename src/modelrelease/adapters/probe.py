"""Reaching model pods from outside the cluster: the API server's service proxy, over httpx.

``/api/v1/namespaces/N/services/S:http/proxy/...`` needs only a kubeconfig. Both arms of
a comparison go through the same path, so its overhead (about 3 ms at p50 here) cancels.
"""

from __future__ import annotations

import ssl
import threading
from typing import Any, Protocol

import httpx

from modelrelease.domain.agreement import Answer


def _tls(configuration: Any) -> tuple[ssl.SSLContext | bool, dict[str, str]]:
    headers: dict[str, str] = {}
    token = (configuration.api_key or {}).get("authorization") or (
        configuration.api_key or {}).get("BearerToken")
    if token:
        prefix = (configuration.api_key_prefix or {}).get("authorization", "")
        headers["Authorization"] = f"{prefix} {token}".strip()
    if not configuration.verify_ssl:
        return False, headers
    ctx = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
    if configuration.cert_file and configuration.key_file:
        ctx.load_cert_chain(configuration.cert_file, configuration.key_file)
    return ctx, headers


class PodRoute(Protocol):
    """URLs of an endpoint's Services and pods, and a client that can call them."""

    def url(self, namespace: str, service: str, path: str = "", port: str = "http") -> str:
        """The URL of ``path`` on ``service``'s named ``port``."""
        ...

    def pod_url(self, namespace: str, pod: str, port: int, path: str = "") -> str:
        """The URL of ``path`` on one pod's ``port``."""
        ...

    def client(self, timeout: float = 10.0) -> httpx.Client:
        """A synchronous client for these URLs."""
        ...


class ServiceProxy:
    """httpx access to Services through the API server, with the kubeconfig's identity.

    Args:
        configuration: The kubernetes client's ``Configuration`` (host, certs, token).
    """

    def __init__(self, configuration: Any) -> None:
        self.host = str(configuration.host).rstrip("/")
        self.verify, self.headers = _tls(configuration)

    def url(self, namespace: str, service: str, path: str = "", port: str = "http") -> str:
        """The proxy URL of ``path`` on ``service``'s named port."""
        return (f"{self.host}/api/v1/namespaces/{namespace}/services/{service}:{port}/proxy"
                f"/{path.lstrip('/')}")

    def pod_url(self, namespace: str, pod: str, port: int, path: str = "") -> str:
        """The pod proxy URL of ``path`` on one pod's ``port`` (RBAC: ``pods/proxy``, get)."""
        return (f"{self.host}/api/v1/namespaces/{namespace}/pods/{pod}:{port}/proxy"
                f"/{path.lstrip('/')}")

    def client(self, timeout: float = 10.0) -> httpx.Client:
        """A synchronous client with the right TLS identity."""
        return httpx.Client(verify=self.verify, headers=self.headers, timeout=timeout,
                            trust_env=False)

    def async_transport(self) -> httpx.AsyncBaseTransport:
        """An async transport (one lane of the load generator) with the same identity."""
        return _HeaderTransport(httpx.AsyncHTTPTransport(verify=self.verify), self.headers)


class _HeaderTransport(httpx.AsyncBaseTransport):
    """Adds the bearer token (if any) to each request of the load generator."""

    def __init__(self, inner: httpx.AsyncBaseTransport, headers: dict[str, str]) -> None:
        self.inner = inner
        self.headers = headers

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        for key, value in self.headers.items():
            request.headers.setdefault(key, value)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def ask(http: httpx.Client, url: str, body: Any) -> Answer:
    """POST ``body`` as JSON; the status and parsed answer (``status`` None: no answer)."""
    try:
        got = http.post(url, json=body)
    except httpx.HTTPError as exc:
        return Answer(None, detail=f"{type(exc).__name__}: {exc}")
    try:
        parsed = got.json()
    except ValueError:
        parsed = None
    return Answer(got.status_code, parsed, "" if got.status_code == 200 else got.text[:300])


class SteadyClient:
    """POSTs one request every ``interval`` seconds from a thread, counting the answers.

    A context manager: entering starts the thread, leaving stops it. Anything but a 200
    (or no answer at all) is a failure, recorded as one line.

    Args:
        proxy: How to reach the Service (the API server's proxy, or ``PodAccess``).
        url: What to POST to, e.g. ``proxy.url(ns, "E-primary", "invocations")``.
        body: The JSON body of every request.
        interval: Seconds between requests.
        timeout: Seconds each request may take.
        new_connections: Open a connection per request (``Connection: close``), as many
            users would, so a Service's ClusterIP spreads them over its pods; otherwise
            one kept-alive connection carries them all to one pod.
    """

    def __init__(self, proxy: PodRoute, url: str, body: Any, *, interval: float = 0.1,
                 timeout: float = 10.0, new_connections: bool = False) -> None:
        self.url = url
        self.body = body
        self.headers = {"Connection": "close"} if new_connections else {}
        self.interval = interval
        self.http = proxy.client(timeout=timeout)
        self.ok = 0
        self.failed: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="steady-client", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                answer = self.http.post(self.url, json=self.body, headers=self.headers)
            except httpx.HTTPError as exc:
                self.failed.append(f"{type(exc).__name__}: {exc}")
                continue
            if answer.status_code == 200:
                self.ok += 1
            else:
                self.failed.append(f"{answer.status_code} {answer.text[:100]}")

    def __enter__(self) -> SteadyClient:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)
        self.http.close()
