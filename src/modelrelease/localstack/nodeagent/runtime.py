"""Containers with runc: an OCI bundle per container, run in the foreground by the agent.

``runc run`` stays the parent of the container's init process and exits with its exit
code, so the agent learns of every exit without polling. The bundle starts from
``runc spec`` (what this runc expects), made read-only at the root, with a tmpfs
``/tmp``, the image's declared host-runtime bind mounts (read-only), and the pod's
network namespace.
"""

from __future__ import annotations

import json
import resource
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from modelrelease.errors import StackError

RUNC = "runc"


@dataclass(frozen=True)
class ProcessSpec:
    """What runs in the container."""

    args: Sequence[str]
    env: Sequence[str]
    cwd: str = "/"
    uid: int = 0
    gid: int = 0
    binds: Sequence[str] = field(default_factory=tuple)
    drop_capabilities: Sequence[str] = field(default_factory=tuple)
    """``securityContext.capabilities.drop`` (``ALL`` drops every one)."""
    add_capabilities: Sequence[str] = field(default_factory=tuple)
    """``securityContext.capabilities.add``."""
    seccomp: str | None = None
    """``securityContext.seccompProfile.type``: ``RuntimeDefault`` filters, else none."""


# What a RuntimeDefault profile refuses (EPERM): the syscalls Docker's and containerd's
# default profiles block for a container without extra capabilities. Everything else is
# allowed, so a Python model server runs unchanged.
RUNTIME_DEFAULT_DENIED = (
    "acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "delete_module",
    "finit_module", "init_module", "ioperm", "iopl", "kcmp", "kexec_file_load", "kexec_load",
    "keyctl", "lookup_dcookie", "mount", "move_mount", "name_to_handle_at", "open_by_handle_at",
    "open_tree", "perf_event_open", "pivot_root", "process_vm_readv", "process_vm_writev",
    "ptrace", "quotactl", "reboot", "request_key", "setns", "settimeofday", "swapoff",
    "swapon", "sysfs", "umount2", "unshare", "userfaultfd", "ustat", "fsopen", "fsmount",
    "fsconfig", "fspick",
)


def capability_set(default: Sequence[str], drop: Sequence[str], add: Sequence[str]) -> list[str]:
    """The capabilities a container keeps, by Kubernetes' rule.

    The runtime's defaults, minus ``drop`` (``ALL``: every one), plus ``add``; names with
    or without the ``CAP_`` prefix.
    """

    def full(name: str) -> str:
        return name if name.upper().startswith("CAP_") else f"CAP_{name.upper()}"

    dropped = {full(n) for n in drop}
    kept = [] if "CAP_ALL" in dropped else [c for c in default if c not in dropped]
    return sorted({*kept, *(full(n) for n in add)})


def seccomp_profile(kind: str | None) -> dict[str, object] | None:
    """The OCI seccomp section for ``seccompProfile.type`` (None: unconfined)."""
    if kind != "RuntimeDefault":
        return None
    return {"defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": list(RUNTIME_DEFAULT_DENIED), "action": "SCMP_ACT_ERRNO",
                          "errnoRet": 1}]}


def parse_user(user: str | None, passwd: Path | None = None) -> tuple[int, int]:
    """``uid[:gid]`` or a name from the image's ``/etc/passwd`` -> (uid, gid)."""
    if not user:
        return 0, 0
    name, _, group = user.partition(":")
    if name.isdigit():
        uid = int(name)
        gid = int(group) if group.isdigit() else uid
        return uid, gid
    if passwd is not None and passwd.is_file():
        for line in passwd.read_text().splitlines():
            fields = line.split(":")
            if len(fields) > 3 and fields[0] == name:
                return int(fields[2]), int(group) if group.isdigit() else int(fields[3])
    raise StackError(f"resolve user {user!r}: not numeric and not in the image's /etc/passwd")


