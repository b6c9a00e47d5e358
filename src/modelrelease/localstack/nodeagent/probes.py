"""Readiness and liveness probes: HTTP GET, TCP connect and exec, as the kubelet runs them."""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class ProbeTiming:
    """A probe's timing and thresholds (Kubernetes defaults)."""

    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> ProbeTiming:
        """Read the timing fields of a container probe."""
        return cls(
            initial_delay=float(spec.get("initialDelaySeconds") or 0),
            period=float(spec.get("periodSeconds") or 10),
            timeout=float(spec.get("timeoutSeconds") or 1),
            success_threshold=int(spec.get("successThreshold") or 1),
            failure_threshold=int(spec.get("failureThreshold") or 3),
        )


def _port(value: object, ports: Sequence[Mapping[str, Any]]) -> int:
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        return int(value)
    for port in ports:
        if port.get("name") == value:
            return int(port["containerPort"])
    raise ValueError(f"probe port {value!r} is not a container port name")


def make_check(spec: Mapping[str, Any], pod_ip: str, ports: Sequence[Mapping[str, Any]],
               run_exec: Callable[[Sequence[str], float], int]) -> Callable[[], bool]:
    """A function that runs the probe once and says whether it passed."""
    timing = ProbeTiming.from_spec(spec)
    if "httpGet" in spec:
        get = spec["httpGet"]
        scheme = str(get.get("scheme") or "HTTP").lower()
        url = (f"{scheme}://{get.get('host') or pod_ip}:{_port(get.get('port'), ports)}"
               f"{get.get('path') or '/'}")
        headers = {h["name"]: h["value"] for h in get.get("httpHeaders") or []}

        def http_check() -> bool:
            try:
                response = httpx.get(url, headers=headers, timeout=timing.timeout,
                                     trust_env=False, verify=False)
            except httpx.HTTPError:
                return False
            return 200 <= response.status_code < 400

        return http_check
    if "tcpSocket" in spec:
        port = _port(spec["tcpSocket"].get("port"), ports)

        def tcp_check() -> bool:
            try:
                with socket.create_connection((pod_ip, port), timeout=timing.timeout):
                    return True
            except OSError:
                return False

        return tcp_check
    if "exec" in spec:
        command = list(spec["exec"].get("command") or [])
        return lambda: run_exec(command, timing.timeout) == 0
    raise ValueError(f"unsupported probe {sorted(spec)}: use httpGet, tcpSocket or exec")
