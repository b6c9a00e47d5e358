"""A guard that keeps the node's pods on this host: forwarded pod traffic leaves only by the bridge.

While a node runs, ``net.ipv4.ip_forward`` is 1 (the CNI bridge plugin and kube-proxy set it),
so a pod connecting to an address outside this host would be routed out of the host's own
interface. :class:`EgressGuard` installs one rule, before the first pod starts::

    iptables -t mangle -I FORWARD -s <pod CIDR> ! -o <bridge> -j DROP

in the ``mangle`` table's ``FORWARD`` chain, which the kubelet and kube-proxy never write: the
``filter`` table's ``FORWARD`` gets kube-proxy's prepended ``ACCEPT`` rules (established
connections, masquerade-marked packets), and ``mangle`` is traversed before it, so nothing the
node's components add can overtake the guard. What stays allowed: pod to pod and pod to
ClusterIP (forwarded out of the bridge again), pod to the node's own addresses (delivered
locally, never forwarded: the API relay, the kubelet). The rule carries a comment naming the
bridge, so :meth:`EgressGuard.remove` finds it again after a crash of the process that
installed it.
"""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass
from typing import Final

from modelrelease.errors import StackError

__all__ = ["EgressGuard"]

_TABLE: Final = "mangle"
_CHAIN: Final = "FORWARD"


def _iptables(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["iptables", "-w", "5", *args], capture_output=True, text=True,
                          check=False)


@dataclass(frozen=True)
class EgressGuard:
    """The drop rule for one node's pod network.

    Args:
        cidr: The node's pod subnet (the rule's source).
        bridge: The node's bridge: the only interface its pods' packets may be forwarded to.
    """

    cidr: str
    bridge: str

    @property
    def comment(self) -> str:
        """The rule's comment: how it is found again."""
        return f"modelrelease kubenode {self.bridge}: pods stay on this host"

    def rule(self) -> list[str]:
        """The rule's match and target (``iptables -t mangle -I FORWARD`` + this)."""
        return ["-s", self.cidr, "!", "-o", self.bridge, "-m", "comment", "--comment",
                self.comment, "-j", "DROP"]

    def rules_present(self) -> list[str]:
        """The ``-A FORWARD ...`` lines of ``iptables -S`` that are this guard's."""
        listed = _iptables("-t", _TABLE, "-S", _CHAIN).stdout
        return [line for line in listed.splitlines()
                if line.startswith(f"-A {_CHAIN} ") and self.comment in line]

    def install(self) -> None:
        """Insert the rule first in ``mangle FORWARD`` (once, however often called).

        Raises:
            StackError: iptables refused (its error in the message).
        """
        if self.rules_present():
            return
        result = _iptables("-t", _TABLE, "-I", _CHAIN, "1", *self.rule())
        if result.returncode != 0:
            raise StackError(f"install egress guard for {self.cidr} on {self.bridge}: "
                             f"iptables: {result.stderr.strip()}; fix: the node needs iptables "
                             "(`scripts/bootstrap`) and root")

    def remove(self) -> list[str]:
        """Delete every copy of the rule; return what could not be deleted."""
        problems = []
        for line in self.rules_present():
            words = shlex.split(line)[2:]  # drop "-A FORWARD"
            result = _iptables("-t", _TABLE, "-D", _CHAIN, *words)
            if result.returncode != 0:
                problems.append(f"iptables -t {_TABLE} -D {_CHAIN} {line[len('-A FORWARD '):]}: "
                                f"{result.stderr.strip()}")
        return problems
