"""Live traffic from a Prometheus server: the query, and its answer read as pod scrapes. Pure.

When ``MODELRELEASE_PROMETHEUS__URL`` is set, the judge reads the serving pods' counters
from Prometheus instead of from the pods. One range query, after the step, fetches every
raw sample of the request series (``modelrelease_requests_total``, the latency histogram
and their ``generated`` twins, and the same per slice when the pods slice) for the tracks'
pods, from a little before the step began until now. Each pod is then read twice, as if
scraped:

* **before**: its last sample at or before the step's start (a pod Prometheus had not
  scraped by then: its first sample after the start; a pod with none: new, counts from 0);
* **after**: its first sample at or after the step's end. The adapter waits (bounded)
  until every pod has one, so no request of the step is missed.

The window is therefore wider than the step by up to one scrape interval each side. That
does not blur the split between live and generated requests: both come from the pod's own
counters (``domain.live``). Everything else (what is live, how it is judged) is
``domain.live``'s, unchanged.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modelrelease.domain.exposition import Sample
from modelrelease.domain.live import (
    GENERATED_LATENCY,
    GENERATED_REQUESTS,
    GENERATED_SLICE_LATENCY,
    GENERATED_SLICE_REQUESTS,
    LATENCY,
    REQUESTS,
    SLICE_KEY,
    SLICE_LATENCY,
    SLICE_REQUESTS,
    PodTraffic,
    TrackScrape,
)

SERIES = (REQUESTS, LATENCY, GENERATED_REQUESTS, GENERATED_LATENCY, SLICE_KEY, SLICE_REQUESTS,
          SLICE_LATENCY, GENERATED_SLICE_REQUESTS, GENERATED_SLICE_LATENCY)
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


@dataclass(frozen=True)
class Labels:
    """The target labels a Prometheus scrape config gives a pod's series."""

    namespace: str = "namespace"
    pod: str = "pod"

    def __post_init__(self) -> None:
        for name in (self.namespace, self.pod):
            if not _LABEL_NAME.match(name):
                raise ValueError(f"{name!r} is not a Prometheus label name "
                                 f"(letters, digits and _, not starting with a digit)")


def _quote(value: str) -> str:
    """A PromQL double-quoted string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def series_query(names: Sequence[str], namespace: str, pods: Iterable[str], window_s: float,
                 labels: Labels = Labels()) -> str:
    """The raw samples of series ``names`` of ``pods`` over the last ``window_s``."""
    pod_names = sorted(set(pods))
    if not pod_names:
        raise ValueError("no pods to query")
    return (f'{{__name__=~{_quote("|".join(re.escape(n) for n in names))},'
            f'{labels.namespace}={_quote(namespace)},'
            f'{labels.pod}=~{_quote("|".join(re.escape(p) for p in pod_names))}}}'
            f'[{max(1, math.ceil(window_s))}s]')


def range_query(namespace: str, pods: Iterable[str], window_s: float,
                labels: Labels = Labels()) -> str:
    """The raw samples of the request series of ``pods`` over the last ``window_s``."""
    return series_query(SERIES, namespace, pods, window_s, labels)


@dataclass(frozen=True)
class Series:
    """One series' labels and raw samples ``(unix seconds, value)``, oldest first."""

    name: str
    labels: tuple[tuple[str, str], ...]
    points: tuple[tuple[float, float], ...]

    def label(self, key: str) -> str | None:
        """The value of label ``key``, or None."""
        return dict(self.labels).get(key)

    def at_or_before(self, t: float) -> float | None:
        """The value of the last sample at or before ``t``."""
        older = [v for ts, v in self.points if ts <= t]
        return older[-1] if older else None

    def at_or_after(self, t: float) -> float | None:
        """The value of the first sample at or after ``t``."""
        return next((v for ts, v in self.points if ts >= t), None)

    def newest(self) -> float | None:
        """The timestamp of the newest sample."""
        return self.points[-1][0] if self.points else None


