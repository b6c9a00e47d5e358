"""What a kubelet, containerd and kube-proxy change on the host, recorded before and undone after.

A real node changes the machine it runs on, outside its work directory: sysctls
(``kernel.panic``, ``vm.overcommit_memory``, ``net.ipv4.ip_forward``...), iptables chains
(``KUBE-FIREWALL``, ``KUBE-KUBELET-CANARY``, kube-proxy's ``KUBE-SERVICES``...), the nftables
tables iptables-nft creates for them, ``kubepods`` cgroups in every controller, network
namespaces ``/run/netns/cni-*``, bind and overlay mounts, and directories such as
``/var/lib/kubelet/device-plugins`` or ``/var/log/containers`` whose paths are compiled in.

:func:`snapshot` records the host before the node starts; :func:`undo` puts back what differs
afterwards, touching only what the node can have made (chains named ``KUBE-*``/``CNI-*``,
``kubepods*`` cgroups, ``cni-*`` namespaces, mounts under the node's own paths, watched
directories that did not exist before), so a second stack on the same host is left alone.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = [
    "CHAIN_PREFIXES",
    "OWN_DIRS",
    "SHARED_DIRS",
    "WATCHED_DIRS",
    "WATCHED_SYSCTLS",
    "HostSnapshot",
    "iptables_chains",
    "kill_pids",
    "kubepods_cgroups",
    "mounts_under",
    "nft_tables",
    "pids_with_arg",
    "snapshot",
    "undo",
]

WATCHED_SYSCTLS: Final = (
    # the kubelet's kernel defaults (protectKernelDefaults: false lets it set them)
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    # the CNI bridge plugin (gateway mode) and kube-proxy
    "net.ipv4.ip_forward",
    "net.ipv4.conf.all.forwarding",
    "net.ipv4.conf.default.forwarding",
    "net.ipv6.conf.all.forwarding",
    "net.ipv4.conf.all.route_localnet",
    "net.bridge.bridge-nf-call-iptables",
    "net.bridge.bridge-nf-call-ip6tables",
    "net.netfilter.nf_conntrack_max",
    "net.netfilter.nf_conntrack_tcp_timeout_established",
    "net.netfilter.nf_conntrack_tcp_timeout_close_wait",
    "net.netfilter.nf_conntrack_tcp_be_liberal",
    "net.ipv4.conf.all.arp_ignore",
    "net.ipv4.conf.all.arp_announce",
)
"""Sysctls the node's components are known to write; restored when they differ."""

OWN_DIRS: Final = (
    "/var/lib/kubelet",  # device-plugins/ is a compiled-in path, whatever --root-dir says
    "/var/log/pods",
    "/var/log/containers",  # compiled into the kubelet
    "/etc/kubernetes",
    "/var/lib/kube-proxy",
    "/run/kubernetes",
)
"""Host directories only a kubelet or kube-proxy makes: removed whole when new."""

SHARED_DIRS: Final = (
    "/run/containerd",  # containerd 1.6 puts every shim's socket in /run/containerd/s
    "/opt/containerd",
    "/var/lib/containerd",
    "/run/nri",
    "/var/lib/cni",  # libcni's result cache
    "/etc/cni",
    "/opt/cni",
    "/run/netns",
)
"""Host directories any containerd or CNI user may make: when new, only what is stale goes
(sockets nobody listens on, the node's CNI cache entries), then the directories left empty."""

WATCHED_DIRS: Final = OWN_DIRS + SHARED_DIRS
"""Every host directory a node may create."""

CHAIN_PREFIXES: Final = ("KUBE-",)
"""iptables chains the kubelet and kube-proxy create (the node's CNI config makes none)."""

_IPTABLES: Final = ("iptables", "ip6tables")
_NFT_FAMILIES: Final = ("ip", "ip6", "inet")
_IPTABLES_NFT_TABLES: Final = ("filter", "nat", "mangle", "raw", "security", "kube-proxy")
_CGROUP_ROOT: Final = Path("/sys/fs/cgroup")
_NETNS_DIR: Final = Path("/run/netns")


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")


