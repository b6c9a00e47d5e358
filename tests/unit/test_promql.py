"""domain.promql: the range query, a Prometheus matrix answer read as two scrapes per pod."""

from __future__ import annotations

from typing import Any

import pytest

from modelrelease.domain.live import PodTraffic, TrackScrape, Traffic, evidence
from modelrelease.domain.promql import (
    Labels,
    Series,
    describe,
    parse_matrix,
    range_query,
    scrapes,
    stale_pods,
    window,
)
from tests.unit.test_live import POLICY


def matrix(*series: tuple[dict[str, str], list[tuple[float, float]]]) -> dict[str, Any]:
    """A ``/api/v1/query`` answer as Prometheus sends it (values are strings)."""
    return {"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": metric, "values": [[ts, str(v)] for ts, v in points]}
        for metric, points in series]}}


def requests(pod: str, status: str = "200", *, generated: bool = False,
             ns: str = "ml") -> dict[str, str]:
    name = "modelrelease_generated_requests_total" if generated else "modelrelease_requests_total"
    return {"__name__": name, "namespace": ns, "pod": pod, "path": "/invocations",
            "status": status, "job": "pods"}


def bucket(pod: str, le: str, *, generated: bool = False) -> dict[str, str]:
    name = ("modelrelease_generated_request_seconds_bucket" if generated
            else "modelrelease_request_seconds_bucket")
    return {"__name__": name, "namespace": "ml", "pod": pod, "path": "/invocations", "le": le}


# -- the query ------------------------------------------------------------------------------


@pytest.mark.parametrize(("pods", "seconds", "labels", "expected"), [
    pytest.param(["b", "a", "a"], 90.2, Labels(),
                 '{__name__=~"modelrelease_requests_total|modelrelease_request_seconds_bucket|'
                 'modelrelease_generated_requests_total|'
                 'modelrelease_generated_request_seconds_bucket|modelrelease_slice_key|'
                 'modelrelease_slice_requests_total|modelrelease_slice_request_seconds_bucket|'
                 'modelrelease_generated_slice_requests_total|'
                 'modelrelease_generated_slice_request_seconds_bucket",namespace="ml",'
                 'pod=~"a|b"}[91s]', id="sorted-unique-pods-whole-seconds"),
    pytest.param(["iris-primary-7d.9"], 0.1, Labels("kubernetes_namespace", "kubernetes_pod"),
                 '{__name__=~"modelrelease_requests_total|modelrelease_request_seconds_bucket|'
                 'modelrelease_generated_requests_total|'
                 'modelrelease_generated_request_seconds_bucket|modelrelease_slice_key|'
                 'modelrelease_slice_requests_total|modelrelease_slice_request_seconds_bucket|'
                 'modelrelease_generated_slice_requests_total|'
                 'modelrelease_generated_slice_request_seconds_bucket",kubernetes_namespace="ml",'
                 'kubernetes_pod=~"iris\\\\-primary\\\\-7d\\\\.9"}[1s]',
                 id="regex-escaped-custom-labels-at-least-1s"),
])
def test_range_query(pods: list[str], seconds: float, labels: Labels, expected: str) -> None:
    assert range_query("ml", pods, seconds, labels) == expected


def test_range_query_quotes_the_namespace_and_needs_pods() -> None:
    assert 'namespace="a\\"b\\\\c\\n"' in range_query('a"b\\c\n', ["p"], 5)
    with pytest.raises(ValueError, match="no pods"):
        range_query("ml", [], 5)


@pytest.mark.parametrize("name", ["0pod", "pod-name", "", "a b"])
def test_labels_must_be_label_names(name: str) -> None:
    with pytest.raises(ValueError, match="not a Prometheus label name"):
        Labels(pod=name)


@pytest.mark.parametrize(("start", "now", "lookback", "expected"), [
    pytest.param(100.0, 160.0, 300.0, 360.0, id="step-plus-lookback"),
    pytest.param(100.0, 90.0, 300.0, 300.0, id="clock-behind-start"),
])
def test_window(start: float, now: float, lookback: float, expected: float) -> None:
    assert window(start, now, lookback) == expected


