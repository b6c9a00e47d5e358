"""Shadow traffic: copies of live requests that a primary sends its canary. Pure.

While a shadow step holds, each primary pod copies a share of the live ``/invocations``
requests it answers to the canary's Service (``modelrelease.serving.shadow``). The copy
leaves after the user has the primary's answer, from a bounded queue that drops (and
counts) what it cannot send, so the user's answer is never delayed or changed. The
canary's answer is compared with the primary's and both are recorded by request id: as
digests, and as payloads only when the setting allows it. Nobody ever sees the canary's
answer.

**What is copied.** Live ``POST /invocations`` only: the judge's generated load (the
``X-Modelrelease-Load`` header) and copies themselves (``X-Modelrelease-Shadow``) never
are. The share is exact, not drawn: :func:`copies` picks request ``n`` when
``floor((n + 1) * p / 100) > floor(n * p / 100)``, so any run of 100 requests holds ``p``
copies.

**How a pod is told.** ``PUT /modelrelease/shadow`` on the pod's own port, with
``X-Modelrelease-Shadow-Token: $MODELRELEASE_SHADOW_TOKEN`` and a JSON body
(:func:`parse_setting`); ``DELETE`` turns it off and ``GET`` reads the setting, the counts
and the records. Nothing restarts. The target is fixed when the pod starts
(``MODELRELEASE_SHADOW_TARGET``, the canary Service of the pod's own endpoint), so the
control can choose how much is copied, never where to. A setting ends by itself after
its ``seconds``: a pipeline that dies mid-step leaves no pod copying for ever.

**Agreement.** Two answers agree when their predictions are equal (:func:`answer_digest`:
the ``predictions`` of a JSON answer, canonicalised, else the raw body). Only copies that
both tracks answered with a 2xx are compared; the others are the canary's errors.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from modelrelease.domain.analysis import (
    AnalysisPolicy,
    ArmSamples,
    ArmStats,
    Check,
    CheckStatus,
    Metric,
    Outcome,
    Samples,
    error_rate,
    evaluate,
)
from modelrelease.domain.live import LiveOutcome
from modelrelease.errors import InvalidInput

SHADOW_HEADER: Final = "X-Modelrelease-Shadow"
"""The header a copy carries (its value is the request id); the canary counts it apart."""
SERVED_HEADER: Final = "X-Modelrelease-Served-Ms"
"""On a copy's answer: how long the canary took to start answering, in its own process
(measured as the primary measures its own), so both tracks' times compare like for like."""
REQUEST_ID_HEADER: Final = "X-Request-Id"
"""The user's request id, kept on the copy; one is made when the request has none."""
TARGET_ENV: Final = "MODELRELEASE_SHADOW_TARGET"
"""Where a primary pod sends copies (the canary Service's URL), fixed at the pod's start."""
TOKEN_ENV: Final = "MODELRELEASE_SHADOW_TOKEN"
"""The token ``/modelrelease/shadow`` asks for; without it the control is off."""
TOKEN_HEADER: Final = "X-Modelrelease-Shadow-Token"
"""Where a caller of ``/modelrelease/shadow`` puts the token (not ``Authorization``: the
API server's pod proxy takes that header as the caller's own credentials)."""
CONTROL_PATH: Final = "/modelrelease/shadow"
MAX_SECONDS: Final = 86_400
_KEYS: Final = frozenset({"percent", "seconds", "payloads"})
_FORM: Final = '{"percent": 100, "seconds": 300, "payloads": false}'


@dataclass(frozen=True)
class ShadowSetting:
    """How much of the live traffic a primary pod copies to the canary, and until when."""

    percent: int
    """The share of live ``/invocations`` requests copied, 1..100."""
    until: float
    """When copying stops by itself, in the pod's wall-clock seconds (``time.time()``)."""
    payloads: bool = False
    """Whether records keep the request and both answers, not only their digests."""

    def active(self, now: float) -> bool:
        """Whether the setting still holds at ``now``."""
        return now < self.until

    def as_json(self, now: float) -> dict[str, Any]:
        """The setting as ``GET /modelrelease/shadow`` shows it."""
        return {"percent": self.percent, "seconds_left": round(max(0.0, self.until - now), 1),
                "payloads": self.payloads}


