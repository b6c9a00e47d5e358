"""domain.shadow: the control's setting, the exact share copied, digests, records, the judge."""

from __future__ import annotations

from typing import Any

import pytest

from modelrelease.domain.analysis import AnalysisPolicy, CheckStatus, Metric
from modelrelease.domain.live import LiveOutcome
from modelrelease.domain.shadow import (
    ShadowEvidence,
    ShadowRecord,
    ShadowSetting,
    answer_digest,
    copies,
    judge_shadow,
    parse_setting,
)
from modelrelease.errors import InvalidInput

NOW = 1_000.0


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param({"percent": 100, "seconds": 300}, ShadowSetting(100, 1300.0), id="all"),
        pytest.param({"percent": 1, "seconds": 1}, ShadowSetting(1, 1001.0), id="least"),
        pytest.param({"percent": 10, "seconds": 0.5 + 1, "payloads": True},
                     ShadowSetting(10, 1001.5, True), id="payloads-fractional-seconds"),
        pytest.param({"percent": 50, "seconds": 86_400, "payloads": False},
                     ShadowSetting(50, 87_400.0), id="a-day"),
    ],
)
def test_parse_setting(body: dict[str, Any], expected: ShadowSetting) -> None:
    assert parse_setting(body, NOW) == expected


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param([100], "the body must be a JSON object, got list", id="not-object"),
        pytest.param(None, "the body must be a JSON object, got NoneType", id="null"),
        pytest.param({"percent": 10, "seconds": 5, "target": "http://x"},
                     "unknown key 'target'", id="no-choosing-the-target"),
        pytest.param({"seconds": 5}, "percent must be a whole number from 1 to 100, got None",
                     id="percent-missing"),
        pytest.param({"percent": 0, "seconds": 5}, "got 0", id="percent-zero"),
        pytest.param({"percent": 101, "seconds": 5}, "got 101", id="percent-over"),
        pytest.param({"percent": 12.5, "seconds": 5}, "got 12.5", id="percent-fraction"),
        pytest.param({"percent": True, "seconds": 5}, "got True", id="percent-bool"),
        pytest.param({"percent": 10}, "seconds must be a number from 1 to 86400, got None",
                     id="seconds-missing"),
        pytest.param({"percent": 10, "seconds": 0.5}, "got 0.5", id="seconds-under"),
        pytest.param({"percent": 10, "seconds": 86_401}, "got 86401", id="seconds-over"),
        pytest.param({"percent": 10, "seconds": "5m"}, "got '5m'", id="seconds-text"),
        pytest.param({"percent": 10, "seconds": False}, "got False", id="seconds-bool"),
        pytest.param({"percent": 10, "seconds": 5, "payloads": "yes"},
                     "payloads must be true or false, got 'yes'", id="payloads-text"),
    ],
)
def test_bad_settings_are_refused_with_the_form(body: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=r"^set shadow: ") as caught:
        parse_setting(body, NOW)
    assert message in str(caught.value)
    assert '{"percent": 100, "seconds": 300, "payloads": false}' in str(caught.value)


@pytest.mark.parametrize(
    ("now", "active", "left"),
    [
        pytest.param(999.0, True, 11.0, id="before"),
        pytest.param(1009.9, True, 0.1, id="last-moment"),
        pytest.param(1010.0, False, 0.0, id="at-the-end"),
        pytest.param(2000.0, False, 0.0, id="long-after"),
    ],
)
def test_a_setting_ends_by_itself(now: float, active: bool, left: float) -> None:
    setting = ShadowSetting(30, 1010.0, payloads=True)
    assert setting.active(now) is active
    assert setting.as_json(now) == {"percent": 30, "seconds_left": left, "payloads": True}


@pytest.mark.parametrize("percent", [1, 5, 10, 33, 50, 67, 99, 100])
def test_the_share_copied_is_exact_in_every_hundred(percent: int) -> None:
    picked = [copies(n, percent) for n in range(1000)]
    for start in range(0, 1000, 100):
        assert sum(picked[start:start + 100]) == percent


