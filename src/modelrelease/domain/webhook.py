"""MLflow registry webhooks: verify and parse a delivery, pick the endpoints it releases. Pure.

MLflow 3.17 (``mlflow/webhooks/delivery.py``) sends each delivery as a POST whose body is
``json.dumps({"entity", "action", "timestamp", "data"})`` with three headers:

- ``X-MLflow-Delivery-Id``: a fresh UUID per delivery (MLflow's own HTTP retries of one
  delivery resend the same id, timestamp and signature);
- ``X-MLflow-Timestamp``: Unix seconds, as a decimal string;
- ``X-MLflow-Signature``: ``v1,`` + base64(HMAC-SHA256(secret, ``{id}.{timestamp}.{body}``)).

:func:`verify` checks the signature in constant time and the timestamp against a tolerance;
:class:`ReplayGuard` drops a delivery id seen before; :func:`parse` turns the body into a
:class:`Change`; :func:`endpoints_following` maps it to :class:`ReleaseTrigger` values.
Nothing here reads the clock, logs or raises on bad input: every bad input is a
:class:`Rejected` value whose reason never contains the secret or the signature.

Which changes start a release (see :func:`ignored_reason` for the rest):

- ``model_version_alias.created`` (also sent when an alias moves): every endpoint whose
  model selector is that model name *and* that alias releases the event's version.
- ``model_version.created``: every endpoint pinned to that model name and version number.
- Tag events (``model_version_tag.set`` / ``model_version_tag.deleted``), alias deletions,
  ``registered_model.created`` and prompt or budget events are acknowledged and start
  nothing: the pipeline writes tags itself on every release, so releasing on tags would
  loop, and a deleted alias names no version to release. Stage transitions send no webhook
  at all; the ``watch-registry`` flow covers endpoints that follow a stage.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from modelrelease.domain.triggers import ReleaseTrigger
from modelrelease.spec import ModelEndpoint, spec_hash

DELIVERY_ID_HEADER = "X-MLflow-Delivery-Id"
TIMESTAMP_HEADER = "X-MLflow-Timestamp"
SIGNATURE_HEADER = "X-MLflow-Signature"
SIGNATURE_VERSION = "v1"
SOURCE = "webhook"
"""``ReleaseTrigger.source`` of every trigger decided here."""

_DELIVERY_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")  # no '.': it separates the signed parts
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")
_VERSION = re.compile(r"^[1-9][0-9]{0,17}$")
_MAX_TEXT = 1024
_DIGEST_SIZE = hashlib.sha256().digest_size


class Rejection(StrEnum):
    """Why a delivery is refused."""

    MISSING_HEADER = "missing_header"
    BAD_FORMAT = "bad_format"
    BAD_SIGNATURE = "bad_signature"
    STALE_TIMESTAMP = "stale_timestamp"
    FUTURE_TIMESTAMP = "future_timestamp"
    MALFORMED_BODY = "malformed_body"


@dataclass(frozen=True)
class Rejected:
    """A refused delivery: the kind, and one line saying why (no secret, no signature)."""

    kind: Rejection
    reason: str


@dataclass(frozen=True)
class Verified:
    """A delivery whose signature and timestamp checked out."""

    delivery_id: str
    timestamp: int
    """Unix seconds the sender signed."""


def _digest(secret: str, delivery_id: str, timestamp: str, body: bytes) -> bytes:
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).digest()


def signature(secret: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    """The ``X-MLflow-Signature`` value MLflow sends for this delivery (``v1,<base64>``)."""
    digest = _digest(secret, delivery_id, timestamp, body)
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def _candidates(header: str) -> list[bytes] | Rejected:
    """The ``v1`` digests in a signature header (space-separated ``version,base64`` items)."""
    digests: list[bytes] = []
    items = header.split()
    for item in items:
        version, comma, encoded = item.partition(",")
        if not comma or not version or not encoded:
            return Rejected(Rejection.BAD_FORMAT,
                            f"{SIGNATURE_HEADER} is not 'v1,<base64>' items")
        if version != SIGNATURE_VERSION:
            continue  # a newer scheme next to v1: not ours to judge
        try:
            digest = base64.b64decode(encoded.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            return Rejected(Rejection.BAD_FORMAT, f"{SIGNATURE_HEADER} v1 value is not base64")
        if base64.b64encode(digest).decode("ascii") != encoded:
            return Rejected(Rejection.BAD_FORMAT,
                            f"{SIGNATURE_HEADER} v1 value is not canonical base64")
        if len(digest) != _DIGEST_SIZE:
            return Rejected(Rejection.BAD_FORMAT,
                            f"{SIGNATURE_HEADER} v1 value is {len(digest)} bytes, "
                            f"expected {_DIGEST_SIZE} (HMAC-SHA256)")
        digests.append(digest)
    if not digests:
        return Rejected(Rejection.BAD_FORMAT,
                        f"{SIGNATURE_HEADER} holds no {SIGNATURE_VERSION} signature")
    return digests


def verify(secret: str, delivery_id: str | None, timestamp: str | None, body: bytes,
           signature_header: str | None, now: datetime,
           tolerance: timedelta) -> Verified | Rejected:
    """Check a delivery's signature and timestamp the way MLflow signs them.

    Args:
        secret: The webhook's shared secret.
        delivery_id: The ``X-MLflow-Delivery-Id`` header (None when absent).
        timestamp: The ``X-MLflow-Timestamp`` header (None when absent).
        body: The raw request body, exactly as received.
        signature_header: The ``X-MLflow-Signature`` header (None when absent).
        now: The receiver's current time (timezone-aware).
        tolerance: How far the signed timestamp may be from ``now``, either way.

    Returns:
        :class:`Verified`, or :class:`Rejected` with ``MISSING_HEADER``, ``BAD_FORMAT``,
        ``BAD_SIGNATURE``, ``STALE_TIMESTAMP`` or ``FUTURE_TIMESTAMP``. The signature is
        checked before the timestamp, so an unsigned request learns nothing about the clock.
    """
    missing = [name for name, value in ((DELIVERY_ID_HEADER, delivery_id),
                                        (TIMESTAMP_HEADER, timestamp),
                                        (SIGNATURE_HEADER, signature_header)) if not value]
    if missing:
        return Rejected(Rejection.MISSING_HEADER, f"missing header {', '.join(missing)}")
    assert delivery_id is not None and timestamp is not None and signature_header is not None
    if not _DELIVERY_ID.match(delivery_id):
        return Rejected(Rejection.BAD_FORMAT,
                        f"{DELIVERY_ID_HEADER} is not 1-128 letters, digits, '-' or '_'")
    if not _TIMESTAMP.match(timestamp):
        return Rejected(Rejection.BAD_FORMAT, f"{TIMESTAMP_HEADER} is not Unix seconds")
    candidates = _candidates(signature_header)
    if isinstance(candidates, Rejected):
        return candidates
    expected = _digest(secret, delivery_id, timestamp, body)
    matched = False
    for candidate in candidates:  # every candidate is compared: no early exit to time
        matched |= hmac.compare_digest(candidate, expected)
    if not matched:
        return Rejected(Rejection.BAD_SIGNATURE,
                        f"signature does not match (delivery {delivery_id})")
    signed_at = int(timestamp)
    skew = now.timestamp() - signed_at
    limit = tolerance.total_seconds()
    if skew > limit:
        return Rejected(Rejection.STALE_TIMESTAMP,
                        f"delivery {delivery_id} was signed {skew:.0f} s ago "
                        f"(tolerance {limit:.0f} s)")
    if -skew > limit:
        return Rejected(Rejection.FUTURE_TIMESTAMP,
                        f"delivery {delivery_id} is signed {-skew:.0f} s in the future "
                        f"(tolerance {limit:.0f} s); check both clocks")
    return Verified(delivery_id, signed_at)


# --- replays --------------------------------------------------------------------------------


class Admission(StrEnum):
    """What :meth:`ReplayGuard.admit` says of a delivery id."""

    FRESH = "fresh"
    DUPLICATE = "duplicate"
    FULL = "full"
    """The guard holds ``capacity`` live ids: refuse for now (fail closed), retry later."""


class ReplayGuard:
    """Remembers delivery ids for ``ttl``, at most ``capacity`` of them.

    Use a ``ttl`` of at least twice the timestamp tolerance: an older delivery fails
    :func:`verify` anyway, so forgetting it then opens no replay window. Memory stays
    bounded: expired ids are dropped on every call, and a full guard refuses new ids
    (``FULL``) rather than forgetting live ones. Not thread-safe; time is passed in.

    Args:
        ttl: How long an admitted id is remembered.
        capacity: How many live ids are remembered at most.
    """

    def __init__(self, ttl: timedelta, capacity: int = 10_000) -> None:
        if capacity < 1 or ttl <= timedelta(0):
            raise ValueError("ReplayGuard needs a positive ttl and capacity")
        self.ttl = ttl
        self.capacity = capacity
        self._expiry: OrderedDict[str, datetime] = OrderedDict()

    def __len__(self) -> int:
        return len(self._expiry)

    def _purge(self, now: datetime) -> None:
        while self._expiry:
            oldest, expiry = next(iter(self._expiry.items()))
            if expiry > now:
                return
            del self._expiry[oldest]

    def admit(self, delivery_id: str, now: datetime) -> Admission:
        """Admit ``delivery_id`` once; the same id again within ``ttl`` is a duplicate."""
        self._purge(now)
        expiry = self._expiry.get(delivery_id)
        if expiry is not None and expiry > now:
            return Admission.DUPLICATE
        if len(self._expiry) >= self.capacity:
            return Admission.FULL
        self._expiry.pop(delivery_id, None)
        self._expiry[delivery_id] = now + self.ttl
        return Admission.FRESH

    def forget(self, delivery_id: str) -> None:
        """Forget an admitted id whose handling failed, so the sender's retry is handled."""
        self._expiry.pop(delivery_id, None)