def parse_setting(body: Any, now: float) -> ShadowSetting:
    """A ``PUT /modelrelease/shadow`` body as a setting that holds from ``now``.

    Raises:
        InvalidInput: Not an object, an unknown key, a percent outside 1..100, seconds
            outside 1..86400, or a ``payloads`` that is not a boolean; the message shows
            the form.
    """
    def bad(why: str) -> InvalidInput:
        return InvalidInput(f"set shadow: {why}; send e.g. {_FORM}")

    if not isinstance(body, Mapping):
        raise bad(f"the body must be a JSON object, got {type(body).__name__}")
    unknown = sorted(set(body) - _KEYS)
    if unknown:
        raise bad(f"unknown key {', '.join(map(repr, unknown))} (known: percent, seconds, "
                  "payloads)")
    percent, seconds = body.get("percent"), body.get("seconds")
    if isinstance(percent, bool) or not isinstance(percent, int) or not 1 <= percent <= 100:
        raise bad(f"percent must be a whole number from 1 to 100, got {percent!r}")
    if (isinstance(seconds, bool) or not isinstance(seconds, int | float)
            or not 1 <= seconds <= MAX_SECONDS):
        raise bad(f"seconds must be a number from 1 to {MAX_SECONDS}, got {seconds!r}")
    payloads = body.get("payloads", False)
    if not isinstance(payloads, bool):
        raise bad(f"payloads must be true or false, got {payloads!r}")
    return ShadowSetting(percent, now + float(seconds), payloads)


def copies(seen: int, percent: int) -> bool:
    """Whether the live request numbered ``seen`` (from 0) is copied at ``percent``.

    Exact, not drawn: of any ``100`` requests in a row, ``percent`` are copied, spread
    as evenly as whole requests allow.
    """
    return (seen + 1) * percent // 100 > seen * percent // 100


def answer_digest(body: bytes) -> str:
    """What two answers must share to agree: a digest of their predictions.

    A JSON answer's ``predictions`` (or the whole JSON value when it has none), with keys
    sorted and no whitespace; any other body as it is.
    """
    try:
        value = json.loads(body)
    except ValueError:
        canonical = body
    else:
        if isinstance(value, dict) and "predictions" in value:
            value = value["predictions"]
        canonical = json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(canonical).hexdigest()[:32]


@dataclass(frozen=True)
class ShadowRecord:
    """One copied request: both tracks' answers, by request id."""

    seq: int
    """The record's number in its pod, from 1 (``GET ?after=`` pages by it)."""
    request_id: str
    primary_status: int
    primary_digest: str
    canary_status: int | None
    """The canary's HTTP status; None when the copy got no answer (see ``error``)."""
    canary_ms: float | None
    """From sending the copy to the canary's whole answer, as the primary pod saw it."""
    canary_digest: str | None
    error: str | None = None
    """Why the copy got no answer (refused, timed out)."""
    payloads: tuple[str, str, str] | None = None
    """The request and both answers (text), when the setting allowed it."""
    primary_ms: float | None = None
    """How long the primary took to start answering the user, in its own process."""

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> ShadowRecord:
        """A record as :meth:`as_json` lists it."""
        primary, canary = item["primary"], item["canary"]
        texts = (str(item["input"]), str(primary["body"]), str(canary["body"])) \
            if "input" in item else None
        return cls(int(item["seq"]), str(item["request_id"]), int(primary["status"]),
                   str(primary["digest"]), canary["status"], canary["ms"], canary["digest"],
                   error=canary.get("error"), payloads=texts, primary_ms=primary.get("ms"))

    @property
    def agree(self) -> bool | None:
        """Whether the answers agree; None unless both tracks answered with a 2xx."""
        if not (_ok(self.primary_status) and self.canary_status is not None
                and _ok(self.canary_status)):
            return None
        return self.primary_digest == self.canary_digest

    @property
    def canary_failed(self) -> bool:
        """The canary gave no answer, or an error where the primary answered."""
        return self.canary_status is None or (_ok(self.primary_status)
                                              and not _ok(self.canary_status))

    def as_json(self) -> dict[str, Any]:
        """The record as ``GET /modelrelease/shadow`` lists it."""
        out: dict[str, Any] = {
            "seq": self.seq, "request_id": self.request_id,
            "primary": {"status": self.primary_status, "digest": self.primary_digest,
                        "ms": None if self.primary_ms is None else round(self.primary_ms, 3)},
            "canary": {"status": self.canary_status, "digest": self.canary_digest,
                       "ms": None if self.canary_ms is None else round(self.canary_ms, 3)},
            "agree": self.agree}
        if self.error is not None:
            out["canary"]["error"] = self.error
        if self.payloads is not None:
            out["input"], out["primary"]["body"], out["canary"]["body"] = self.payloads
        return out


def _ok(status: int) -> bool:
    return 200 <= status < 300


_LEAST_MS: Final = 0.001  # the judge takes positive latencies; a 0 ms reading is 1 us


