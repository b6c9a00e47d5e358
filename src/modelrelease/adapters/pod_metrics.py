"""Reading serving pods' ``/metrics`` through the API server's pod proxy.

``/api/v1/namespaces/N/pods/P:8080/proxy/metrics`` needs only a kubeconfig whose identity
may ``get`` ``pods/proxy``. Each pod is read on its own: the Service proxy would answer
from one pod chosen at random, and counters are per process. A pod that cannot be read
is reported as a failure line, never raised: metrics are evidence, not a precondition.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import httpx

from modelrelease.adapters.probe import PodRoute
from modelrelease.domain.manifests import SERVING_PORT

logger = logging.getLogger(__name__)


def running(pods: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pods that are Running with an IP and not being deleted (those that serve)."""
    return [p for p in pods if (p.get("status") or {}).get("phase") == "Running"
            and (p.get("status") or {}).get("podIP")
            and not (p.get("metadata") or {}).get("deletionTimestamp")]


def scrape(proxy: PodRoute, namespace: str, pods: Sequence[dict[str, Any]], *,
           port: int = SERVING_PORT, timeout: float = 10.0
           ) -> tuple[dict[str, str], list[str]]:
    """``/metrics`` of each running pod with an IP: texts by pod name, and failure lines."""
    texts: dict[str, str] = {}
    failures: list[str] = []
    with proxy.client(timeout=timeout) as http:
        for pod in running(pods):
            name = str(pod["metadata"]["name"])
            url = proxy.pod_url(namespace, name, port, "metrics")
            began = time.monotonic()
            try:
                answer = http.get(url)
            except httpx.HTTPError as exc:
                failures.append(f"pod {name}: {type(exc).__name__}: {exc}")
                continue
            logger.debug("GET %s -> %s (%.1f ms)", url, answer.status_code,
                         (time.monotonic() - began) * 1000)
            if answer.status_code != 200:
                failures.append(f"pod {name}: GET /metrics answered {answer.status_code}: "
                                f"{answer.text[:120]}")
                continue
            texts[name] = answer.text
    return texts, failures
