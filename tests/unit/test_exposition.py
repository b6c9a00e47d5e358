"""domain.exposition: the Prometheus text format, line by line."""

from __future__ import annotations

import math

import pytest

from modelrelease.domain.exposition import Sample, parse, select

RECORDED = """\
# HELP modelrelease_requests_total Requests served.
# TYPE modelrelease_requests_total counter
modelrelease_requests_total{path="/invocations",status="200"} 41.0
modelrelease_requests_total{path="/ping",status="200"} 7.0

modelrelease_request_seconds_bucket{le="0.005",path="/invocations"} 40.0
modelrelease_request_seconds_bucket{le="+Inf",path="/invocations"} 41.0
modelrelease_requests_in_flight 0.0
up 1 1700000000000
"""


def test_recorded_exposition() -> None:
    samples = parse(RECORDED)
    assert len(samples) == 6
    assert samples[0] == Sample("modelrelease_requests_total",
                                (("path", "/invocations"), ("status", "200")), 41.0)
    assert select(samples, "modelrelease_requests_total", path="/ping")[0].value == 7.0
    (inf,) = select(samples, "modelrelease_request_seconds_bucket", le="+Inf")
    assert inf.value == 41.0 and inf.label("path") == "/invocations"
    assert samples[4].labels == () and samples[4].label("path") is None
    assert samples[5] == Sample("up", (), 1.0)  # the timestamp is dropped


@pytest.mark.parametrize(("line", "labels", "value"), [
    pytest.param('m{a="x\\"y"} 1', (("a", 'x"y'),), 1.0, id="escaped-quote"),
    pytest.param('m{a="x\\\\y",b="z\\n"} 2', (("a", "x\\y"), ("b", "z\n")), 2.0,
                 id="escaped-backslash-and-newline"),
    pytest.param('m{b="2", a="1",} 3', (("a", "1"), ("b", "2")), 3.0, id="trailing-comma"),
    pytest.param("m{} +Inf", (), math.inf, id="empty-braces-inf"),
    pytest.param('m{a="}"} -1.5e3', (("a", "}"),), -1500.0, id="brace-in-value"),
])
def test_sample_lines(line: str, labels: tuple[tuple[str, str], ...], value: float) -> None:
    (sample,) = parse(line)
    assert sample.labels == labels and sample.value == value


@pytest.mark.parametrize(("text", "message"), [
    pytest.param("m", "line 1: not a sample", id="no-value"),
    pytest.param("# ok\nm{a=1} 2", "line 2: bad labels", id="unquoted-label"),
    pytest.param("m 1\nm twelve", "line 2: bad value 'twelve'", id="bad-value"),
    pytest.param("<html>", "line 1: not a sample", id="not-metrics"),
])
def test_bad_lines_are_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse(text)


def test_nan_value() -> None:
    (sample,) = parse("m NaN")
    assert math.isnan(sample.value)
