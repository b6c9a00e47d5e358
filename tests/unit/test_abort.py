"""domain.abort: the ask to stop a release, written and read back."""

from __future__ import annotations

import pytest

from modelrelease.domain.abort import abort_request, asked_by


@pytest.mark.parametrize(("value", "expected"), [
    pytest.param(abort_request("r1", "ana@laptop"), "ana@laptop", id="this-release"),
    pytest.param(abort_request("r0", "ana@laptop"), None, id="another-release"),
    pytest.param(None, None, id="no-ask"),
    pytest.param("", None, id="empty"),
    pytest.param("{not json", None, id="unreadable"),
    pytest.param('["r1"]', None, id="not-an-object"),
    pytest.param('{"releaseId": "r1"}', "someone", id="nobody-named"),
    pytest.param('{"releaseId": "r1", "by": ""}', "someone", id="empty-name"),
])
def test_asked_by(value: str | None, expected: str | None) -> None:
    assert asked_by(value, "r1") == expected


def test_the_request_is_stable_json() -> None:
    assert abort_request("r1", "ana") == '{"by": "ana", "releaseId": "r1"}'