@pytest.mark.parametrize(
    ("seen", "percent", "expected"),
    [
        pytest.param(0, 100, True, id="all-first"),
        pytest.param(0, 50, False, id="half-first"),
        pytest.param(1, 50, True, id="half-second"),
        pytest.param(98, 1, False, id="one-percent-99th"),
        pytest.param(99, 1, True, id="one-percent-100th"),
    ],
)
def test_copies(seen: int, percent: int, expected: bool) -> None:
    assert copies(seen, percent) is expected


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        pytest.param(b'{"predictions": [0, 2]}', b'{ "predictions" : [0,2] }', True,
                     id="whitespace"),
        pytest.param(b'{"predictions": [{"a": 1, "b": 2}]}',
                     b'{"predictions": [{"b": 2, "a": 1}]}', True, id="key-order"),
        pytest.param(b'{"predictions": [0, 2]}', b'{"predictions": [0, 1]}', False,
                     id="other-answer"),
        pytest.param(b'{"predictions": [0]}', b'[0]', True, id="bare-value"),
        pytest.param(b'{"error": "x"}', b'{"error": "y"}', False, id="no-predictions"),
        pytest.param(b"not json", b"not json", True, id="raw-same"),
        pytest.param(b"not json", b"not json!", False, id="raw-other"),
    ],
)
def test_answer_digest(a: bytes, b: bytes, same: bool) -> None:
    assert (answer_digest(a) == answer_digest(b)) is same
    assert len(answer_digest(a)) == 32


def _record(primary: int, canary: int | None, p: str = "d1", c: str | None = "d1",
            **extra: Any) -> ShadowRecord:
    return ShadowRecord(7, "req-1", primary, p, canary, None if canary is None else 12.3456,
                        None if canary is None else c, **extra)


@pytest.mark.parametrize(
    ("record", "agree", "failed"),
    [
        pytest.param(_record(200, 200), True, False, id="agree"),
        pytest.param(_record(200, 200, c="d2"), False, False, id="disagree"),
        pytest.param(_record(200, 500), None, True, id="canary-error"),
        pytest.param(_record(200, None, error="ConnectError: refused"), None, True,
                     id="no-answer"),
        pytest.param(_record(400, 400), None, False, id="both-refuse-bad-input"),
        pytest.param(_record(500, 200), None, False, id="primary-error-canary-fine"),
    ],
)
def test_records_agree_only_when_both_answered(record: ShadowRecord, agree: bool | None,
                                               failed: bool) -> None:
    assert record.agree is agree
    assert record.canary_failed is failed


def test_a_record_as_listed() -> None:
    assert _record(200, 200, c="d2").as_json() == {
        "seq": 7, "request_id": "req-1",
        "primary": {"status": 200, "digest": "d1", "ms": None},
        "canary": {"status": 200, "digest": "d2", "ms": 12.346}, "agree": False}
    failed = _record(200, None, error="ReadTimeout: timed out",
                     payloads=("in", "out", "")).as_json()
    assert failed["canary"] == {"status": None, "digest": None, "ms": None,
                                "error": "ReadTimeout: timed out", "body": ""}
    assert (failed["input"], failed["primary"]["body"], failed["canary"]["body"]) == (
        "in", "out", "")


# -- judging a shadow step's copies --------------------------------------------------------------

POLICY = AnalysisPolicy(min_requests=100, max_requests=600, max_latency_regression=0.2)


def _copies(n: int, *, canary_ms: float = 5.0, primary_ms: float = 5.0, disagree_every: int = 0,
            fail_every: int = 0, primary_status: int = 200) -> list[ShadowRecord]:
    out = []
    for i in range(n):
        wobble = (i % 7) * 0.1  # latencies vary a little, as measured ones do
        failed = fail_every and i % fail_every == 0
        digest = "other" if disagree_every and i % disagree_every == 0 else "same"
        out.append(ShadowRecord(i + 1, f"r{i}", primary_status, "same",
                                None if failed else 200, canary_ms + wobble,
                                None if failed else digest,
                                error="ConnectError: refused" if failed else None,
                                primary_ms=primary_ms + wobble))
    return out


