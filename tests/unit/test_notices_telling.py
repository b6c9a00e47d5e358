"""tasks.notices.telling: a notice Prefect does not take is a warning, never a failure.

The Prefect API is a port nothing listens on (127.0.0.1:1), so each post is refused for
real; the release driver's ``notify`` must not raise, and this is what keeps it so.
"""

from __future__ import annotations

from prefect.settings import PREFECT_API_URL, temporary_settings

from modelrelease.domain.notifications import Notice, Notification
from tasks.notices import telling


def test_a_refused_notice_is_a_warning_and_the_rest_are_still_told() -> None:
    warned: list[str] = []
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:1/api"}), \
            telling(warned.append) as notify:
        notify(Notification(Notice.STARTED, "ml/iris", "2", "deploying", "r-1"))
        notify(Notification(Notice.PROMOTED, "ml/iris", "2", "primary serves it", "r-1"))
    assert len(warned) == 2
    assert warned[0].startswith("could not tell 'ml/iris version 2: started': post events to "
                                "http://127.0.0.1:1/api: ")
    assert warned[1].startswith("could not tell 'ml/iris version 2: promoted': ")
