"""Why a node component did not start: its own last error line, and what fixes it.

Each component logs differently (klog ``E1203 ...`` / ``F1203 ...`` lines for the kubelet and
kube-proxy, logrus ``level=error`` for containerd); :func:`last_error_line` finds the last line
that says what went wrong, and :func:`start_failure` pairs it with the fix for the failures
seen on hosts like this one.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

from modelrelease.errors import StackError
from modelrelease_localstack.process import tail

__all__ = ["FIXES", "last_error_line", "start_failure"]

_ERROR: Final = re.compile(
    r"^[EF]\d{4} |level=(error|fatal)|\b(error|failed|fatal|panic)\b", re.IGNORECASE)

FIXES: Final[tuple[tuple[str, str, str], ...]] = (
    # (component or "*", text in the error line, the fix)
    ("*", "address already in use",
     "another process holds that address: stop it (a node of an earlier run: "
     "`modelrelease dev down`), or leave the port unset so a free one is chosen"),
    ("*", "no such file or directory",
     "a binary or file is missing: run `scripts/kube-assets` (kubelet, kube-proxy, pause) and "
     "`scripts/bootstrap` (containerd, runc, containernetworking-plugins from apt)"),
    ("containerd", "oom_score_adj",
     "keep `restrict_oom_score_adj = true` in containerd's CRI config (root here lacks "
     "CAP_SYS_RESOURCE)"),
    ("kubelet", "cgroup v1",
     "set `failCgroupV1: false` in the KubeletConfiguration (this host has cgroup v1)"),
    ("kubelet", "cgroup",
     "the kubelet needs the cgroup v1 controllers cpu, cpuacct, cpuset, memory and pids "
     "mounted under /sys/fs/cgroup, and `cgroupDriver: cgroupfs`"),
    ("kubelet", "container runtime",
     "containerd is not answering on its socket: read the node's logs/containerd.log"),
    ("kubelet", "swap", "set `failSwapOn: false` in the KubeletConfiguration"),
    ("*", "permission denied", "run the stack as root (it changes network and cgroups)"),
    ("*", "unauthorized",
     "the component's client certificate is not trusted: restart the control plane "
     "and the node together (one CA per stack)"),
)

_DEFAULT_FIX: Final = {
    "containerd": "read the node's logs/containerd.log; `containerd --version` must be 1.6+",
    "kubelet": "read the node's logs/kubelet.log",
    "kube-proxy": "read the node's logs/kube-proxy.log; it needs `iptables` (iptables-nft)",
}


def last_error_line(log: Path) -> str:
    """The last line of ``log`` that reports an error (else its last line)."""
    lines = [line for line in tail(log, 400).splitlines() if line.strip()]
    errors = [line for line in lines if _ERROR.search(line)]
    found = errors[-1] if errors else (lines[-1] if lines else "(empty log)")
    return found.strip()[:600]


def fix_for(component: str, line: str) -> str:
    """The fix for ``component`` failing with ``line``."""
    lowered = line.lower()
    for who, needle, fix in FIXES:
        if who in ("*", component) and needle in lowered:
            return fix
    return _DEFAULT_FIX.get(component, "read its log")


def start_failure(component: str, node: str, log: Path, cause: str) -> StackError:
    """The error raised when ``component`` of ``node`` does not start.

    Args:
        component: ``containerd``, ``kubelet`` or ``kube-proxy``.
        node: The node's name.
        log: The component's log.
        cause: What was observed (exited with N, timed out waiting for ...).
    """
    line = last_error_line(log)
    return StackError(
        f"start {component} of node {node}: {cause}; its last error: {line}; "
        f"fix: {fix_for(component, line)} (log: {log})")
