"""Pure: from what happened to a pod's container to the Pod's ``status``, as the kubelet writes it.

No I/O and no clock: callers pass ``now``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


def stamp(when: datetime | None) -> str | None:
    """RFC 3339 seconds, as Kubernetes writes times."""
    return when.strftime("%Y-%m-%dT%H:%M:%SZ") if when else None


def backoff_seconds(failures: int, initial: float, cap: float = 300.0) -> float:
    """The kubelet's restart (and image pull) back-off: initial, 2x, 4x, ... up to ``cap``."""
    if failures <= 0:
        return 0.0
    return float(min(cap, initial * 2 ** (failures - 1)))


@dataclass
class ContainerState:
    """What the agent knows of one container."""

    name: str
    image: str
    image_id: str = ""
    state: str = "waiting"  # waiting | running | terminated
    reason: str = "ContainerCreating"
    message: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    exit_code: int | None = None
    restart_count: int = 0
    ready: bool = False
    last_terminated: dict[str, Any] | None = None

    def to_status(self) -> dict[str, Any]:
        """The ``containerStatuses`` entry."""
        if self.state == "running":
            state: dict[str, Any] = {"running": {"startedAt": stamp(self.started_at)}}
        elif self.state == "terminated":
            state = {"terminated": {"exitCode": self.exit_code, "reason": self.reason,
                                    "message": self.message or None,
                                    "startedAt": stamp(self.started_at),
                                    "finishedAt": stamp(self.finished_at)}}
        else:
            state = {"waiting": {"reason": self.reason, "message": self.message or None}}
        return {
            "name": self.name,
            "image": self.image,
            "imageID": self.image_id,
            "containerID": f"runc://{self.name}" if self.started_at else None,
            "ready": self.ready,
            "started": self.state == "running",
            "restartCount": self.restart_count,
            "state": state,
            "lastState": {"terminated": self.last_terminated} if self.last_terminated else {},
        }

    def exited(self, code: int, now: datetime, message: str = "") -> None:
        """Record an exit: the container is terminated with ``code``."""
        self.state, self.exit_code, self.finished_at = "terminated", code, now
        self.reason = "Completed" if code == 0 else "Error"
        self.message, self.ready = message, False
        self.last_terminated = {"exitCode": code, "reason": self.reason,
                                "startedAt": stamp(self.started_at), "finishedAt": stamp(now)}

    def waiting(self, reason: str, message: str = "") -> None:
        """Record a wait (ContainerCreating, CrashLoopBackOff, ErrImagePull, ...)."""
        self.state, self.reason, self.message, self.ready = "waiting", reason, message, False

    def running(self, now: datetime) -> None:
        """Record a (re)start."""
        self.state, self.started_at, self.reason, self.message = "running", now, "", ""
        self.exit_code = None


@dataclass
class PodState:
    """What the agent knows of one pod."""

    containers: list[ContainerState]
    restart_policy: str = "Always"
    pod_ip: str | None = None
    host_ip: str | None = None
    start_time: datetime | None = None
    transitions: dict[str, tuple[str, datetime]] = field(default_factory=dict)

    def phase(self) -> str:
        """Pending until every container has started once; then Running, or done."""
        if any(c.state == "waiting" and c.started_at is None for c in self.containers):
            return "Pending"
        if self.restart_policy != "Always" and all(c.state == "terminated"
                                                   for c in self.containers):
            if all(c.exit_code == 0 for c in self.containers):
                return "Succeeded"
            if self.restart_policy == "Never":
                return "Failed"
        return "Running"

    def _condition(self, kind: str, ok: bool, now: datetime) -> dict[str, Any]:
        status = "True" if ok else "False"
        previous = self.transitions.get(kind)
        if previous is None or previous[0] != status:
            self.transitions[kind] = (status, now)
        return {"type": kind, "status": status,
                "lastTransitionTime": stamp(self.transitions[kind][1])}

    def to_status(self, now: datetime) -> dict[str, Any]:
        """The Pod's ``status``."""
        ready = all(c.ready for c in self.containers)
        status: dict[str, Any] = {
            "phase": self.phase(),
            "conditions": [
                self._condition("PodScheduled", True, now),
                self._condition("Initialized", True, now),
                self._condition("ContainersReady", ready, now),
                self._condition("Ready", ready, now),
            ],
            "containerStatuses": [c.to_status() for c in self.containers],
            "startTime": stamp(self.start_time),
        }
        if self.host_ip:
            status["hostIP"] = self.host_ip
            status["hostIPs"] = [{"ip": self.host_ip}]
        if self.pod_ip:
            status["podIP"] = self.pod_ip
            status["podIPs"] = [{"ip": self.pod_ip}]
        return status