@dataclass(frozen=True)
class ShadowEvidence:
    """What a shadow step's copies showed: the judge's verdict on them, and agreement."""

    outcome: LiveOutcome
    reason: str
    copies: int = 0
    """Copies the canary answered or failed (records read from the primary's pods)."""
    percent: int = 100
    """The share of live requests the step asked the primary's pods to copy."""
    dropped: int = 0
    """Copies the primary's pods could not send (their queues were full)."""
    compared: int = 0
    disagreed: int = 0
    canary: ArmStats | None = None
    primary: ArmStats | None = None

    @property
    def check(self) -> Check:
        """The copies as one check of the step (``domain.verdict``): FAIL stops it."""
        status = {LiveOutcome.FAIL: CheckStatus.FAIL, LiveOutcome.PASS: CheckStatus.PASS}.get(
            self.outcome, CheckStatus.NO_DATA)
        return Check(Metric.SHADOW, status, None, None, None, None, None, self.reason)

    @property
    def source(self) -> str:
        """``shadow (N copies of live requests)``, for the report's evidence column."""
        return f"shadow ({self.copies} copies of live requests)"

    @property
    def numbers(self) -> dict[str, float]:
        """The figures for the status's ``lastVerdict.numbers``."""
        out = {"shadow_copies": float(self.copies), "shadow_dropped": float(self.dropped),
               "shadow_compared": float(self.compared),
               "shadow_disagreed": float(self.disagreed)}
        for arm, figures in (("canary", self.canary), ("primary", self.primary)):
            if figures is not None and figures.p95_ms is not None:
                out[f"shadow_{arm}_p95_ms"] = figures.p95_ms
        return out


def judge_shadow(records: Sequence[ShadowRecord], dropped: int, policy: AnalysisPolicy,
                 *, min_agreement: float, min_rows: int, percent: int = 100
                 ) -> ShadowEvidence:
    """Judge a shadow step's copies: the canary's answers to real inputs against the user's.

    The records pair, per copied request, the primary's answer to its user and the
    canary's to the copy, each timed in its own process. They are judged once, with the
    step's ``policy`` as one look (latency regression and tails, error rate and error
    regression, the SLOs); a copy with no answer is a canary error. Answers are compared
    where both tracks answered with a 2xx: fewer than ``min_agreement`` of them alike,
    over at least ``min_rows``, fails the step. Too few copies for the plan
    (``policy.min_requests``): only the error rate is tested (a canary that fails most of
    a few copies fails); otherwise THIN, reported, the step judged without them.
    """
    n = len(records)
    if n == 0:
        why = (f"; {dropped} could not be sent" if dropped else "")
        return ShadowEvidence(LiveOutcome.THIN, "shadow: no live request was copied to the "
                              "canary during the step (nobody called the endpoint)" + why,
                              percent=percent, dropped=dropped)
    compared = [r for r in records if r.agree is not None]
    disagreed = sum(1 for r in compared if not r.agree)
    canary = ArmSamples.of((max(r.canary_ms or 0.0, _LEAST_MS), not r.canary_failed)
                           for r in records)
    primary = ArmSamples.of((max(r.primary_ms or 0.0, _LEAST_MS), 200 <= r.primary_status < 500)
                            for r in records)
    once = policy.model_copy(update={"looks": 1, "max_requests": max(n, policy.min_requests)})
    verdict = evaluate(Samples(canary, primary), once)

    def found(outcome: LiveOutcome, reason: str) -> ShadowEvidence:
        return ShadowEvidence(outcome, reason, n, percent, dropped, len(compared), disagreed,
                              verdict.canary, verdict.primary)

    said = (f"shadow on {n} copies of live requests"
            + (f" ({dropped} more dropped)" if dropped else ""))
    agreement = (f"{len(compared) - disagreed} of {len(compared)} real inputs answered alike "
                 f"({_pct(len(compared) - disagreed, len(compared))}, min "
                 f"{min_agreement * 100:.0f}%)")
    if verdict.outcome is Outcome.FAIL:
        failed = [c.reason for c in verdict.checks if c.status is CheckStatus.FAIL]
        return found(LiveOutcome.FAIL, f"{said}: {'; '.join(failed)}")
    if len(compared) >= min_rows and (len(compared) - disagreed) < min_agreement * len(compared):
        return found(LiveOutcome.FAIL, f"{said}: the canary disagrees with the primary: "
                                       f"{agreement}")
    if verdict.outcome is Outcome.INCONCLUSIVE:
        # too few for the judge's plan, but a canary failing most copies needs no more
        errors = error_rate(verdict.canary, verdict.primary, once.level(1, Metric.ERROR_RATE),
                            once)
        if errors.status is CheckStatus.FAIL:
            return found(LiveOutcome.FAIL, f"{said}: {errors.reason}")
        return found(LiveOutcome.THIN, f"{said}: not judged ({verdict.reasons[0]}); "
                                       f"{agreement}")
    return found(LiveOutcome.PASS, f"{said}: within the checks (canary p95 "
                                   f"{_ms(verdict.canary.p95_ms)} vs primary "
                                   f"{_ms(verdict.primary.p95_ms)}); {agreement}")


def _pct(part: int, whole: int) -> str:
    return f"{part / whole * 100:.1f}%" if whole else "none compared"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"
