"""A released serving pod, read back from the API server, runs hardened; and what the node did.

The manifests' rendering is unit-tested (tests/unit/test_manifests.py); this reads the real
Pod the release left serving. The node's side (the process's uid, capabilities, seccomp
and root filesystem, from ``/proc`` and the OCI bundle containerd gave runc) is checked
too: the pod's securityContext is enforced by the real kubelet and containerd, not just
recorded.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.security.conftest import SecretRelease
from tests.support import Cluster

pytestmark = [pytest.mark.e2e, pytest.mark.security]


def _process_facts(node_workdir: Path, pod_name: str) -> dict[str, Any]:
    """What runc runs for ``pod_name``'s serving container: its bundle and /proc status.

    containerd's runc shim keeps its containers under the node's runc root, one directory
    per containerd namespace (``k8s.io`` for the kubelet's).
    """
    roots = sorted((node_workdir / "containerd" / "runc").glob("*"))
    assert roots, f"no runc root under {node_workdir / 'containerd' / 'runc'}"
    listed = [container for root in roots for container in json.loads(subprocess.run(
        ["runc", "--root", str(root), "list", "-f", "json"], check=True,
        capture_output=True, text=True).stdout or "[]") or []]
    for container in listed:
        bundle = json.loads((Path(container["bundle"]) / "config.json").read_text())
        annotations = bundle.get("annotations") or {}
        if (annotations.get("io.kubernetes.cri.sandbox-name") != pod_name
                or annotations.get("io.kubernetes.cri.container-type") != "container"
                or container["status"] != "running"):
            continue
        status = dict(line.split(":\t", 1) for line in Path(
            f"/proc/{container['pid']}/status").read_text().splitlines() if ":\t" in line)
        return {"uid": status["Uid"].split()[0], "cap_eff": status["CapEff"].strip(),
                "cap_bnd": status["CapBnd"].strip(),
                "seccomp": status.get("Seccomp", "?").strip(),
                "no_new_privs": status.get("NoNewPrivs", "?").strip(),
                "readonly_root": bundle["root"].get("readonly"),
                "bundle_capabilities": bundle["process"].get("capabilities", {}).get("effective"),
                "bundle_seccomp": "seccomp" in bundle.get("linux", {})}
    raise AssertionError(f"no running runc container for pod {pod_name}")


def test_a_released_pod_runs_hardened(secret_release: SecretRelease, cluster: Cluster) -> None:
    endpoint = secret_release.endpoint
    pods = endpoint.core.list_namespaced_pod(
        endpoint.namespace, label_selector=f"app.kubernetes.io/name={endpoint.name}").items
    running = [p for p in pods if p.status.phase == "Running"
               and p.metadata.deletion_timestamp is None]
    assert running, [p.metadata.name for p in pods]
    for pod in running:
        spec = pod.spec
        assert spec.automount_service_account_token is False
        assert not any(v.projected or v.secret for v in spec.volumes or [])  # no token volume
        assert spec.security_context.run_as_non_root is True
        assert spec.security_context.seccomp_profile.type == "RuntimeDefault"
        for container in spec.containers:
            context = container.security_context
            assert "@sha256:" in container.image, container.image
            assert context.run_as_non_root is True and (context.run_as_user or 0) != 0
            assert context.read_only_root_filesystem is True
            assert context.allow_privilege_escalation is False
            assert context.capabilities.drop == ["ALL"] and not context.capabilities.add
            assert context.seccomp_profile.type == "RuntimeDefault"
            assert not any(m.mount_path.startswith("/var/run/secrets")
                           for m in container.volume_mounts or [])
        for status in pod.status.container_statuses or []:
            assert "@sha256:" in status.image_id, status.image_id
    facts = _process_facts(cluster.node.workdir, running[0].metadata.name)
    print(json.dumps({"pod": running[0].metadata.name, "node_process": facts}))
    assert facts["uid"] != "0", "the node ran the container as root"
    assert facts["readonly_root"] is True and facts["no_new_privs"] == "1"
    # drop: ALL (containerd leaves an empty set out of the bundle)
    assert not facts["bundle_capabilities"] and int(facts["cap_bnd"], 16) == 0
    assert facts["bundle_seccomp"] is True and facts["seccomp"] == "2"  # filtered