def read_sysctls(names: Iterable[str] = WATCHED_SYSCTLS) -> dict[str, str]:
    """The current value of every sysctl in ``names`` that exists on this kernel."""
    values: dict[str, str] = {}
    for name in names:
        with contextlib.suppress(OSError):
            values[name] = " ".join(_sysctl_path(name).read_text().split())
    return values


def _run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=False)


def _save(tool: str) -> str:
    if shutil.which(f"{tool}-save") is None:
        return ""
    return _run([f"{tool}-save"]).stdout


def iptables_chains() -> frozenset[tuple[str, str, str]]:
    """Every ``(tool, table, chain)`` that ``iptables-save``/``ip6tables-save`` list."""
    found: set[tuple[str, str, str]] = set()
    for tool in _IPTABLES:
        table = ""
        for line in _save(tool).splitlines():
            if line.startswith("*"):
                table = line[1:].strip()
            elif line.startswith(":"):
                found.add((tool, table, line[1:].split()[0]))
    return frozenset(found)


def _iptables_rules() -> frozenset[tuple[str, str, str]]:
    """Every ``(tool, table, rule)`` (the ``-A ...`` lines, counters dropped)."""
    found: set[tuple[str, str, str]] = set()
    for tool in _IPTABLES:
        table = ""
        for line in _save(tool).splitlines():
            if line.startswith("*"):
                table = line[1:].strip()
            elif line.startswith("-A "):
                found.add((tool, table, line))
            elif line.startswith("[") and "] -A " in line:
                found.add((tool, table, line.split("] ", 1)[1]))
    return frozenset(found)


def nft_tables() -> frozenset[tuple[str, str]]:
    """Every nftables ``(family, table)``."""
    if shutil.which("nft") is None:
        return frozenset()
    found = set()
    for line in _run(["nft", "list", "tables"]).stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "table":
            found.add((parts[1], parts[2]))
    return frozenset(found)


def kubepods_cgroups() -> frozenset[str]:
    """Every top-level ``kubepods*`` cgroup directory, in every mounted hierarchy."""
    found: set[str] = set()
    with contextlib.suppress(OSError):
        for hierarchy in _CGROUP_ROOT.iterdir():
            with contextlib.suppress(OSError):
                found.update(str(p) for p in hierarchy.glob("kubepods*") if p.is_dir())
    return frozenset(found)


def netns_names() -> frozenset[str]:
    """The named network namespaces (``ip netns``)."""
    try:
        return frozenset(p.name for p in _NETNS_DIR.iterdir())
    except OSError:
        return frozenset()


def _unescape(field: str) -> str:
    return field.encode().decode("unicode_escape") if "\\" in field else field


def mount_points() -> list[str]:
    """Every mount point of this mount namespace, in mount order."""
    points = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            fields = line.split()
            if len(fields) > 4:
                points.append(_unescape(fields[4]))
    return points


def mounts_under(roots: Iterable[Path | str]) -> list[str]:
    """Mount points at or below any of ``roots``, deepest (and latest) first."""
    prefixes = [str(Path(r)) for r in roots]

    def inside(point: str) -> bool:
        return any(point == p or point.startswith(p.rstrip("/") + "/") for p in prefixes)

    found = [p for p in mount_points() if inside(p)]
    ordered = list(reversed(found))  # later mounts stack on earlier ones
    ordered.sort(key=lambda p: p.count("/"), reverse=True)  # stable: keeps reversed order
    return ordered


@dataclass(frozen=True)
class HostSnapshot:
    """The parts of the host a node can change, as they were before it started."""

    sysctls: dict[str, str]
    existing_dirs: frozenset[str]
    chains: frozenset[tuple[str, str, str]]
    rules: frozenset[tuple[str, str, str]]
    nft_tables: frozenset[tuple[str, str]]
    cgroups: frozenset[str]
    netns: frozenset[str]


def snapshot() -> HostSnapshot:
    """Record the host as it is now (before a node starts)."""
    return HostSnapshot(
        sysctls=read_sysctls(),
        existing_dirs=frozenset(d for d in WATCHED_DIRS if os.path.lexists(d)),
        chains=iptables_chains(),
        rules=_iptables_rules(),
        nft_tables=nft_tables(),
        cgroups=kubepods_cgroups(),
        netns=netns_names(),
    )