@pytest.mark.parametrize(("url", "expected"), [
    pytest.param("http://prometheus:9090/", "Prometheus http://prometheus:9090", id="plain"),
    pytest.param("https://user:pw@prom.example/api?x=1", "Prometheus https://prom.example/api",
                 id="credentials-and-query-dropped"),
])
def test_describe(url: str, expected: str) -> None:
    assert describe(url) == expected


# -- the answer -----------------------------------------------------------------------------


def test_parse_matrix() -> None:
    found = parse_matrix(matrix((requests("a"), [(20.0, 5), (10.0, 3)])))
    assert found == (Series("modelrelease_requests_total", (
        ("job", "pods"), ("namespace", "ml"), ("path", "/invocations"), ("pod", "a"),
        ("status", "200")), ((10.0, 3.0), (20.0, 5.0))),)
    assert found[0].label("pod") == "a" and found[0].label("le") is None
    assert parse_matrix(matrix()) == ()


@pytest.mark.parametrize(("body", "words"), [
    pytest.param("<html>", "not a Prometheus API answer", id="not-json-object"),
    pytest.param({"status": "error", "errorType": "bad_data", "error": "parse error at char 3"},
                 "query failed: bad_data: parse error at char 3", id="error-answer"),
    pytest.param({"status": "error"}, "query failed: error: no error message", id="bare-error"),
    pytest.param({"status": "success", "data": {"resultType": "vector", "result": []}},
                 "expected a matrix result, got 'vector'", id="vector"),
    pytest.param({"status": "success", "data": None}, "expected a matrix result, got None",
                 id="no-data"),
    pytest.param({"status": "success", "data": {"resultType": "matrix",
                                                 "result": [{"metric": {}}]}},
                 "malformed series", id="series-without-values"),
    pytest.param({"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {}, "values": [[1, "NaN?"]]}]}}, "malformed series", id="bad-value"),
])
def test_parse_matrix_refuses(body: Any, words: str) -> None:
    with pytest.raises(ValueError, match=words.replace("?", r"\?")):
        parse_matrix(body)


@pytest.mark.parametrize(("t", "before", "after"), [
    pytest.param(5.0, None, 3.0, id="before-first"),
    pytest.param(10.0, 3.0, 3.0, id="exactly-on-a-sample"),
    pytest.param(15.0, 3.0, 5.0, id="between"),
    pytest.param(25.0, 5.0, None, id="after-last"),
])
def test_series_picks(t: float, before: float | None, after: float | None) -> None:
    series = Series("x", (), ((10.0, 3.0), (20.0, 5.0)))
    assert series.at_or_before(t) == before and series.at_or_after(t) == after
    assert Series("x", (), ()).newest() is None and series.newest() == 20.0


def test_stale_pods() -> None:
    series = parse_matrix(matrix((requests("a"), [(10.0, 1), (31.0, 2)]),
                                 (requests("b"), [(10.0, 1), (29.0, 2)]),
                                 (bucket("b", "+Inf"), [(35.0, 2)])))  # buckets do not count
    assert stale_pods(series, ["a", "b", "c"], 30.0) == ["b", "c"]
    assert stale_pods(series, ["a"], 30.0) == []


def test_scrapes_reads_each_pod_before_and_after_the_step() -> None:
    """Start 100, end 200; samples every 15 s, so the window is wider on both sides."""
    series = parse_matrix(matrix(
        # a: scraped before the step; 40 live + 60 generated requests during it
        (requests("a"), [(95.0, 10), (110.0, 30), (199.0, 100), (203.0, 110)]),
        (requests("a", generated=True), [(95.0, 4), (110.0, 10), (199.0, 60), (203.0, 64)]),
        (bucket("a", "0.01"), [(95.0, 10), (203.0, 110)]),
        (bucket("a", "+Inf"), [(95.0, 10), (203.0, 110)]),
        (requests("a", "500"), [(203.0, 2)]),  # first error after the start: no before value
        # b: first scraped after the step began: its first sample stands for "before"
        (requests("b"), [(130.0, 5), (210.0, 25)]),
        # c: never scraped since the step ended
        (requests("c"), [(90.0, 1), (150.0, 3)]),
    ))
    before, after = scrapes(series, ["a", "b", "c"], 100.0, 200.0)
    assert before == TrackScrape({
        "a": PodTraffic(Traffic({"200": 10.0}, {0.01: 10.0, float("inf"): 10.0}),
                        Traffic({"200": 4.0}, {})),
        "b": PodTraffic(Traffic({"200": 5.0}, {}), None)})
    assert after.pods == {
        "a": PodTraffic(Traffic({"200": 110.0, "500": 2.0}, {0.01: 110.0, float("inf"): 110.0}),
                        Traffic({"200": 64.0}, {})),
        "b": PodTraffic(Traffic({"200": 25.0}, {}), None)}
    assert after.failures == ("pod c: no sample in Prometheus since the step ended",)


def test_scrapes_feed_the_live_judge_with_the_source_named() -> None:
    """60 live requests per arm between the scrapes: enough (min 50), judged, source named."""
    def arm(pod: str) -> list[tuple[dict[str, str], list[tuple[float, float]]]]:
        return [(requests(pod), [(99.0, 0), (201.0, 160)]),
                (requests(pod, generated=True), [(99.0, 0), (201.0, 100)]),
                (bucket(pod, "0.01"), [(99.0, 0), (201.0, 160)]),
                (bucket(pod, "+Inf"), [(99.0, 0), (201.0, 160)]),
                (bucket(pod, "0.01", generated=True), [(99.0, 0), (201.0, 100)]),
                (bucket(pod, "+Inf", generated=True), [(99.0, 0), (201.0, 100)])]
    series = parse_matrix(matrix(*arm("c1"), *arm("p1")))
    (cb, ca), (pb, pa) = scrapes(series, ["c1"], 100, 200), scrapes(series, ["p1"], 100, 200)
    via = describe("http://127.0.0.1:9090")
    found = evidence({"canary": cb, "primary": pb}, {"canary": ca, "primary": pa},
                     {}, POLICY, via=via)
    assert found.used and found.via == via
    assert found.canary is not None and found.canary.requests == 60
    assert found.source == "generated load + live traffic (Prometheus http://127.0.0.1:9090, " \
                           "120 requests)"
    assert found.reason.startswith("live traffic (Prometheus http://127.0.0.1:9090, canary 60")


def test_series_query_and_newest_by_pod() -> None:
    from modelrelease.domain.cost import GPU_GAUGES, usage_of, utilisation_of
    from modelrelease.domain.promql import newest_by_pod, series_query

    assert series_query(sorted(GPU_GAUGES), "ml", ["p-2", "p-1"], 300) == (
        '{__name__=~"DCGM_FI_DEV_GPU_UTIL|modelrelease_gpu_utilization",namespace="ml",'
        'pod=~"p\\\\-1|p\\\\-2"}[300s]')
    with pytest.raises(ValueError, match="no pods"):
        series_query(["x"], "ml", [], 5)
    series = parse_matrix(matrix(
        ({"__name__": "DCGM_FI_DEV_GPU_UTIL", "pod": "p-1", "gpu": "0"}, [(1, 10), (2, 40)]),
        ({"__name__": "DCGM_FI_DEV_GPU_UTIL", "pod": "p-1", "gpu": "1"}, [(2, 90)]),
        ({"__name__": "DCGM_FI_DEV_GPU_UTIL", "pod": "other", "gpu": "0"}, [(2, 100)]),
        ({"__name__": "DCGM_FI_DEV_GPU_UTIL", "pod": "p-3", "gpu": "0"}, [])))
    found = newest_by_pod(series, ["p-1", "p-2", "p-3"])
    assert {pod: [s.value for s in samples] for pod, samples in found.items()} == {
        "p-1": [40.0, 90.0], "p-2": [], "p-3": []}
    usage = usage_of(4, [utilisation_of(found[p]) for p in ("p-1", "p-2")])
    assert (usage.used, usage.pods, usage.reporting) == (1.3, 2, 1)
