"""domain.fault: the MODELRELEASE_FAULT setting, read and written back."""

from __future__ import annotations

import pytest

from modelrelease.domain.fault import FaultSetting, drill_fault, parse_fault
from modelrelease.errors import InvalidInput
from modelrelease.spec import Fault


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(None, None, id="unset"),
        pytest.param("", None, id="empty"),
        pytest.param("   ", None, id="blank"),
        pytest.param("latency:0.5", FaultSetting(Fault.LATENCY, 0.5), id="latency"),
        pytest.param(" Latency : 2 ", FaultSetting(Fault.LATENCY, 2.0), id="latency-spaced"),
        pytest.param("latency:60", FaultSetting(Fault.LATENCY, 60.0), id="latency-max"),
        pytest.param("errors:0.5", FaultSetting(Fault.ERRORS, 0.5), id="errors"),
        pytest.param("errors:1", FaultSetting(Fault.ERRORS, 1.0), id="errors-all"),
        pytest.param("crash", FaultSetting(Fault.CRASH), id="crash"),
        pytest.param("CRASH", FaultSetting(Fault.CRASH), id="crash-upper"),
    ],
)
def test_parse_fault(value: str | None, expected: FaultSetting | None) -> None:
    assert parse_fault(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param("slow:1", "unknown fault 'slow'", id="unknown-kind"),
        pytest.param("latency", "latency needs an amount", id="latency-no-amount"),
        pytest.param("errors", "errors needs an amount", id="errors-no-amount"),
        pytest.param("crash:1", "crash takes no amount", id="crash-with-amount"),
        pytest.param("latency:fast", "'fast' is not a number", id="not-a-number"),
        pytest.param("latency:", "'' is not a number", id="empty-amount"),
        pytest.param("latency:0", "latency takes seconds above 0 and at most 60", id="zero"),
        pytest.param("latency:61", "at most 60", id="latency-too-long"),
        pytest.param("latency:nan", "above 0", id="nan"),
        pytest.param("errors:1.5", "errors takes a share above 0 and at most 1", id="share>1"),
        pytest.param("errors:-0.1", "above 0", id="negative-share"),
    ],
)
def test_parse_fault_refuses(value: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as caught:
        parse_fault(value)
    assert caught.value.message.startswith(f"read MODELRELEASE_FAULT={value!r}: ")
    assert "latency:SECONDS" in caught.value.message  # the accepted forms, every time


@pytest.mark.parametrize(
    ("fault", "setting", "env"),
    [
        pytest.param(Fault.LATENCY, FaultSetting(Fault.LATENCY, 0.5), "latency:0.5",
                     id="latency"),
        pytest.param(Fault.ERRORS, FaultSetting(Fault.ERRORS, 0.5), "errors:0.5", id="errors"),
        pytest.param(Fault.CRASH, FaultSetting(Fault.CRASH), "crash", id="crash"),
    ],
)
def test_drill_fault_round_trips(fault: Fault, setting: FaultSetting, env: str) -> None:
    assert drill_fault(fault) == setting
    assert setting.env_value() == env
    assert parse_fault(env) == setting
