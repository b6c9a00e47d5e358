"""The custom resource's status: the durable record of an endpoint's releases."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    ConfigDict,
    Field,
)

from modelrelease.spec.values import HISTORY_LIMIT, Fault, SpecModel, Weight

# --- status -----------------------------------------------------------------------------------


class ReleasePhase(StrEnum):
    """Where an endpoint's release stands.

    The release state machine's phases (``modelrelease.domain.rollout``), as the custom
    resource's status records them.
    """

    PENDING = "Pending"
    DEPLOYING = "Deploying"
    SMOKE = "Smoke"
    ANALYSING = "Analysing"
    AWAITING_APPROVAL = "AwaitingApproval"  # a passed step waits for a person's approval
    PROMOTING = "Promoting"
    BAKING = "Baking"  # promoted; the new primary's live traffic is watched, the previous warm
    ROLLING_BACK = "RollingBack"
    PROMOTED = "Promoted"
    ROLLED_BACK = "RolledBack"

    @property
    def terminal(self) -> bool:
        """Whether the release is over."""
        return self in (ReleasePhase.PROMOTED, ReleasePhase.ROLLED_BACK)

    @property
    def in_flight(self) -> bool:
        """Whether a release is under way (neither over nor not yet started)."""
        return not self.terminal and self is not ReleasePhase.PENDING


class Outcome(StrEnum):
    """A judgement's outcome: too few samples is inconclusive, never a pass."""

    PASSED = "Passed"
    FAILED = "Failed"
    INCONCLUSIVE = "Inconclusive"


class TrackStatus(SpecModel):
    """The model version and image one track serves."""

    version: str
    """MLflow model version."""
    digest: str | None = None
    """Image digest (``sha256:...``)."""
    image: str | None = None
    """Full image reference, pinned by digest."""


class Verdict(SpecModel):
    """The last judgement, with its numbers."""

    outcome: Outcome
    """Passed, Failed or Inconclusive."""
    reasons: list[str] = Field(default_factory=list)
    """Why, one line each."""
    numbers: dict[str, float] = Field(default_factory=dict)
    """The figures behind it (p99_ms_canary, error_rate_primary, ...)."""


class HistoryEntry(SpecModel):
    """One past release."""

    release_id: str
    """The release's id."""
    version: str
    """MLflow model version released."""
    phase: ReleasePhase
    """How it ended (or where it stopped)."""
    digest: str | None = None
    """Image digest."""
    reason: str | None = None
    """Why it ended that way."""
    finished_at: datetime | None = None
    """When it ended."""
    spec_hash: str | None = None
    """``spec_hash`` of the spec it was released with."""


class DrillRecord(SpecModel):
    """The last rollback drill: did the pipeline catch its fault and undo it, and how fast."""

    finished_at: datetime
    """When it ended."""
    fault: Fault
    """What its canary did wrong."""
    passed: bool
    """Whether every part held: fault detected, rolled back, primary served throughout,
    previous version still restorable."""
    time_to_detect_s: Annotated[float, Field(ge=0)] | None = None
    """Seconds from the faulty canary's start to the rollback decision."""
    time_to_restore_s: Annotated[float, Field(ge=0)] | None = None
    """Seconds from the rollback decision to the primary serving alone."""
    version: str | None = None
    """The model version drilled (the primary's)."""
    previous_version: str | None = None
    """The version a rollback would go back to, checked restorable."""
    release_id: str | None = None
    """The drill's release id."""
    reason: str = ""
    """Why it passed or failed, one line per part that did not hold."""


class Condition(SpecModel):
    """A Kubernetes-style condition."""

    type: str
    """Condition type, e.g. Ready."""
    status: Literal["True", "False", "Unknown"]
    """True, False or Unknown."""
    reason: str | None = None
    """One CamelCase word."""
    message: str | None = None
    """Human-readable detail."""
    last_transition_time: datetime | None = None
    """When status last changed."""
    observed_generation: int | None = None
    """The generation the condition was computed for."""


class ModelEndpointStatus(SpecModel):
    """The durable release record, read by a restarted flow to resume or roll back."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-preserve-unknown-fields": True})

    phase: ReleasePhase | None = None
    """Where the current or last release stands."""
    release_id: str | None = None
    """The current or last release."""
    reason: Annotated[str, Field(max_length=1000)] | None = None
    """Why the current or last release is where it is (a rollback's cause, kept so that a
    re-run finishing a rollback tags it with the same cause)."""
    step: Annotated[int, Field(ge=0)] | None = None
    """Index of the current canary step."""
    weight: Weight = 0
    """Canary's share of live traffic now, in percent (effective, not requested)."""
    primary: TrackStatus | None = None
    """What the primary serves."""
    canary: TrackStatus | None = None
    """What the canary serves, while there is one."""
    last_verdict: Verdict | None = None
    """The last judgement."""
    history: Annotated[list[HistoryEntry], Field(max_length=HISTORY_LIMIT)] = Field(
        default_factory=list)
    """Past releases, newest last (the oldest are dropped beyond the limit)."""
    conditions: list[Condition] = Field(default_factory=list)
    """Kubernetes-style conditions."""
    observed_generation: int | None = None
    """The spec generation this status describes."""
    spec_hash: str | None = None
    """``spec_hash`` of the spec the primary was released with."""
    cost_per_hour: Annotated[float, Field(ge=0)] | None = None
    """Estimated cost per hour of the endpoint's replicas (primary and canary), from the
    price table."""
    last_drill: DrillRecord | None = None
    """The last rollback drill's result and times."""
    aborted_by: str | None = None
    """Who stopped the current or last release in flight (``modelrelease abort``, a Prefect
    cancel, Ctrl-C), if anyone: a re-run that finishes its rollback still says so."""

    def with_history(self, entry: HistoryEntry) -> ModelEndpointStatus:
        """This status with ``entry`` appended, dropping the oldest beyond the limit."""
        history = [*self.history, entry][-HISTORY_LIMIT:]
        return self.model_copy(update={"history": history})
