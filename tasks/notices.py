"""Telling people from a flow run: each notice a Prefect event linked to the run.

The automations in ``deployments/notifications.yaml`` (``modelrelease notifications
install``) turn each event into a message. Telling is best effort: a Prefect server that
does not take the event is a warning in the run's log, never a failed release
(``modelrelease.adapters.prefect_events.telling``).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

from prefect.runtime import flow_run

from modelrelease.adapters.prefect_events import telling as telling_prefect
from modelrelease.release.driver import Notify


def telling(warn: Callable[[str], None]) -> AbstractContextManager[Notify]:
    """A ``Notify`` that posts each notification as an event of this flow run."""
    return telling_prefect(warn, flow_run.id, flow_run.ui_url)