@pytest.mark.parametrize(
    ("records", "dropped", "outcome", "said"),
    [
        pytest.param([], 0, LiveOutcome.THIN, "no live request was copied", id="nobody-called"),
        pytest.param([], 12, LiveOutcome.THIN, "; 12 could not be sent", id="all-dropped"),
        pytest.param(_copies(300), 0, LiveOutcome.PASS,
                     "shadow on 300 copies of live requests: within the checks", id="healthy"),
        pytest.param(_copies(300), 5, LiveOutcome.PASS, "(5 more dropped)", id="some-dropped"),
        pytest.param(_copies(300, canary_ms=15.0), 0, LiveOutcome.FAIL,
                     "latency regression", id="three-times-slower"),
        pytest.param(_copies(300, disagree_every=10), 0, LiveOutcome.FAIL,
                     "the canary disagrees with the primary: 270 of 300 real inputs answered "
                     "alike (90.0%, min 95%)", id="disagrees-on-a-tenth"),
        pytest.param(_copies(300, disagree_every=50), 0, LiveOutcome.PASS,
                     "294 of 300 real inputs answered alike (98.0%", id="agrees-enough"),
        pytest.param(_copies(300, fail_every=2), 0, LiveOutcome.FAIL, "error rate",
                     id="canary-fails-half"),
        pytest.param(_copies(30, fail_every=1), 0, LiveOutcome.FAIL,
                     "error rate: canary 100.00% (30/30)", id="crashed-few-copies"),
        pytest.param(_copies(30), 0, LiveOutcome.THIN,
                     "not judged (too few requests: canary 30, primary 30, need 100 per arm)",
                     id="too-few"),
        pytest.param(_copies(10, disagree_every=1), 0, LiveOutcome.THIN,
                     "0 of 10 real inputs answered alike", id="too-few-to-compare"),
        pytest.param(_copies(300, primary_status=500), 0, LiveOutcome.THIN,
                     "not judged (latency: too few successful requests to compare (canary "
                     "300, primary 0)", id="primary-errors-nothing-to-compare"),
    ],
)
def test_judge_shadow(records: list[ShadowRecord], dropped: int, outcome: LiveOutcome,
                      said: str) -> None:
    found = judge_shadow(records, dropped, POLICY, min_agreement=0.95, min_rows=20, percent=50)
    assert found.outcome is outcome, found.reason
    assert said in found.reason
    assert (found.copies, found.dropped, found.percent) == (len(records), dropped, 50)
    assert found.check.metric is Metric.SHADOW
    assert found.check.status is {LiveOutcome.PASS: CheckStatus.PASS,
                                  LiveOutcome.FAIL: CheckStatus.FAIL}.get(outcome,
                                                                          CheckStatus.NO_DATA)
    assert found.source == f"shadow ({len(records)} copies of live requests)"


def test_agreement_off_compares_nothing() -> None:
    found = judge_shadow(_copies(300, disagree_every=2), 0, POLICY, min_agreement=0.0,
                         min_rows=20)
    assert found.outcome is LiveOutcome.PASS
    assert (found.compared, found.disagreed) == (300, 150)


def test_shadow_numbers_for_the_status() -> None:
    found = judge_shadow(_copies(300), 4, POLICY, min_agreement=0.95, min_rows=20)
    numbers = found.numbers
    assert {k: numbers[k] for k in ("shadow_copies", "shadow_dropped", "shadow_compared",
                                    "shadow_disagreed")} == {
        "shadow_copies": 300.0, "shadow_dropped": 4.0, "shadow_compared": 300.0,
        "shadow_disagreed": 0.0}
    assert numbers["shadow_canary_p95_ms"] > 5.0 and numbers["shadow_primary_p95_ms"] > 5.0
    assert ShadowEvidence(LiveOutcome.THIN, "x").numbers == {
        "shadow_copies": 0.0, "shadow_dropped": 0.0, "shadow_compared": 0.0,
        "shadow_disagreed": 0.0}