# --- bodies ---------------------------------------------------------------------------------


class EventKind(StrEnum):
    """The MLflow webhook events the receiver understands (``entity.action``)."""

    ALIAS_CREATED = "model_version_alias.created"
    ALIAS_DELETED = "model_version_alias.deleted"
    VERSION_CREATED = "model_version.created"
    TAG_SET = "model_version_tag.set"
    TAG_DELETED = "model_version_tag.deleted"
    MODEL_CREATED = "registered_model.created"
    OTHER = "other"
    """Any other valid event (prompts, budgets): acknowledged, never a release."""


RELEASING: frozenset[EventKind] = frozenset({EventKind.ALIAS_CREATED, EventKind.VERSION_CREATED})
"""The events that may start a release; ``modelrelease webhook register`` subscribes to these."""

_FIELDS: dict[EventKind, tuple[str, ...]] = {
    EventKind.ALIAS_CREATED: ("name", "alias", "version"),
    EventKind.ALIAS_DELETED: ("name", "alias"),
    EventKind.VERSION_CREATED: ("name", "version"),
    EventKind.TAG_SET: ("name", "version", "key", "value"),
    EventKind.TAG_DELETED: ("name", "version", "key"),
    EventKind.MODEL_CREATED: ("name",),
    EventKind.OTHER: (),
}
_EMPTY_ALLOWED = frozenset({"value"})  # MLflow allows a tag with an empty value