def parse_matrix(body: Any) -> tuple[Series, ...]:
    """The series of a ``/api/v1/query`` answer whose result is a matrix.

    Raises:
        ValueError: an error answer, or not a matrix, with what Prometheus said.
    """
    if not isinstance(body, Mapping):
        raise ValueError(f"not a Prometheus API answer: {str(body)[:120]!r}")
    if body.get("status") != "success":
        raise ValueError(f"query failed: {body.get('errorType', 'error')}: "
                         f"{body.get('error', 'no error message')}")
    data = body.get("data")
    if not isinstance(data, Mapping) or data.get("resultType") != "matrix":
        kind = data.get("resultType") if isinstance(data, Mapping) else None
        raise ValueError(f"expected a matrix result, got {kind!r}")
    out: list[Series] = []
    for item in data.get("result") or []:
        try:
            metric = dict(item["metric"])
            points = tuple(sorted((float(ts), float(v)) for ts, v in item["values"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed series in the answer: {str(item)[:120]!r}") from exc
        name = str(metric.pop("__name__", ""))
        out.append(Series(name, tuple(sorted((str(k), str(v)) for k, v in metric.items())),
                          points))
    return tuple(out)


def stale_pods(series: Sequence[Series], pods: Iterable[str], end: float,
               labels: Labels = Labels()) -> list[str]:
    """The pods with no request-counter sample at or after ``end`` (not scraped since)."""
    fresh = {s.label(labels.pod) for s in series
             if s.name == REQUESTS and (s.newest() or -math.inf) >= end}
    return sorted(p for p in set(pods) if p not in fresh)


def _read(series: Iterable[Series], pick: str, t: float) -> PodTraffic | None:
    samples = [Sample(s.name, s.labels, value) for s in series
               if (value := s.at_or_before(t) if pick == "before" else s.at_or_after(t))
               is not None]
    return PodTraffic.from_samples(samples) if samples else None


def scrapes(series: Sequence[Series], pods: Iterable[str], start: float, end: float,
            labels: Labels = Labels()) -> tuple[TrackScrape, TrackScrape]:
    """One track's pods read at ``start`` and at ``end``, as ``domain.live`` takes them.

    ``end``: each pod's first sample at or after it; a pod with none is a failure line.
    ``start``: each pod's last sample at or before it. A series missing then from a pod
    that was scraped then did not exist yet (a status first seen later), so it counts
    from 0. A pod not scraped by ``start`` at all is read at its first scrape after it
    instead: requests from before the step never count as live.
    """
    before: dict[str, PodTraffic] = {}
    after: dict[str, PodTraffic] = {}
    failures: list[str] = []
    for pod in sorted(set(pods)):
        own = [s for s in series if s.label(labels.pod) == pod]
        now = _read(own, "after", end)
        if now is None:
            failures.append(f"pod {pod}: no sample in Prometheus since the step ended")
            continue
        after[pod] = now
        before[pod] = _read(own, "before", start) or _read(own, "after", start) or now
    return TrackScrape(before), TrackScrape(after, tuple(failures))


def window(start: float, now: float, lookback_s: float) -> float:
    """How far back the range query reaches: the step, and ``lookback_s`` before it."""
    return max(0.0, now - start) + lookback_s


def describe(url: str) -> str:
    """How the report names this source (the URL without credentials or query)."""
    shown = re.sub(r"^([a-z][a-z0-9+.-]*://)[^/@]*@", r"\1", url.strip(), flags=re.I)
    return f"Prometheus {shown.split('?')[0].rstrip('/')}"



def newest_by_pod(series: Sequence[Series], pods: Iterable[str],
                  labels: Labels = Labels()) -> dict[str, list[Sample]]:
    """Each pod's series at their newest sample (pods without any: an empty list)."""
    out: dict[str, list[Sample]] = {pod: [] for pod in sorted(set(pods))}
    for s in series:
        pod = s.label(labels.pod)
        if pod in out and s.points:
            out[pod].append(Sample(s.name, s.labels, s.points[-1][1]))
    return out
