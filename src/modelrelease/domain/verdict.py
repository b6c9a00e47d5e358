"""A step's verdict, pure: the step's checks combined into its outcome and ordered reasons.

Three kinds of evidence judge a canary step, each as ``analysis.Check``s:

* **Generated load** (``domain.analysis``): the sequential judge's checks, decided at the
  looks of its plan with its error control. Its ``Verdict`` (outcome, reasons and the
  checks) is where a step's verdict starts.
* **Live traffic** (``domain.live``, ``LiveEvidence.check``): what real users sent each
  arm meanwhile, judged once at the end of the step.
* **Output agreement** (``domain.agreement``, ``AgreementVerdict.check``): whether both
  arms answer the same inputs alike.

``step_verdict`` folds the other evidence into the generated load's verdict, in that order.
Such evidence can stop a step but never pass one (generated load is what the judge's error
control covers): a FAIL fails the step, a HOLD holds it (a PASS becomes INCONCLUSIVE, so
the step is extended), and the line of the check that did so comes first. A step that has
already failed stays failed; every other check's line is added after the reasons. Each
check's line is always among the reasons.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from modelrelease.domain.analysis import Check, CheckStatus, Outcome, Verdict

__all__ = ["step_verdict"]

STOPS = {CheckStatus.FAIL: Outcome.FAIL, CheckStatus.HOLD: Outcome.INCONCLUSIVE}
"""What a check of other evidence does to a step that has not failed (nothing otherwise)."""


def step_verdict(judged: Verdict, evidence: Sequence[Check]) -> Verdict:
    """The step's verdict: the generated load's ``judged``, with ``evidence`` folded in.

    The result carries every check, the generated load's first; its numbers (arms, look)
    are the generated load's.
    """
    outcome, reasons = judged.outcome, judged.reasons
    for check in evidence:
        stop = STOPS.get(check.status)
        if stop is None or outcome is Outcome.FAIL:
            reasons = (*reasons, check.reason)
        else:
            outcome, reasons = stop, (check.reason, *reasons)
    return replace(judged, outcome=outcome, reasons=reasons, checks=(*judged.checks, *evidence))
