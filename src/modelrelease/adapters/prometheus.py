"""Reading the serving pods' request counters from a Prometheus server (``/api/v1/query``).

Used instead of scraping the pods when ``MODELRELEASE_PROMETHEUS__URL`` is set. After a
step it asks for the raw samples of every pod of both tracks, and asks again (every
second, at most ``wait_s``) until each pod has been scraped since the step ended; what
it read then becomes a "before" and an "after" scrape per track (``domain.promql``). A
Prometheus that cannot be reached or answers an error is reported as failure lines, never
raised: metrics are evidence, not a precondition.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable, Mapping, Sequence

import httpx

from modelrelease.domain.exposition import Sample
from modelrelease.domain.live import TrackScrape
from modelrelease.domain.promql import (
    Labels,
    Series,
    describe,
    newest_by_pod,
    parse_matrix,
    range_query,
    scrapes,
    series_query,
    stale_pods,
    window,
)
from modelrelease.settings import PrometheusConfig

logger = logging.getLogger(__name__)


def _unreadable(pods: Mapping[str, Sequence[str]], why: str
                ) -> tuple[dict[str, TrackScrape], dict[str, TrackScrape]]:
    """Every track with nothing read, and ``why`` as its failure."""
    return {t: TrackScrape() for t in pods}, {t: TrackScrape({}, (why,)) for t in pods}


class Prometheus:
    """A Prometheus server's HTTP API, with the configured token and CA.

    Args:
        config: The ``prometheus`` settings; ``config.url`` must be set.
        clock: Wall-clock seconds (Prometheus timestamps are Unix time).
        sleep: How to wait between tries.
    """

    def __init__(self, config: PrometheusConfig, *, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if not config.url:
            raise ValueError("PrometheusConfig.url is not set")
        self.config = config
        self.url = config.url.rstrip("/")
        self.labels = Labels(config.namespace_label, config.pod_label)
        self.via = describe(config.url)
        self._clock = clock
        self._sleep = sleep

    def _client(self) -> httpx.Client:
        headers = {"Accept": "application/json"}
        if self.config.token is not None:
            headers["Authorization"] = f"Bearer {self.config.token.get_secret_value()}"
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=str(self.config.ca_file))
            if self.config.ca_file else True)
        return httpx.Client(base_url=self.url, headers=headers, verify=verify,
                            timeout=self.config.timeout_s, trust_env=False)

    def query(self, http: httpx.Client, promql: str, at: float) -> tuple[Series, ...]:
        """The matrix answer to ``promql`` evaluated at ``at``.

        Raises:
            ValueError: Prometheus answered something else than a matrix (its error).
            httpx.HTTPError: it could not be reached.
        """
        answer = http.get("/api/v1/query", params={"query": promql, "time": f"{at:.3f}"})
        logger.debug("GET %s/api/v1/query -> %s", self.url, answer.status_code)
        try:
            body = answer.json()
        except ValueError:
            raise ValueError(f"answered {answer.status_code}, not JSON: "
                             f"{answer.text[:120]!r}") from None
        return parse_matrix(body)

    def read_window(self, namespace: str, pods: Mapping[str, Sequence[str]],
                    start: float) -> tuple[dict[str, TrackScrape], dict[str, TrackScrape]]:
        """Each track's pods as scraped at ``start`` and at now (the step's end).

        Args:
            namespace: The endpoint's namespace.
            pods: Pod names by track (``canary``, ``primary``), those running now.
            start: When the step's load began (Unix seconds).
        """
        end = self._clock()
        names = [p for track_pods in pods.values() for p in track_pods]
        if not names:
            return _unreadable(pods, "no running pods")
        waited_until = end + self.config.wait_s
        try:
            with self._client() as http:
                while True:
                    now = self._clock()
                    series = self.query(http, range_query(
                        namespace, names, window(start, now, self.config.lookback_s),
                        self.labels), now)
                    stale = stale_pods(series, names, end, self.labels)
                    if not stale or now >= waited_until:
                        break
                    self._sleep(min(1.0, max(0.0, waited_until - now)))
        except (httpx.HTTPError, ValueError) as exc:
            return _unreadable(pods, f"{self.via}: {type(exc).__name__}: {exc}")
        before: dict[str, TrackScrape] = {}
        after: dict[str, TrackScrape] = {}
        for track, track_pods in pods.items():
            before[track], after[track] = scrapes(series, track_pods, start, end, self.labels)
            if stale and after[track].failures:
                after[track] = TrackScrape(after[track].pods, (
                    *after[track].failures,
                    f"waited {self.config.wait_s:g} s; does {self.via} scrape namespace "
                    f"{namespace} (the pods' prometheus.io annotations or "
                    f"deployments/observability/podmonitor.yaml) with labels "
                    f"{self.labels.namespace}/{self.labels.pod}?"))
        return before, after

    def newest(self, names: Sequence[str], namespace: str, pods: Sequence[str]
               ) -> dict[str, list[Sample]]:
        """Each pod's series ``names`` at their newest sample within ``lookback_s``.

        Raises:
            httpx.HTTPError: Prometheus could not be reached.
            ValueError: it answered an error.
        """
        if not pods:
            return {}
        with self._client() as http:
            series = self.query(http, series_query(
                names, namespace, pods, self.config.lookback_s, self.labels), self._clock())
        return newest_by_pod(series, pods, self.labels)
