"""Property tests over the webhook receiver's pure half (hypothesis).

- Any mutation of a validly signed delivery (a body byte changed, added or removed; one
  character of the delivery id, timestamp or signature changed; another secret) is rejected.
- Garbage in any input of ``verify`` or ``parse`` never raises: it is a typed ``Rejected``.
- Valid MLflow bodies parse to the change they describe, and map to exactly the endpoints
  following that model and alias.
- The replay guard agrees with a plain dictionary model and never grows past its capacity.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelrelease.domain.webhook import (
    Admission,
    Change,
    EventKind,
    Rejected,
    Rejection,
    ReplayGuard,
    Verified,
    endpoints_following,
    parse,
    signature,
    verify,
)
from tests.unit.test_spec_properties import aliases, model_names
from tests.unit.test_webhook import NOW, SECRET, TOLERANCE, TS, body, make_endpoint

PROFILE = settings(max_examples=300, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow])
versions = st.integers(min_value=1, max_value=10**6).map(str)
delivery_ids = st.uuids().map(str)


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[str, str, bytes, str]:
    """A valid signed alias delivery: (delivery id, timestamp, body, signature)."""
    payload = body(name=draw(model_names), alias=draw(aliases), version=draw(versions))
    delivery = draw(delivery_ids)
    return delivery, TS, payload, signature(SECRET, delivery, TS, payload)


def _check(delivery: str, ts: str, payload: bytes, header: str,
           secret: str = SECRET) -> Verified | Rejected:
    return verify(secret, delivery, ts, payload, header, NOW, TOLERANCE)


def _substitute(text: str, data: st.DataObject) -> str:
    index = data.draw(st.integers(0, len(text) - 1))
    other = data.draw(st.characters().filter(lambda c: c != text[index]))
    return text[:index] + other + text[index + 1:]


@PROFILE
@given(deliveries())
def test_valid_deliveries_verify(delivery: tuple[str, str, bytes, str]) -> None:
    assert isinstance(_check(*delivery), Verified)


@PROFILE
@given(deliveries(), st.data())
def test_any_body_mutation_is_a_bad_signature(delivery: tuple[str, str, bytes, str],
                                              data: st.DataObject) -> None:
    delivery_id, ts, payload, header = delivery
    index = data.draw(st.integers(0, len(payload) - 1))
    byte = data.draw(st.integers(0, 255).map(lambda b: bytes([b])))
    mutated = data.draw(st.sampled_from([
        payload[:index] + byte + payload[index + 1:],  # changed
        payload[:index] + byte + payload[index:],  # inserted
        payload[:index] + payload[index + 1:],  # removed
    ]))
    result = _check(delivery_id, ts, mutated, header)
    assert mutated == payload or (isinstance(result, Rejected)
                                  and result.kind is Rejection.BAD_SIGNATURE)


@PROFILE
@given(deliveries(), st.sampled_from(["delivery", "timestamp", "signature"]), st.data())
def test_any_header_mutation_is_rejected(delivery: tuple[str, str, bytes, str], which: str,
                                         data: st.DataObject) -> None:
    headers = dict(zip(("delivery", "timestamp", "signature"),
                       (delivery[0], delivery[1], delivery[3]), strict=True))
    headers[which] = _substitute(headers[which], data)
    result = _check(headers["delivery"], headers["timestamp"], delivery[2],
                    headers["signature"])
    assert isinstance(result, Rejected)
    assert result.kind in (Rejection.BAD_SIGNATURE, Rejection.BAD_FORMAT)


@PROFILE
@given(deliveries(), st.text(min_size=1))
def test_another_secret_is_a_bad_signature(delivery: tuple[str, str, bytes, str],
                                           secret: str) -> None:
    result = _check(*delivery, secret=secret)
    assert secret == SECRET or (isinstance(result, Rejected)
                                and result.kind is Rejection.BAD_SIGNATURE)


headers = st.one_of(st.none(), st.text(max_size=80),
                    st.text(alphabet="v1,=+/ ABCDEFabcdef0123456789", max_size=80))


@PROFILE
@given(headers, headers, st.binary(max_size=300), headers, st.integers(-(10**8), 10**8))
def test_garbage_headers_are_rejected_not_raised(delivery: str | None, ts: str | None,
                                                 payload: bytes, header: str | None,
                                                 now_offset: int) -> None:
    result = verify(SECRET, delivery, ts, payload, header,
                    NOW + timedelta(seconds=now_offset), TOLERANCE)
    assert isinstance(result, Rejected)
    assert SECRET not in result.reason


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20)
event_names = st.sampled_from([kind.value for kind in EventKind if kind is not EventKind.OTHER]
                              + ["prompt.created", "x.y"])


@PROFILE
@given(st.one_of(
    st.binary(max_size=500),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.tuples(event_names, json_values).map(
        lambda ev: json.dumps({"entity": ev[0].split(".")[0], "action": ev[0].split(".")[1],
                               "data": ev[1]}).encode()),
    st.tuples(event_names, st.dictionaries(
        st.sampled_from(["name", "version", "alias", "key", "value"]), json_values)).map(
        lambda ev: body(ev[0], **ev[1]) if ev[1] else b"{}"),
))
def test_garbage_bodies_are_rejected_not_raised(payload: bytes) -> None:
    result = parse(payload)
    assert isinstance(result, (Change, Rejected))
    if isinstance(result, Rejected):
        assert result.kind is Rejection.MALFORMED_BODY


ENDPOINT_CACHE = {
    (name, alias): make_endpoint(f"e{index}", name=name, alias=alias)
    for index, (name, alias) in enumerate([("iris-clf", "champion"), ("iris-clf", "challenger"),
                                           ("wine", "champion")])
}


@PROFILE
@given(st.sampled_from(["iris-clf", "wine", "other"]),
       st.sampled_from(["champion", "challenger", "x"]), versions)
def test_alias_changes_map_to_exactly_the_followers(name: str, alias: str, version: str) -> None:
    change = parse(body(name=name, alias=alias, version=version))
    assert change == Change(EventKind.ALIAS_CREATED, "model_version_alias.created", name,
                            version, alias)
    endpoints = {endpoint.name: endpoint for endpoint in ENDPOINT_CACHE.values()}
    released = {t.endpoint for t in endpoints_following(change, endpoints)}
    assert released == {e.name for (n, a), e in ENDPOINT_CACHE.items()
                        if (n, a) == (name, alias)}
    assert all(t.version == version for t in endpoints_following(change, endpoints))


@PROFILE
@given(st.lists(st.tuples(st.sampled_from("abcdef"), st.integers(0, 400)), max_size=60),
       st.integers(1, 4))
def test_replay_guard_matches_a_plain_model(ops: list[tuple[str, int]], capacity: int) -> None:
    ttl = timedelta(seconds=600)
    guard = ReplayGuard(ttl, capacity)
    expiry: dict[str, object] = {}
    now = NOW
    for delivery, step in ops:
        now += timedelta(seconds=step)
        live = {k: v for k, v in expiry.items() if v > now}  # type: ignore[operator]
        got = guard.admit(delivery, now)
        if delivery in live:
            assert got is Admission.DUPLICATE
        elif len(live) >= capacity:
            assert got is Admission.FULL
        else:
            assert got is Admission.FRESH
            live[delivery] = now + ttl
        expiry = live
        assert len(guard) <= capacity


def test_uuid_delivery_ids_are_valid() -> None:
    delivery = str(uuid.uuid4())
    payload = body()
    assert isinstance(_check(delivery, TS, payload, signature(SECRET, delivery, TS, payload)),
                      Verified)