@dataclass(frozen=True)
class Change:
    """What happened in the registry, as one delivery tells it."""

    kind: EventKind
    event: str
    """``entity.action`` as sent (differs from ``kind`` only for ``OTHER``)."""
    name: str | None = None
    """The registered model's name."""
    version: str | None = None
    """The model version (a positive integer, as text)."""
    alias: str | None = None
    tag_key: str | None = None
    tag_value: str | None = None

    def describe(self) -> str:
        """One line: the event and what it names."""
        parts = [self.event]
        if self.name is not None:
            parts.append(self.name if self.version is None else f"{self.name} v{self.version}")
        if self.alias is not None:
            parts.append(f"@{self.alias}")
        if self.tag_key is not None:
            parts.append(f"tag {self.tag_key}")
        return " ".join(parts)


def _malformed(reason: str) -> Rejected:
    return Rejected(Rejection.MALFORMED_BODY, reason)


def _text(data: Mapping[str, object], field: str, event: str) -> str | Rejected:
    value = data.get(field)
    if not isinstance(value, str):
        return _malformed(f"{event}: data.{field} is missing or not a string")
    if not value and field not in _EMPTY_ALLOWED:
        return _malformed(f"{event}: data.{field} is empty")
    if len(value) > _MAX_TEXT or not value.isprintable():
        return _malformed(f"{event}: data.{field} is longer than {_MAX_TEXT} characters "
                          "or holds control characters")
    if field == "version" and not _VERSION.match(value):
        return _malformed(f"{event}: data.version is not a positive integer")
    return value


