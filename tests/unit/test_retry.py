"""The adapters' retry helper: which errors are retried, how long it waits, how it gives up."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from modelrelease.adapters.retry import backoff_delay, retrying
from modelrelease.errors import KubeApiError, MlflowError, RegistryError


@pytest.mark.parametrize(
    ("attempt", "base", "cap", "expected"),
    [(0, 0.5, math.inf, 0.5), (3, 0.5, math.inf, 4.0), (3, 0.5, 2.0, 2.0), (10, 1.0, 8.0, 8.0),
     (0, 0.0, 8.0, 0.0)],
)
def test_backoff_delay_doubles_up_to_the_cap(attempt: int, base: float, cap: float,
                                              expected: float) -> None:
    assert backoff_delay(attempt, base, cap) == expected


def _failing(errors: list[Exception]) -> tuple[Callable[[], str], list[int]]:
    calls = [0]

    def fn() -> str:
        calls[0] += 1
        if errors:
            raise errors.pop(0)
        return "done"
    return fn, calls


def test_retriable_errors_are_retried_with_growing_waits_until_it_works() -> None:
    waits: list[float] = []
    fn, calls = _failing([KubeApiError("503", status=503, retriable=True)] * 3)
    assert retrying("get", fn, retry_on=KubeApiError, retries=5, backoff_s=0.5,
                    backoff_max_s=1.5, sleep=waits.append) == "done"
    assert calls == [4] and waits == [0.5, 1.0, 1.5]


@pytest.mark.parametrize(
    "error",
    [pytest.param(KubeApiError("forbidden", status=403), id="not-retriable"),
     pytest.param(RegistryError("down", retriable=True), id="another-adapters-error")],
)
def test_other_errors_pass_through_at_once(error: Exception) -> None:
    waits: list[float] = []
    fn, calls = _failing([error])
    with pytest.raises(type(error)):
        retrying("get", fn, retry_on=KubeApiError, retries=5, backoff_s=0.5,
                 sleep=waits.append)
    assert calls == [1] and waits == []


def test_after_the_last_try_the_last_error_or_the_give_up_error_is_raised() -> None:
    waits: list[float] = []
    fn, calls = _failing([MlflowError("refused", retriable=True)] * 5)
    with pytest.raises(MlflowError, match="refused"):
        retrying("resolve", fn, retry_on=MlflowError, retries=2, backoff_s=1.0,
                 sleep=waits.append)
    assert calls == [3] and waits == [1.0, 2.0]

    fn, calls = _failing([MlflowError("refused", retriable=True)] * 5)
    with pytest.raises(MlflowError, match=r"refused \(gave up after 2 tries") as raised:
        retrying("resolve", fn, retry_on=MlflowError, retries=1, backoff_s=0.0,
                 sleep=waits.append,
                 give_up=lambda exc, tries, took: MlflowError(
                     f"{exc.message} (gave up after {tries} tries in {took:.0f}s)"))
    assert isinstance(raised.value.__cause__, MlflowError) and calls == [2]
