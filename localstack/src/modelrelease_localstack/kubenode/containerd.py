"""containerd for one node: its own config, root, state and socket under the node's work dir.

Debian's containerd 1.6 (``/usr/bin/containerd``) with the CRI plugin, never its system paths
(``/var/lib/containerd``, ``/run/containerd``, ``/etc/containerd``): a containerd of the
host, if any, is not touched. What this machine needs (measured, see DESIGN.md):

- ``restrict_oom_score_adj = true``: root here lacks ``CAP_SYS_RESOURCE``; without it every
  sandbox fails with ``nsexec: failed to update /proc/self/oom_score_adj: Permission denied``;
- runc with cgroupfs (``SystemdCgroup = false``): systemd does not run here;
- the sandbox image imported from a local archive (:mod:`.static_image`), never pulled;
- ``hosts.toml`` per registry (``config_path``), so plain-http pulls from ``127.0.0.1:PORT``
  work; CRI's streaming server (``kubectl exec``/``logs`` through the kubelet) on 127.0.0.1.

containerd 1.6 keeps shim sockets in ``/run/containerd/s`` whatever ``state`` says; the node
removes that directory again when it did not exist (:mod:`.hostchanges`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from modelrelease.errors import StackError

__all__ = ["CONTAINERD", "NAMESPACE", "RUNC", "Containerd"]

CONTAINERD: Final = "/usr/bin/containerd"
CTR: Final = "/usr/bin/ctr"
RUNC: Final = "/usr/bin/runc"
NAMESPACE: Final = "k8s.io"
"""The containerd namespace the CRI plugin uses."""


def _toml(value: object) -> str:
    """A TOML scalar or array (JSON strings are valid TOML basic strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(str(value))


class Containerd:
    """The files and commands of one node's containerd (it is started as a ``Service``).

    Args:
        home: The directory holding config, root, state, socket, certs.d and logs.
        sandbox_image: The pause image's name (imported, see :meth:`import_archive`).
        cni_conf_dir: Where the CNI conflist is.
        cni_bin_dir: Where the CNI plugins are.
        registries: ``host:port`` of registries to pull from over plain http.
    """

    def __init__(self, home: Path, sandbox_image: str, cni_conf_dir: Path, cni_bin_dir: Path,
                 registries: Iterable[str] = ()) -> None:
        self.home = home
        self.sandbox_image = sandbox_image
        self.cni_conf_dir = cni_conf_dir
        self.cni_bin_dir = cni_bin_dir
        self.registries = list(registries)

    @property
    def socket(self) -> Path:
        """The gRPC socket (the kubelet's container runtime endpoint)."""
        return self.home / "containerd.sock"

    @property
    def endpoint(self) -> str:
        """``unix://`` + :attr:`socket`."""
        return f"unix://{self.socket}"

    @property
    def config_path(self) -> Path:
        """The config file."""
        return self.home / "config.toml"

    @property
    def certs_dir(self) -> Path:
        """The ``config_path`` of registry hosts (``<host:port>/hosts.toml``)."""
        return self.home / "certs.d"

    def config(self) -> str:
        """The config (version 2) as TOML."""
        h = self.home
        cri = '[plugins."io.containerd.grpc.v1.cri"]'
        runc = f'{cri[:-1]}.containerd.runtimes.runc]'
        lines = [
            "version = 2",
            f"root = {_toml(h / 'root')}",
            f"state = {_toml(h / 'state')}",
            "oom_score = 0",
            "",
            "[grpc]",
            f"  address = {_toml(self.socket)}",
            "",
            "[ttrpc]",
            f"  address = {_toml(str(self.socket) + '.ttrpc')}",
            "",
            "[debug]",
            f"  address = {_toml(h / 'debug.sock')}",
            '  level = "info"',
            "",
            '[plugins."io.containerd.internal.v1.opt"]',
            f"  path = {_toml(h / 'opt')}",
            "",
            cri,
            f"  sandbox_image = {_toml(self.sandbox_image)}",
            "  restrict_oom_score_adj = true",
            '  stream_server_address = "127.0.0.1"',
            '  stream_server_port = "0"',
            "  enable_selinux = false",
            "  disable_apparmor = true",
            "  disable_cgroup = false",
            "  enable_unprivileged_ports = true",
            "  enable_unprivileged_icmp = true",
            "  netns_mounts_under_state_dir = true",
            "  max_container_log_line_size = 16384",
            f'{cri[:-1]}.containerd]',
            '  snapshotter = "overlayfs"',
            '  default_runtime_name = "runc"',
            "  discard_unpacked_layers = false",
            runc,
            '  runtime_type = "io.containerd.runc.v2"',
            f'{runc[:-1]}.options]',
            "  SystemdCgroup = false",
            f"  BinaryName = {_toml(RUNC)}",
            f"  Root = {_toml(h / 'runc')}",
            f'{cri[:-1]}.cni]',
            f"  bin_dir = {_toml(self.cni_bin_dir)}",
            f"  conf_dir = {_toml(self.cni_conf_dir)}",
            "  max_conf_num = 1",
            f'{cri[:-1]}.registry]',
            f"  config_path = {_toml(self.certs_dir)}",
            "",
        ]
        return "\n".join(lines)

    def write(self) -> None:
        """Write the config and one ``hosts.toml`` per registry (plain http, pull+resolve)."""
        for sub in ("root", "state", "runc", "opt"):
            (self.home / sub).mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config())
        shutil.rmtree(self.certs_dir, ignore_errors=True)
        for host in self.registries:
            directory = self.certs_dir / host
            directory.mkdir(parents=True)
            (directory / "hosts.toml").write_text(
                f'server = "http://{host}"\n\n'
                f'[host."http://{host}"]\n'
                '  capabilities = ["pull", "resolve"]\n'
                "  skip_verify = true\n")

    def argv(self) -> list[str]:
        """The command line."""
        return [CONTAINERD, "--config", str(self.config_path)]

    def ctr(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run ``ctr`` against this containerd, in the CRI namespace."""
        return subprocess.run([CTR, "--address", str(self.socket), "--namespace", NAMESPACE,
                               *args], capture_output=True, text=True, check=False,
                              timeout=timeout)

    def serving(self) -> bool:
        """Whether containerd answers on its socket."""
        return self.socket.exists() and self.ctr("version", timeout=5).returncode == 0

    def import_archive(self, archive: Path) -> None:
        """Import an OCI archive into the CRI namespace (unpacked for overlayfs).

        Raises:
            StackError: ``ctr images import`` failed (its error in the message).
        """
        result = self.ctr("images", "import", str(archive), timeout=120)
        if result.returncode != 0:
            raise StackError(f"import image {archive} into containerd {self.socket}: "
                             f"{(result.stderr or result.stdout).strip()}")

    def has_image(self, reference: str) -> bool:
        """Whether the CRI namespace holds ``reference``."""
        listed = self.ctr("images", "list", "--quiet", timeout=20).stdout.split()
        return reference in listed

    def task_ids(self) -> list[str]:
        """IDs of the containers with a task (running or stopped but not deleted)."""
        result = self.ctr("tasks", "list", "--quiet", timeout=20)
        return result.stdout.split() if result.returncode == 0 else []

    def kill_tasks(self) -> None:
        """SIGKILL and delete every task (the shims exit once their tasks are deleted)."""
        for task in self.task_ids():
            self.ctr("tasks", "kill", "--all", "--signal", "SIGKILL", task, timeout=20)
        for task in self.task_ids():
            self.ctr("tasks", "delete", "--force", task, timeout=20)
