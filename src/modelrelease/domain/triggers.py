"""What starts a release by itself: the watcher's decision and the Prefect event. Pure.

Both automatic paths (the MLflow webhook bridge and the ``watch-registry`` flow) end in
the same :class:`ReleaseTrigger`, whose Prefect event id is derived from
``(namespace, endpoint, version, spec hash)``. Prefect's trigger service ignores an event
id it has already seen, so one change seen by both paths, or twice by one, starts one
``release`` run, not two; the release itself is idempotent by the same key as well.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modelrelease.spec import ModelEndpointStatus, ReleasePhase

RELEASE_REQUESTED = "modelrelease.release.requested"
"""The Prefect event the ``release`` deployment's trigger expects."""
RESOURCE_PREFIX = "modelrelease.endpoint."
"""Events' ``prefect.resource.id`` is this plus ``NAMESPACE.ENDPOINT``."""
_EVENT_NAMESPACE = uuid.UUID("5b0c3f4e-8d1a-4a51-9a53-6d1d8e2f7a10")



@dataclass(frozen=True)
class ReleaseTrigger:
    """A request to release ``version`` of the model behind one endpoint."""

    endpoint: str
    """The endpoint's name (its file under the endpoints directory)."""
    namespace: str
    """The endpoint's namespace."""
    version: str
    """MLflow model version to release."""
    spec_hash: str
    """``spec_hash`` of the endpoint file it was decided against."""
    source: str
    """Who noticed: ``webhook`` or ``watcher``."""
    reason: str
    """One line: what changed."""

    @property
    def key(self) -> str:
        """``NAMESPACE/ENDPOINT@VERSION#SPEC_HASH``: one release, whoever asks for it."""
        return f"{self.namespace}/{self.endpoint}@{self.version}#{self.spec_hash}"

    @property
    def event_id(self) -> uuid.UUID:
        """The event id, the same for every trigger with the same key."""
        return uuid.uuid5(_EVENT_NAMESPACE, self.key)

    def event(self, occurred: datetime) -> dict[str, Any]:
        """The Prefect event (JSON-ready) a ``release`` trigger turns into a run."""
        return {
            "id": str(self.event_id),
            "occurred": occurred.isoformat(),
            "event": RELEASE_REQUESTED,
            "resource": {
                "prefect.resource.id": f"{RESOURCE_PREFIX}{self.namespace}.{self.endpoint}",
                "prefect.resource.name": self.endpoint,
            },
            "payload": {"endpoint": self.endpoint,
                        "version": int(self.version) if self.version.isdigit() else self.version,
                        "source": self.source, "reason": self.reason, "key": self.key},
            "related": [],
        }


@dataclass(frozen=True)
class WatchDecision:
    """Whether the watcher starts a release of an endpoint, and why (or why not)."""

    release: bool
    reason: str


def watch_decision(target: str, spec_hash: str,
                   status: ModelEndpointStatus | None) -> WatchDecision:
    """Decide whether MLflow's ``target`` version differs from what the endpoint runs.

    Args:
        target: The version the endpoint's model selector resolves to now.
        spec_hash: ``spec_hash`` of the endpoint file now.
        status: The ModelEndpoint's status in the cluster (None before any release).

    Returns:
        ``release=False`` when the target is already primary with this spec, is being
        released now, or was already tried with this spec and not promoted (a release
        that was rolled back is not retried on every tick: move the alias to another
        version, change the spec, or start it by hand).
    """
    if status is None or status.phase is None:
        return WatchDecision(True, f"version {target} selected, nothing released yet")
    primary = status.primary.version if status.primary is not None else None
    if primary == target and status.spec_hash == spec_hash:
        return WatchDecision(False, f"version {target} is primary with this spec")
    if not status.phase.terminal:
        busy = status.canary.version if status.canary is not None else "?"
        return WatchDecision(False, f"a release (version {busy}) is in progress "
                                    f"({status.phase.value}); the next tick looks again")
    for entry in reversed(status.history):
        if (entry.version == target and entry.spec_hash == spec_hash
                and entry.phase != ReleasePhase.PROMOTED):
            return WatchDecision(False, f"version {target} with this spec already ended "
                                        f"{entry.phase.value}: {entry.reason or 'no reason'}; "
                                        "select another version or release it by hand")
    if primary is None:
        return WatchDecision(True, f"version {target} selected, no primary yet")
    if primary == target:
        return WatchDecision(True, f"version {target} is primary, but the spec changed")
    return WatchDecision(True, f"version {target} selected, primary is {primary}")