def pids_with_arg(arg: str) -> list[int]:
    """PIDs whose command line holds ``arg`` as one whole argument (e.g. a socket path)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if arg.encode() in argv:
                found.append(int(entry.name))
    return found


def kill_pids(pids: Iterable[int], timeout: float = 5.0) -> list[int]:
    """SIGKILL ``pids`` and wait until they are gone; return those still alive after."""
    pending = set(pids)
    for pid in pending:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    end = time.monotonic() + timeout
    while pending and time.monotonic() < end:
        for pid in list(pending):
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                pending.discard(pid)
                continue
            if state == "Z":
                with contextlib.suppress(ChildProcessError, OSError):
                    os.waitpid(pid, os.WNOHANG)
                pending.discard(pid)
        if pending:
            time.sleep(0.05)
    return sorted(pending)


def _cgroup_pids(root: Path) -> set[int]:
    pids: set[int] = set()
    for dirpath, _, filenames in os.walk(root):
        if "cgroup.procs" in filenames:
            with contextlib.suppress(OSError, ValueError):
                text = (Path(dirpath) / "cgroup.procs").read_text()
                pids.update(int(p) for p in text.split())
    return pids


def _remove_cgroup_tree(root: Path) -> list[str]:
    """Remove a cgroup and its children, deepest first; return the ones that stayed."""
    left = []
    dirs = [Path(d) for d, _, _ in os.walk(root)]
    for directory in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
        for attempt in range(20):
            try:
                directory.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:  # EBUSY while a dying task still charges it
                if attempt == 19:
                    left.append(str(directory))
                time.sleep(0.05)
    return left


def _undo_cgroups(before: HostSnapshot, problems: list[str]) -> None:
    new = sorted(kubepods_cgroups() - before.cgroups)
    pids: set[int] = set()
    for path in new:
        pids |= _cgroup_pids(Path(path))
    survivors = kill_pids(pids)
    if survivors:
        problems.append(f"processes in kubepods cgroups survived SIGKILL: {survivors}")
    for path in new:
        problems.extend(f"cgroup {p} could not be removed" for p in _remove_cgroup_tree(Path(path)))


def unmount(points: Iterable[str], problems: list[str]) -> None:
    """Lazily unmount each mount point (deepest first as given); record failures."""
    for point in points:
        result = _run(["umount", "-l", point])
        if result.returncode != 0 and point in mount_points():
            problems.append(f"umount {point}: {result.stderr.strip()}")


def _undo_netns(before: HostSnapshot, problems: list[str]) -> None:
    for name in sorted(netns_names() - before.netns):
        if not name.startswith("cni-"):
            continue
        result = _run(["ip", "netns", "delete", name])
        if result.returncode != 0 and (_NETNS_DIR / name).exists():
            problems.append(f"ip netns delete {name}: {result.stderr.strip()}")


def _ours(chain: str) -> bool:
    return chain.startswith(CHAIN_PREFIXES)


def _undo_iptables(before: HostSnapshot, problems: list[str]) -> None:
    now_chains = iptables_chains()
    new_chains = {c for c in now_chains - before.chains if _ours(c[2])}
    for tool, table, rule in sorted(_iptables_rules() - before.rules):
        words = shlex.split(rule)
        chain = words[1]
        if (tool, table, chain) in new_chains:
            continue  # flushed with its chain below
        if not any(_ours(w) for w in words) and "kubernetes" not in rule:
            continue  # not ours: another program's rule
        result = _run([tool, "-w", "5", "-t", table, "-D", *words[1:]])
        if result.returncode != 0:
            problems.append(f"{tool} -t {table} -D {' '.join(words[1:])}: {result.stderr.strip()}")
    for flag in ("-F", "-X"):
        for tool, table, chain in sorted(new_chains):
            result = _run([tool, "-w", "5", "-t", table, flag, chain])
            if result.returncode != 0 and flag == "-X":
                problems.append(f"{tool} -t {table} -X {chain}: {result.stderr.strip()}")


def _nft_table_has_rules(family: str, table: str) -> bool:
    listed = _run(["nft", "list", "table", family, table]).stdout
    for line in listed.splitlines():
        words = line.split()
        if words and words[0] not in ("table", "chain", "type", "policy", "}"):
            return True
    return False


def _undo_nft(before: HostSnapshot, problems: list[str]) -> None:
    """Delete the tables iptables-nft created for the node, once they hold no rule."""
    for family, table in sorted(nft_tables() - before.nft_tables):
        if family not in _NFT_FAMILIES or table not in _IPTABLES_NFT_TABLES:
            continue
        if table != "kube-proxy" and _nft_table_has_rules(family, table):
            continue  # someone else's rules arrived meanwhile
        result = _run(["nft", "delete", "table", family, table])
        if result.returncode != 0:
            problems.append(f"nft delete table {family} {table}: {result.stderr.strip()}")


def _undo_sysctls(before: HostSnapshot, problems: list[str]) -> None:
    for name, value in before.sysctls.items():
        current = read_sysctls([name]).get(name)
        if current is None or current == value:
            continue
        try:
            _sysctl_path(name).write_text(value + "\n")
        except OSError as exc:
            problems.append(f"restore sysctl {name}={value} (now {current}): {exc}")


def _listening_unix_paths() -> set[str]:
    paths = set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
            fields = line.split()
            if len(fields) >= 8 and fields[7].startswith("/"):
                paths.add(fields[7])
    return paths


def _prune(directory: str, stale_markers: Sequence[str]) -> None:
    """Remove stale sockets and files naming the node, then every directory left empty.

    What another containerd or CNI user put there meanwhile stays (and so does the
    directory holding it).
    """
    listening = _listening_unix_paths()
    for dirpath, _, filenames in os.walk(directory, topdown=False):
        for name in filenames:
            path = os.path.join(dirpath, name)
            stale_socket = _is_socket(path) and path not in listening
            if stale_socket or any(marker in name for marker in stale_markers):
                with contextlib.suppress(OSError):
                    os.unlink(path)
        with contextlib.suppress(OSError):
            os.rmdir(dirpath)  # only succeeds when empty: others' files stay


def _is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.lstat(path).st_mode)
    except OSError:
        return False


def _undo_dirs(before: HostSnapshot, stale_markers: Sequence[str], problems: list[str]) -> None:
    # deepest first, so a nested watched directory goes before its parent
    for directory in sorted(WATCHED_DIRS, key=len, reverse=True):
        if directory in before.existing_dirs or not os.path.lexists(directory):
            continue
        unmount(mounts_under([directory]), problems)
        if directory in SHARED_DIRS:
            _prune(directory, stale_markers)
            continue
        try:
            if os.path.islink(directory):
                os.unlink(directory)
            else:
                shutil.rmtree(directory)
        except OSError as exc:
            problems.append(f"remove {directory}: {exc}")


def undo(before: HostSnapshot, *, mount_roots: Iterable[Path],
         stale_markers: Sequence[str] = ()) -> list[str]:
    """Put the host back as ``before`` recorded it, as far as the node changed it.

    Order matters: processes in ``kubepods`` cgroups are killed and their cgroups removed,
    then the node's mounts (under ``mount_roots``) and ``cni-*`` namespaces go, then
    iptables rules and chains, iptables-nft's tables the node created, sysctls, and last
    the watched directories that did not exist before.

    Args:
        before: What :func:`snapshot` recorded before the node started.
        mount_roots: Directories whose mounts are the node's (its work directory).
        stale_markers: Substrings of file names that are the node's in shared directories
            (its CNI network's name, in libcni's cache).

    Returns:
        What could not be undone, one line each (empty when the host is as it was).
    """
    problems: list[str] = []
    _undo_cgroups(before, problems)
    unmount(mounts_under(mount_roots), problems)
    _undo_netns(before, problems)
    _undo_iptables(before, problems)
    _undo_nft(before, problems)
    _undo_sysctls(before, problems)
    _undo_dirs(before, stale_markers, problems)
    return problems
