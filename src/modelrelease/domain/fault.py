"""The serving entrypoint's fault-injection setting (``MODELRELEASE_FAULT``). Pure.

Off unless set. A rollback drill sets it on its canary Deployment only::

    latency:0.5   sleep 0.5 s before answering each /invocations request
    errors:0.5    answer 500 to half of the /invocations requests
    crash         exit at startup, before the model is loaded

:func:`parse_fault` reads the value (a clear error for a malformed one);
:func:`drill_fault` is what a drill of a given :class:`~modelrelease.spec.Fault` sets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from modelrelease.errors import InvalidInput
from modelrelease.spec import Fault

ENV: Final = "MODELRELEASE_FAULT"
"""The environment variable the serving entrypoint reads."""
MAX_LATENCY_S: Final = 60.0
DRILL_LATENCY_S: Final = 0.5
DRILL_ERROR_RATE: Final = 0.5
_FORMS: Final = "latency:SECONDS (e.g. latency:0.5), errors:SHARE (e.g. errors:0.5) or crash"


@dataclass(frozen=True)
class FaultSetting:
    """One injected fault: its kind and amount (seconds of latency, share of errors)."""

    kind: Fault
    amount: float = 0.0

    def env_value(self) -> str:
        """The ``MODELRELEASE_FAULT`` value that :func:`parse_fault` reads back."""
        if self.kind is Fault.CRASH:
            return "crash"
        return f"{self.kind.value}:{self.amount:g}"


def drill_fault(fault: Fault) -> FaultSetting:
    """What a drill of ``fault`` injects: 0.5 s latency, half the requests failing, a crash."""
    amounts = {Fault.LATENCY: DRILL_LATENCY_S, Fault.ERRORS: DRILL_ERROR_RATE}
    return FaultSetting(fault, amounts.get(fault, 0.0))


def _amount(kind: Fault, text: str, value: str) -> float:
    try:
        amount = float(text)
    except ValueError:
        raise InvalidInput(f"read {ENV}={value!r}: {text!r} is not a number; use {_FORMS}") \
            from None
    limit = MAX_LATENCY_S if kind is Fault.LATENCY else 1.0
    if not 0 < amount <= limit:  # also refuses nan
        what = "seconds" if kind is Fault.LATENCY else "a share"
        raise InvalidInput(f"read {ENV}={value!r}: {kind.value} takes {what} above 0 and at "
                           f"most {limit:g}; use {_FORMS}")
    return amount


def parse_fault(value: str | None) -> FaultSetting | None:
    """Read a ``MODELRELEASE_FAULT`` value: None when unset or empty (no fault).

    Raises:
        InvalidInput: The value is none of the accepted forms, or its amount is out of range.
    """
    if value is None or not value.strip():
        return None
    name, sep, text = value.strip().partition(":")
    try:
        kind = Fault(name.strip().lower())
    except ValueError:
        raise InvalidInput(f"read {ENV}={value!r}: unknown fault {name.strip()!r}; use "
                           f"{_FORMS}") from None
    if kind is Fault.CRASH:
        if sep:
            raise InvalidInput(f"read {ENV}={value!r}: crash takes no amount; use {_FORMS}")
        return FaultSetting(kind)
    if not sep:
        raise InvalidInput(f"read {ENV}={value!r}: {kind.value} needs an amount; use {_FORMS}")
    return FaultSetting(kind, _amount(kind, text.strip(), value))
