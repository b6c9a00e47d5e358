"""Posting events to a Prefect server's ``/api/events`` (the OSS server has no webhooks)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, Self

import httpx

from modelrelease.domain.notifications import Notification
from modelrelease.domain.triggers import ReleaseTrigger
from modelrelease.errors import PrefectError


def prefect_api_url(url: str | None = None) -> str:
    """``url``, else Prefect's own ``PREFECT_API_URL`` setting; raises when neither is set."""
    if url:
        return url.rstrip("/")
    from prefect.settings import PREFECT_API_URL

    found = PREFECT_API_URL.value() or os.environ.get("PREFECT_API_URL")
    if not found:
        raise PrefectError("no Prefect server: set PREFECT_API_URL (e.g. "
                                "http://127.0.0.1:4200/api; `modelrelease dev env` prints it)")
    return str(found).rstrip("/")


class PrefectApi:
    """A client of a Prefect server's REST API (``api_url``, else ``PREFECT_API_URL``)."""

    def __init__(self, api_url: str | None = None, *, timeout: float = 10.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.api_url = prefect_api_url(api_url)
        self._http = httpx.Client(timeout=timeout, transport=transport)

    def call(self, method: str, path: str, body: object, doing: str) -> httpx.Response:
        """One request; its answer when 2xx.

        Raises:
            PrefectError: ``doing: ...``: Prefect answered other than 2xx (retriable for
                5xx) or could not be reached (retriable).
        """
        try:
            response = self._http.request(method, f"{self.api_url}{path}", json=body)
        except httpx.TransportError as exc:
            raise PrefectError(f"{doing}: {exc}", retriable=True) from exc
        if response.status_code >= 300:
            raise PrefectError(f"{doing}: HTTP {response.status_code} {response.text[:200]}",
                               retriable=response.status_code >= 500)
        return response

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PrefectEvents(PrefectApi):
    """A client that posts events; ``emit`` returns only once Prefect accepted them."""

    def emit(self, events: Sequence[dict[str, Any]]) -> None:
        """POST ``events`` (a JSON list) to ``/events``.

        Raises:
            PrefectError: Prefect answered other than 2xx (retriable for 5xx) or
                could not be reached (retriable).
        """
        if events:
            self.call("POST", "/events", list(events), f"post events to {self.api_url}")

    def request_releases(self, triggers: Sequence[ReleaseTrigger]) -> None:
        """Emit one ``modelrelease.release.requested`` event per trigger."""
        now = datetime.now(UTC)
        self.emit([trigger.event(now) for trigger in triggers])

    def tell(self, notification: Notification, run_id: str | None = None,
             run_url: str | None = None) -> None:
        """Emit ``notification``'s event, linked to the flow run ``run_id`` (``run_url``)."""
        self.emit([notification.event(datetime.now(UTC), run_id, run_url)])


@contextlib.contextmanager
def telling(warn: Callable[[str], None], run_id: str | None = None,
            run_url: str | None = None) -> Iterator[Callable[[Notification], None]]:
    """Post each notification as an event (of the flow run ``run_id``, if any); best effort.

    A notice Prefect does not take is ``warn``-ed, never raised: a release's ``notify`` must
    not raise (``release.driver.Notify``). The one place that decides so.
    """
    with PrefectEvents() as events:
        def tell(notification: Notification) -> None:
            try:
                events.tell(notification, run_id, run_url)
            except PrefectError as exc:
                warn(f"could not tell '{notification.title}': {exc.message}")

        yield tell