class Runc:
    """runc with its state under ``state_root`` (one per node)."""

    def __init__(self, state_root: Path) -> None:
        self.state_root = state_root
        state_root.mkdir(parents=True, exist_ok=True)

    def _cmd(self, *args: str) -> list[str]:
        return [RUNC, "--root", str(self.state_root), *args]

    def _run(self, *args: str, check: bool = True,
             timeout: float = 30) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(self._cmd(*args), capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise StackError(f"runc {' '.join(args)}: {result.stderr.strip()}")
        return result

    def write_bundle(self, bundle: Path, rootfs: Path, process: ProcessSpec, netns: str,
                     hostname: str, read_only: bool = True) -> None:
        """Write ``bundle/config.json`` for a container on ``rootfs`` in namespace ``netns``."""
        bundle.mkdir(parents=True, exist_ok=True)
        spec_path = bundle / "config.json"
        spec_path.unlink(missing_ok=True)
        subprocess.run([RUNC, "spec", "--bundle", str(bundle)], check=True, capture_output=True)
        spec = json.loads(spec_path.read_text())
        spec["process"].update({
            "terminal": False,
            "args": list(process.args),
            "env": list(process.env),
            "cwd": process.cwd or "/",
            "user": {"uid": process.uid, "gid": process.gid},
            "noNewPrivileges": True,
        })
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # never above what we hold
        limit = hard if hard != resource.RLIM_INFINITY else 65536
        spec["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "hard": limit,
                                       "soft": min(limit, 65536)}]
        capabilities = spec["process"].get("capabilities") or {}
        default = capabilities.get("bounding") or []
        chosen = capability_set(default, process.drop_capabilities, process.add_capabilities)
        spec["process"]["capabilities"] = {
            kind: chosen for kind in ("bounding", "effective", "permitted")}
        profile = seccomp_profile(process.seccomp)
        if profile is not None:
            spec["linux"]["seccomp"] = profile
        spec["root"] = {"path": str(rootfs), "readonly": read_only}
        spec["hostname"] = hostname[:63]
        spec["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                               "options": ["nosuid", "nodev", "mode=1777", "size=262144k"]})
        for path in process.binds:
            spec["mounts"].append({"destination": path, "type": "bind", "source": path,
                                   "options": ["rbind", "ro", "nosuid", "nodev"]})
        spec["linux"]["namespaces"] = [
            {"type": ns["type"], "path": f"/var/run/netns/{netns}"} if ns["type"] == "network"
            else ns for ns in spec["linux"]["namespaces"]
        ]
        spec_path.write_text(json.dumps(spec, indent=1))

    def run(self, cid: str, bundle: Path, log: Path) -> subprocess.Popen[bytes]:
        """Start ``runc run`` in the foreground; its exit code is the container's."""
        self._run("delete", "--force", cid, check=False)
        with log.open("ab") as out:
            return subprocess.Popen(self._cmd("run", "--bundle", str(bundle), cid),
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)

    def kill(self, cid: str, sig: signal.Signals) -> None:
        """Send ``sig`` to the container's init process (quietly if it is gone)."""
        self._run("kill", cid, sig.name.removeprefix("SIG"), check=False)

    def delete(self, cid: str) -> None:
        """Remove the container, killing it if still running."""
        self._run("delete", "--force", cid, check=False)

    def exec(self, cid: str, argv: Sequence[str], timeout: float) -> int:
        """Run ``argv`` inside the container; its exit code (1 on timeout)."""
        try:
            return self._run("exec", cid, *argv, check=False, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            return 1

    def containers(self) -> list[str]:
        """Every container this runc root knows of."""
        out = self._run("list", "--format", "json", check=False).stdout.strip()
        return [c["id"] for c in json.loads(out or "null") or []]


def merge_process(image_config: Mapping[str, object], container: Mapping[str, object]
                  ) -> tuple[list[str], list[str], str]:
    """Kubernetes' rules: command replaces Entrypoint, args replace Cmd; env merges over.

    Returns:
        (argv, env as KEY=VALUE, working directory)
    """
    cfg = dict(image_config.get("config") or {})  # type: ignore[call-overload]
    entrypoint = list(cfg.get("Entrypoint") or [])
    cmd = list(cfg.get("Cmd") or [])
    command = container.get("command")
    args = container.get("args")
    if command:
        argv = list(command) + list(args or [])  # type: ignore[call-overload]
    else:
        argv = entrypoint + (list(args) if args else cmd)  # type: ignore[call-overload]
    env: dict[str, str] = {}
    for item in cfg.get("Env") or []:
        key, _, value = str(item).partition("=")
        env[key] = value
    for item in container.get("env") or []:  # type: ignore[attr-defined]
        env[str(item["name"])] = str(item.get("value") or "")
    cwd = str(container.get("workingDir") or cfg.get("WorkingDir") or "/")
    if not argv:
        raise StackError("start container: neither the pod nor the image gives a command")
    return argv, [f"{k}={v}" for k, v in env.items()], cwd
