"""Telling Prefect (``adapters.prefect_events.telling``): a notice Prefect does not take is
a warning, never a failure; the CLI tells only when Prefect is configured.

The Prefect API is a port nothing listens on (127.0.0.1:1), so each post is refused for
real; the release driver's ``notify`` must not raise, and this is what keeps it so.
"""

from __future__ import annotations

import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings

from modelrelease.adapters.prefect_events import telling
from modelrelease.cli import _telling
from modelrelease.domain.notifications import Notice, Notification

DEAD = "http://127.0.0.1:1/api"


def test_a_refused_notice_is_a_warning_and_the_rest_are_still_told() -> None:
    warned: list[str] = []
    with temporary_settings(updates={PREFECT_API_URL: DEAD}), \
            telling(warned.append) as notify:
        notify(Notification(Notice.STARTED, "ml/iris", "2", "deploying", "r-1"))
        notify(Notification(Notice.PROMOTED, "ml/iris", "2", "primary serves it", "r-1"))
    assert len(warned) == 2
    assert warned[0].startswith("could not tell 'ml/iris version 2: started': post events to "
                                f"{DEAD}: ")
    assert warned[1].startswith("could not tell 'ml/iris version 2: promoted': ")


def test_the_cli_tells_prefect_only_when_it_has_one(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with temporary_settings(updates={PREFECT_API_URL: None}), _telling() as notify:
        assert notify is None
    with temporary_settings(updates={PREFECT_API_URL: DEAD}), _telling() as notify:
        assert notify is not None
        notify(Notification(Notice.STARTED, "ml/iris", "2", "deploying", "r-1"))
    assert "warning: could not tell 'ml/iris version 2: started'" in capsys.readouterr().err
