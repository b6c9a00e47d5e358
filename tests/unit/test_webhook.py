"""domain.webhook: MLflow's signing scheme, replays, body parsing, endpoint mapping.

The helpers at the top (``make_endpoint``, ``signed``, ``body``) are shared with the
property and ASGI tests of the receiver.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from modelrelease.domain.triggers import ReleaseTrigger
from modelrelease.domain.webhook import (
    Admission,
    Change,
    EventKind,
    Rejected,
    Rejection,
    ReplayGuard,
    Verified,
    endpoints_following,
    ignored_reason,
    parse,
    signature,
    verify,
)
from modelrelease.spec import ModelEndpoint, parse_endpoint, spec_hash

SECRET = "s3cr3t-webhook-key"
DELIVERY = "0b6f8a9e-2c4d-4e1f-9a7b-5c3d2e1f0a9b"
NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
TS = str(int(NOW.timestamp()))
TOLERANCE = timedelta(seconds=300)


def make_endpoint(endpoint: str = "iris", namespace: str = "ml", **model: Any) -> ModelEndpoint:
    """A ModelEndpoint whose model selector is ``model`` (default iris-clf@champion)."""
    return parse_endpoint({
        "apiVersion": "modelrelease.io/v1alpha1", "kind": "ModelEndpoint",
        "metadata": {"name": endpoint, "namespace": namespace},
        "spec": {"model": model or {"name": "iris-clf", "alias": "champion"},
                 "image": {"repository": "127.0.0.1:5000/ml/iris",
                           "base": "127.0.0.1:5000/ml/base:dev"},
                 "resources": {"cpu": "500m", "memory": "512Mi"}}}, source="test")


def body(event: str = "model_version_alias.created", **data: Any) -> bytes:
    """An MLflow 3.17 delivery body, serialised the way MLflow does (``json.dumps``)."""
    entity, action = event.split(".")
    if not data:
        data = {"name": "iris-clf", "alias": "champion", "version": "4"}
    return json.dumps({"entity": entity, "action": action,
                       "timestamp": "2026-05-01T12:00:00+00:00", "data": data}).encode()


def signed(payload: bytes, *, delivery: str = DELIVERY, ts: str = TS,
           secret: str = SECRET) -> dict[str, str]:
    """The three headers MLflow sends with ``payload``."""
    return {"X-MLflow-Delivery-Id": delivery, "X-MLflow-Timestamp": ts,
            "X-MLflow-Signature": signature(secret, delivery, ts, payload)}


def _verify(payload: bytes, headers: dict[str, str | None], now: datetime = NOW) -> Any:
    return verify(SECRET, headers.get("X-MLflow-Delivery-Id"),
                  headers.get("X-MLflow-Timestamp"), payload,
                  headers.get("X-MLflow-Signature"), now, TOLERANCE)


# --- verify ---------------------------------------------------------------------------------

PAYLOAD = body()
GOOD = signed(PAYLOAD)
OTHER_KEY = signed(PAYLOAD, secret="another-secret")["X-MLflow-Signature"]


def test_accepts_the_signature_mlflow_itself_computes() -> None:
    from mlflow.webhooks.delivery import _generate_hmac_signature

    theirs = _generate_hmac_signature(SECRET, DELIVERY, TS, PAYLOAD.decode())
    assert theirs == GOOD["X-MLflow-Signature"]
    assert _verify(PAYLOAD, {**GOOD, "X-MLflow-Signature": theirs}) == Verified(DELIVERY, int(TS))


@pytest.mark.parametrize(("change", "now", "kind"), [
    pytest.param({}, NOW, None, id="valid"),
    pytest.param({}, NOW + TOLERANCE, None, id="exactly-tolerance-old"),
    pytest.param({}, NOW - TOLERANCE, None, id="exactly-tolerance-ahead"),
    pytest.param({"X-MLflow-Signature": f"v1,{'A' * 43}= {GOOD['X-MLflow-Signature']}"}, NOW,
                 None, id="rotation-second-v1-matches"),
    pytest.param({"X-MLflow-Signature": f"v2,abc {GOOD['X-MLflow-Signature']}"}, NOW, None,
                 id="unknown-version-beside-v1"),
    pytest.param({"X-MLflow-Delivery-Id": None}, NOW, Rejection.MISSING_HEADER, id="no-id"),
    pytest.param({"X-MLflow-Timestamp": None}, NOW, Rejection.MISSING_HEADER, id="no-timestamp"),
    pytest.param({"X-MLflow-Signature": None}, NOW, Rejection.MISSING_HEADER,
                 id="no-signature"),
    pytest.param({"X-MLflow-Signature": ""}, NOW, Rejection.MISSING_HEADER,
                 id="empty-signature"),
    pytest.param({"X-MLflow-Delivery-Id": "a.1"}, NOW, Rejection.BAD_FORMAT, id="id-with-dot"),
    pytest.param({"X-MLflow-Delivery-Id": "x" * 129}, NOW, Rejection.BAD_FORMAT,
                 id="id-too-long"),
    pytest.param({"X-MLflow-Timestamp": "1.5"}, NOW, Rejection.BAD_FORMAT, id="ts-not-int"),
    pytest.param({"X-MLflow-Timestamp": "9" * 13}, NOW, Rejection.BAD_FORMAT, id="ts-too-long"),
    pytest.param({"X-MLflow-Signature": "v1"}, NOW, Rejection.BAD_FORMAT, id="no-comma"),
    pytest.param({"X-MLflow-Signature": ",abc"}, NOW, Rejection.BAD_FORMAT, id="no-version"),
    pytest.param({"X-MLflow-Signature": "v1,"}, NOW, Rejection.BAD_FORMAT, id="no-value"),
    pytest.param({"X-MLflow-Signature": "   "}, NOW, Rejection.BAD_FORMAT, id="blank"),
    pytest.param({"X-MLflow-Signature": "v2,abc"}, NOW, Rejection.BAD_FORMAT, id="only-v2"),
    pytest.param({"X-MLflow-Signature": "v1,not*base64"}, NOW, Rejection.BAD_FORMAT,
                 id="not-base64"),
    pytest.param({"X-MLflow-Signature": "v1,ëé"}, NOW, Rejection.BAD_FORMAT, id="non-ascii"),
    pytest.param({"X-MLflow-Signature": "v1,AB=="}, NOW, Rejection.BAD_FORMAT,
                 id="non-canonical-base64"),
    pytest.param({"X-MLflow-Signature": "v1,AAAA"}, NOW, Rejection.BAD_FORMAT, id="short"),
    pytest.param({"X-MLflow-Signature": OTHER_KEY}, NOW, Rejection.BAD_SIGNATURE,
                 id="other-secret"),
    pytest.param({"X-MLflow-Delivery-Id": "another-id"}, NOW, Rejection.BAD_SIGNATURE,
                 id="id-swapped"),
    pytest.param({"X-MLflow-Timestamp": str(int(TS) + 1)}, NOW, Rejection.BAD_SIGNATURE,
                 id="ts-swapped"),
    pytest.param({}, NOW + TOLERANCE + timedelta(seconds=1), Rejection.STALE_TIMESTAMP,
                 id="stale"),
    pytest.param({}, NOW - TOLERANCE - timedelta(seconds=1), Rejection.FUTURE_TIMESTAMP,
                 id="future"),
])
def test_verify(change: dict[str, str | None], now: datetime, kind: Rejection | None) -> None:
    headers: dict[str, str | None] = {**GOOD, **change}
    result = _verify(PAYLOAD, headers, now)
    if kind is None:
        assert result == Verified(DELIVERY, int(TS))
    else:
        assert isinstance(result, Rejected)
        assert result.kind is kind
        assert SECRET not in result.reason
        assert GOOD["X-MLflow-Signature"].split(",")[1] not in result.reason


def test_a_changed_body_is_a_bad_signature() -> None:
    result = _verify(PAYLOAD.replace(b'"4"', b'"5"'), dict(GOOD))
    assert isinstance(result, Rejected) and result.kind is Rejection.BAD_SIGNATURE


def test_timestamp_reasons_say_how_far_off() -> None:
    stale = _verify(PAYLOAD, dict(GOOD), NOW + timedelta(seconds=400))
    future = _verify(PAYLOAD, dict(GOOD), NOW - timedelta(seconds=400))
    assert isinstance(stale, Rejected) and "signed 400 s ago (tolerance 300 s)" in stale.reason
    assert isinstance(future, Rejected) and "400 s in the future" in future.reason


# --- replays --------------------------------------------------------------------------------

TTL = timedelta(seconds=600)


def test_replay_guard_admits_once_within_ttl() -> None:
    guard = ReplayGuard(TTL, capacity=10)
    assert guard.admit("a", NOW) is Admission.FRESH
    assert guard.admit("a", NOW + TTL - timedelta(seconds=1)) is Admission.DUPLICATE
    assert guard.admit("b", NOW) is Admission.FRESH
    assert guard.admit("a", NOW + TTL) is Admission.FRESH  # expired, then admitted anew
    assert len(guard) == 1  # "b" expired with it


def test_replay_guard_forgets_a_failed_delivery() -> None:
    guard = ReplayGuard(TTL)
    guard.admit("a", NOW)
    guard.forget("a")
    guard.forget("never-seen")
    assert guard.admit("a", NOW) is Admission.FRESH


def test_replay_guard_is_bounded_and_fails_closed() -> None:
    guard = ReplayGuard(TTL, capacity=2)
    assert [guard.admit(i, NOW) for i in "abc"] == [Admission.FRESH, Admission.FRESH,
                                                   Admission.FULL]
    assert guard.admit("a", NOW) is Admission.DUPLICATE  # still remembered when full
    assert len(guard) == 2
    assert guard.admit("c", NOW + TTL) is Admission.FRESH  # room again once they expire


def test_replay_guard_with_time_going_backwards() -> None:
    guard = ReplayGuard(TTL)
    guard.admit("late", NOW + TTL)  # expires at NOW + 2 TTL, first in line
    guard.admit("early", NOW)  # expires at NOW + TTL, behind it: not purged at NOW + TTL
    assert guard.admit("early", NOW + TTL) is Admission.FRESH
    assert len(guard) == 2


@pytest.mark.parametrize(("ttl", "capacity"), [
    pytest.param(timedelta(0), 10, id="zero-ttl"),
    pytest.param(TTL, 0, id="zero-capacity"),
])
def test_replay_guard_refuses_nonsense(ttl: timedelta, capacity: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        ReplayGuard(ttl, capacity)


# --- parse ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("payload", "expected"), [
    pytest.param(body(), Change(EventKind.ALIAS_CREATED, "model_version_alias.created",
                                "iris-clf", "4", "champion"), id="alias-created"),
    pytest.param(body("model_version_alias.deleted", name="iris-clf", alias="champion"),
                 Change(EventKind.ALIAS_DELETED, "model_version_alias.deleted", "iris-clf",
                        alias="champion"), id="alias-deleted"),
    pytest.param(body("model_version.created", name="iris-clf", version="7", source="models:/m",
                      run_id=None, tags={}, description=None),
                 Change(EventKind.VERSION_CREATED, "model_version.created", "iris-clf", "7"),
                 id="version-created"),
    pytest.param(body("model_version_tag.set", name="m", version="2", key="k", value=""),
                 Change(EventKind.TAG_SET, "model_version_tag.set", "m", "2", tag_key="k",
                        tag_value=""), id="tag-set-empty-value"),
    pytest.param(body("model_version_tag.deleted", name="m", version="2", key="k"),
                 Change(EventKind.TAG_DELETED, "model_version_tag.deleted", "m", "2",
                        tag_key="k"), id="tag-deleted"),
    pytest.param(body("registered_model.created", name="m", tags={}, description=None),
                 Change(EventKind.MODEL_CREATED, "registered_model.created", "m"),
                 id="model-created"),
    pytest.param(body("prompt.created", name="p"), Change(EventKind.OTHER, "prompt.created"),
                 id="other-event"),
])
def test_parse(payload: bytes, expected: Change) -> None:
    assert parse(payload) == expected


@pytest.mark.parametrize(("payload", "reason"), [
    pytest.param(b"\xff\xfe", "not UTF-8", id="not-utf8"),
    pytest.param(b"{", "not JSON", id="not-json"),
    pytest.param(b"[" * 100_000, "not JSON", id="nested-too-deep"),
    pytest.param(b"1" * 5000, "not JSON", id="huge-integer"),
    pytest.param(b"[]", "not a JSON object", id="not-object"),
    pytest.param(b'{"action": "created", "data": {}}', "no valid 'entity'", id="no-entity"),
    pytest.param(b'{"entity": "a b", "action": "created", "data": {}}', "no valid 'entity'",
                 id="entity-not-a-name"),
    pytest.param(b'{"entity": "' + b"e" * 100 + b'", "action": "x", "data": {}}',
                 "no valid 'entity'", id="entity-too-long"),
    pytest.param(b'{"entity": "model_version", "action": "created", "data": []}',
                 "model_version.created: 'data' is not a JSON object", id="data-not-object"),
    pytest.param(body("model_version.created", version="1"), "data.name is missing",
                 id="no-name"),
    pytest.param(body("model_version.created", name=3, version="1"), "data.name is missing",
                 id="name-not-text"),
    pytest.param(body("model_version.created", name="", version="1"), "data.name is empty",
                 id="name-empty"),
    pytest.param(body("model_version.created", name="m" * 1025, version="1"), "longer than",
                 id="name-too-long"),
    pytest.param(body("model_version.created", name="a\nb", version="1"), "control",
                 id="name-control-char"),
    pytest.param(body("model_version.created", name="\ud800", version="1"), "control",
                 id="name-lone-surrogate"),
    pytest.param(body("model_version.created", name="m", version="0"), "not a positive integer",
                 id="version-zero"),
    pytest.param(body("model_version_alias.created", name="m", version="v1", alias="a"),
                 "not a positive integer", id="version-not-number"),
    pytest.param(body("model_version_alias.created", name="m", version="1"), "data.alias",
                 id="alias-missing"),
])
def test_parse_rejects(payload: bytes, reason: str) -> None:
    result = parse(payload)
    assert isinstance(result, Rejected)
    assert result.kind is Rejection.MALFORMED_BODY
    assert reason in result.reason


@pytest.mark.parametrize(("change", "text"), [
    pytest.param(Change(EventKind.ALIAS_CREATED, "model_version_alias.created", "m", "3", "c"),
                 "model_version_alias.created m v3 @c", id="alias"),
    pytest.param(Change(EventKind.ALIAS_DELETED, "model_version_alias.deleted", "m", alias="c"),
                 "model_version_alias.deleted m @c", id="alias-deleted"),
    pytest.param(Change(EventKind.TAG_SET, "model_version_tag.set", "m", "3", tag_key="k",
                        tag_value="v"), "model_version_tag.set m v3 tag k", id="tag"),
    pytest.param(Change(EventKind.OTHER, "prompt.created"), "prompt.created", id="other"),
])
def test_describe(change: Change, text: str) -> None:
    assert change.describe() == text


# --- routing --------------------------------------------------------------------------------

ALIAS_4 = Change(EventKind.ALIAS_CREATED, "model_version_alias.created", "iris-clf", "4",
                 "champion")
CREATED_3 = Change(EventKind.VERSION_CREATED, "model_version.created", "iris-clf", "3")
ENDPOINTS = {
    "iris": make_endpoint("iris"),
    "iris-eu": make_endpoint("iris-eu", "eu"),
    "iris-challenger": make_endpoint("iris-challenger", name="iris-clf", alias="challenger"),
    "iris-pinned": make_endpoint("iris-pinned", name="iris-clf", version=3),
    "iris-pinned-2": make_endpoint("iris-pinned-2", name="iris-clf", version=2),
    "iris-staged": make_endpoint("iris-staged", name="iris-clf", stage="Production"),
    "wine": make_endpoint("wine", name="wine-clf", alias="champion"),
    "wine-pinned": make_endpoint("wine-pinned", name="wine-clf", version=3),
}


@pytest.mark.parametrize(("change", "released"), [
    pytest.param(ALIAS_4, [("iris", "ml"), ("iris-eu", "eu")], id="alias-follows-name-and-alias"),
    pytest.param(Change(EventKind.ALIAS_CREATED, "model_version_alias.created", "iris-clf", "4",
                        "Champion"), [], id="alias-case-sensitive"),
    pytest.param(Change(EventKind.ALIAS_CREATED, "model_version_alias.created", "nobody", "1",
                        "champion"), [], id="alias-other-model"),
    pytest.param(CREATED_3, [("iris-pinned", "ml")], id="version-created-pinned"),
    pytest.param(Change(EventKind.VERSION_CREATED, "model_version.created", "iris-clf", "9"), [],
                 id="version-created-unpinned"),
    pytest.param(Change(EventKind.TAG_SET, "model_version_tag.set", "iris-clf", "4",
                        tag_key="k", tag_value="v"), [], id="tag-set"),
    pytest.param(Change(EventKind.ALIAS_DELETED, "model_version_alias.deleted", "iris-clf",
                        alias="champion"), [], id="alias-deleted"),
    pytest.param(Change(EventKind.OTHER, "prompt.created"), [], id="other"),
])
def test_endpoints_following(change: Change, released: list[tuple[str, str]]) -> None:
    triggers = endpoints_following(change, ENDPOINTS)
    assert [(t.endpoint, t.namespace) for t in triggers] == released
    for trigger in triggers:
        assert trigger.version == change.version
        assert trigger.source == "webhook"
        assert trigger.spec_hash == spec_hash(ENDPOINTS[trigger.endpoint])


def test_triggers_say_why() -> None:
    [alias] = endpoints_following(ALIAS_4, {"iris": ENDPOINTS["iris"]})
    [pinned] = endpoints_following(CREATED_3, ENDPOINTS)
    assert alias.reason == "MLflow alias champion of iris-clf set to version 4"
    assert pinned.reason == "MLflow created version 3 of iris-clf, which it pins"


def test_webhook_and_watcher_request_the_same_event() -> None:
    [trigger] = endpoints_following(ALIAS_4, {"iris": ENDPOINTS["iris"]})
    watcher = ReleaseTrigger("iris", "ml", "4", spec_hash(ENDPOINTS["iris"]), "watcher", "tick")
    assert trigger.event_id == watcher.event_id


@pytest.mark.parametrize(("change", "reason"), [
    pytest.param(ALIAS_4, None, id="alias-created"),
    pytest.param(CREATED_3, None, id="version-created"),
    pytest.param(Change(EventKind.TAG_SET, "model_version_tag.set", "m", "1", tag_key="k",
                        tag_value="v"), "the pipeline tags versions itself", id="tag-set"),
    pytest.param(Change(EventKind.TAG_DELETED, "model_version_tag.deleted", "m", "1",
                        tag_key="k"), "the pipeline tags versions itself", id="tag-deleted"),
    pytest.param(Change(EventKind.ALIAS_DELETED, "model_version_alias.deleted", "m",
                        alias="a"), "names no version", id="alias-deleted"),
    pytest.param(Change(EventKind.MODEL_CREATED, "registered_model.created", "m"),
                 "registered_model.created starts no release", id="model-created"),
])
def test_ignored_reason(change: Change, reason: str | None) -> None:
    found = ignored_reason(change)
    if reason is None:
        assert found is None
    else:
        assert found is not None and reason in found
