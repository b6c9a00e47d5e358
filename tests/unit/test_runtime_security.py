"""The node agent's runc bundle honours a container's capabilities and seccomp profile."""

from __future__ import annotations

import pytest

from modelrelease.localstack.nodeagent.runtime import (
    RUNTIME_DEFAULT_DENIED,
    capability_set,
    seccomp_profile,
)

RUNC_DEFAULT = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]


@pytest.mark.parametrize(("drop", "add", "kept"), [
    pytest.param((), (), RUNC_DEFAULT, id="defaults"),
    pytest.param(("ALL",), (), [], id="drop-all"),
    pytest.param(("all",), ("NET_BIND_SERVICE",), ["CAP_NET_BIND_SERVICE"], id="drop-all-add"),
    pytest.param(("KILL", "CAP_AUDIT_WRITE"), (), ["CAP_NET_BIND_SERVICE"], id="drop-some"),
    pytest.param((), ("SYS_PTRACE",), [*RUNC_DEFAULT, "CAP_SYS_PTRACE"], id="add"),
])
def test_capability_set(drop: tuple[str, ...], add: tuple[str, ...], kept: list[str]) -> None:
    assert capability_set(RUNC_DEFAULT, drop, add) == sorted(kept)


def test_runtime_default_filters_and_unconfined_does_not() -> None:
    profile = seccomp_profile("RuntimeDefault")
    assert profile is not None and profile["defaultAction"] == "SCMP_ACT_ALLOW"
    (rule,) = profile["syscalls"]  # type: ignore[misc]
    assert rule["action"] == "SCMP_ACT_ERRNO" and {"ptrace", "mount", "unshare"} <= set(
        rule["names"])
    assert set(rule["names"]) == set(RUNTIME_DEFAULT_DENIED)
    assert seccomp_profile("Unconfined") is None and seccomp_profile(None) is None
