"""The ask to stop a release from outside, as the ModelEndpoint's annotation carries it.

``modelrelease abort`` writes ``modelrelease.io/abort: {"releaseId": …, "by": …}``; the
release it names reads it between its actions and rolls back (``rollout.Aborted``).
Naming the release keeps an old ask from stopping a later one.
"""

from __future__ import annotations

import json

ANNOTATION_ABORT = "modelrelease.io/abort"


def abort_request(release_id: str, by: str) -> str:
    """The annotation's value that asks release ``release_id`` to stop, on behalf of ``by``."""
    return json.dumps({"by": by, "releaseId": release_id}, sort_keys=True)


def asked_by(value: str | None, release_id: str) -> str | None:
    """Who asked release ``release_id`` to stop, from the annotation's value.

    None when there is no ask, it names another release, or it cannot be read (an
    unreadable ask stops nothing: aborting is a rollback, never a guess).
    """
    if not value:
        return None
    try:
        asked = json.loads(value)
    except ValueError:
        return None
    if not isinstance(asked, dict) or asked.get("releaseId") != release_id:
        return None
    return str(asked.get("by") or "") or "someone"
