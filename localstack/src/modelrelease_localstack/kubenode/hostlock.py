"""One node per host: a second kubelet/kube-proxy would fight the first over host-wide state.

kube-proxy owns the ``KUBE-*`` iptables chains (each rewrites them for its own cluster on
every sync), every kubelet uses the ``kubepods`` cgroups and ``/var/lib/kubelet/device-plugins``,
and each node routes the same Service CIDR (and serves the same ``kubernetes`` and cluster DNS
ClusterIPs) onto its own bridge. So :func:`host_for_one_node` lets a node start only when no
other node's kubelet or kube-proxy runs, whoever started it; the check and the start happen
under an exclusive lock, so two starts at once cannot both see an empty host.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from modelrelease.errors import StackError

__all__ = ["LOCK_FILE", "host_for_one_node", "other_nodes"]

LOCK_FILE: Final = Path("/run/lock/modelrelease-kubenode.lock")
_COMPONENTS: Final = ("kubelet", "kube-proxy")


def other_nodes(workdir: Path) -> list[str]:
    """Running kubelets and kube-proxies not of the node in ``workdir``, one line each."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            exe = Path(os.readlink(entry / "exe").removesuffix(" (deleted)")).name
            if exe not in _COMPONENTS:
                continue
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            if any(str(workdir) in arg for arg in argv):
                continue
            config = next((a for a in argv if a.startswith("--config=")), "")
            found.append(f"{exe} pid {entry.name}" + (f" ({config})" if config else ""))
    return sorted(found)


@contextlib.contextmanager
def host_for_one_node(name: str, workdir: Path, wait: float) -> Iterator[float]:
    """Hold the host for starting node ``name``; yield the seconds waited for it.

    Args:
        name: The node's name (for the message).
        workdir: The node's work dir (its own processes do not count).
        wait: Seconds to wait for another node to stop; 0 fails at once.

    Raises:
        StackError: Another node still runs after ``wait``, naming its processes.
    """
    began = time.monotonic()
    LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
    with LOCK_FILE.open("a") as lock:
        while True:
            fcntl.flock(lock, fcntl.LOCK_EX)
            others = other_nodes(workdir)
            if not others:
                break
            fcntl.flock(lock, fcntl.LOCK_UN)
            if time.monotonic() - began >= wait:
                raise StackError(
                    f"start node {name}: another node runs on this host: {', '.join(others)}; "
                    "one node per host (kube-proxy's KUBE-* chains, the kubepods cgroups and "
                    "the Service CIDR route are host-wide); fix: stop it (`modelrelease dev "
                    "down`, or the test session that started it), then start again")
            time.sleep(1.0)
        try:
            yield time.monotonic() - began
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