def parse(body: bytes) -> Change | Rejected:
    """Parse a delivery's body into a :class:`Change`.

    Returns:
        The change, or :class:`Rejected` (``MALFORMED_BODY``) naming the first problem:
        not UTF-8 JSON, not an object, no ``entity``/``action``, ``data`` not an object,
        or a field the event needs missing, empty, too long or not text.
    """
    try:
        document = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        return _malformed("body is not UTF-8")
    except (ValueError, RecursionError):
        return _malformed("body is not JSON")
    if not isinstance(document, dict):
        return _malformed("body is not a JSON object")
    entity, action = document.get("entity"), document.get("action")
    if not (isinstance(entity, str) and isinstance(action, str) and entity and action
            and len(entity) + len(action) <= 100 and f"{entity}{action}".isidentifier()):
        return _malformed("body has no valid 'entity' and 'action' (e.g. model_version_alias, "
                          "created)")
    event = f"{entity}.{action}"
    data = document.get("data")
    if not isinstance(data, dict):
        return _malformed(f"{event}: 'data' is not a JSON object")
    kind = next((k for k in EventKind if k.value == event), EventKind.OTHER)
    fields: dict[str, str] = {}
    for field in _FIELDS[kind]:
        value = _text(data, field, event)
        if isinstance(value, Rejected):
            return value
        fields[field] = value
    return Change(kind=kind, event=event, name=fields.get("name"),
                  version=fields.get("version"), alias=fields.get("alias"),
                  tag_key=fields.get("key"), tag_value=fields.get("value"))


# --- routing --------------------------------------------------------------------------------


def ignored_reason(change: Change) -> str | None:
    """Why ``change`` starts no release whatever the endpoints say, or None if it may."""
    if change.kind in RELEASING:
        return None
    if change.kind in (EventKind.TAG_SET, EventKind.TAG_DELETED):
        return (f"{change.event} starts no release: the pipeline tags versions itself; "
                "move an alias to release")
    if change.kind is EventKind.ALIAS_DELETED:
        return f"{change.event} starts no release: a deleted alias names no version"
    return f"{change.event} starts no release"


def endpoints_following(change: Change,
                        endpoints: Mapping[str, ModelEndpoint]) -> list[ReleaseTrigger]:
    """The releases ``change`` asks for, one per endpoint that follows it, by endpoint name.

    Args:
        change: A parsed delivery.
        endpoints: ModelEndpoint specs by endpoint name (``load_endpoints``).

    Returns:
        For ``model_version_alias.created``, the endpoints whose selector is that model and
        that alias; for ``model_version.created``, those pinned to that model and version;
        nothing for any other event (see :func:`ignored_reason`).
    """
    if change.kind not in RELEASING:
        return []
    assert change.name is not None and change.version is not None
    triggers = []
    for name in sorted(endpoints):
        endpoint = endpoints[name]
        model = endpoint.spec.model
        if model.name != change.name:
            continue
        if change.kind is EventKind.ALIAS_CREATED:
            if model.alias != change.alias:
                continue
            reason = f"MLflow alias {change.alias} of {change.name} set to version {change.version}"
        else:
            if model.version != int(change.version):
                continue
            reason = f"MLflow created version {change.version} of {change.name}, which it pins"
        triggers.append(ReleaseTrigger(endpoint=name, namespace=endpoint.namespace,
                                       version=change.version, spec_hash=spec_hash(endpoint),
                                       source=SOURCE, reason=reason))
    return triggers
