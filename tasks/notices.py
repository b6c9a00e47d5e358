"""Telling people from a flow run: each notice a Prefect event linked to the run.

The automations in ``deployments/notifications.yaml`` (``modelrelease notifications
install``) turn each event into a message. Telling is best effort: a Prefect server that
does not take the event is a warning in the run's log, never a failed release.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from prefect.runtime import flow_run

from modelrelease.adapters.prefect_events import PrefectEvents
from modelrelease.domain.notifications import Notification
from modelrelease.errors import PrefectError
from modelrelease.release.driver import Notify


@contextlib.contextmanager
def telling(warn: Callable[[str], None]) -> Iterator[Notify]:
    """A ``Notify`` that posts each notification as an event of this flow run."""
    with PrefectEvents() as events:
        def tell(notification: Notification) -> None:
            try:
                events.tell(notification, flow_run.id, flow_run.ui_url)
            except PrefectError as exc:
                warn(f"could not tell '{notification.title}': {exc.message}")

        yield tell
