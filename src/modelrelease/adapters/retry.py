"""The adapters' one retry helper: bounded exponential back-off on retriable errors.

Every adapter that talks to a server (Kubernetes, MLflow, an OCI registry) wraps each call
in :func:`retrying` once: an error the server may not repeat (``PipelineError.retriable``:
refused connections, 429, 5xx, timeouts) is retried after ``backoff_s``, doubling up to
``backoff_max_s``, for ``retries`` more tries; anything else is raised at once. Nothing
above the adapters retries again (the Prefect tasks do not), so a give-up is final and
comes after a known time.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import TypeVar

from modelrelease.errors import PipelineError

__all__ = ["backoff_delay", "retrying"]

log = logging.getLogger(__name__)
T = TypeVar("T")
E = TypeVar("E", bound=PipelineError)


def backoff_delay(attempt: int, backoff_s: float, backoff_max_s: float = math.inf) -> float:
    """Seconds to wait before retry ``attempt + 1`` (0-based): doubling, capped."""
    return float(min(backoff_s * 2.0**attempt, backoff_max_s))


def retrying(what: str, fn: Callable[[], T], *, retry_on: type[E], retries: int,
             backoff_s: float, backoff_max_s: float = math.inf,
             give_up: Callable[[E, int, float], PipelineError] | None = None,
             sleep: Callable[[float], None] = time.sleep) -> T:
    """Run ``fn``; retry a retriable ``retry_on`` error up to ``retries`` more times.

    Args:
        what: What the call does, for the log line of each retry.
        fn: The call.
        retry_on: The adapter's error type; others pass through untouched.
        retries: Tries after the first.
        backoff_s: The first wait.
        backoff_max_s: The longest wait.
        give_up: Makes the error raised after the last try from the last error, the tries
            and the seconds they took (default: the last error itself).
        sleep: Waits (``time.sleep``; a test passes its own).

    Raises:
        E: Not retriable, or still failing after the last try.
    """
    began, attempt = time.monotonic(), 0
    while True:
        try:
            return fn()
        except retry_on as exc:
            if not exc.retriable:
                raise
            if attempt >= retries:
                if give_up is None:
                    raise
                raise give_up(exc, attempt + 1, time.monotonic() - began) from exc
            delay = backoff_delay(attempt, backoff_s, backoff_max_s)
            attempt += 1
            log.info("%s: %s; retry %d/%d in %.1fs", what, exc.message, attempt, retries, delay)
            sleep(delay)
