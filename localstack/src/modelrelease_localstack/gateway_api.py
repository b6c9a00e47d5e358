"""The Gateway API's official CRDs (standard channel), for clusters of the local stack.

The stack runs no Gateway data plane (none can be built on these machines: see the README),
but its API server validates Gateways and HTTPRoutes exactly as a cluster with a gateway
does, CEL rules included, once the CRDs are installed. They come from the
``sigs.k8s.io/gateway-api`` module on the Go module proxy (``GOPROXY``'s first URL, or
proxy.golang.org), checked against a pinned SHA-256, and are kept in the build cache:
``cache_root()/gateway-api/<version>.zip``.
"""

from __future__ import annotations

import hashlib
import io
import os
import time
import urllib.request
import zipfile
from pathlib import Path
from typing import Any, Final

import yaml

from modelrelease.adapters.kube import KubeCluster
from modelrelease.errors import StackError
from modelrelease_localstack.assets import cache_root

__all__ = ["VERSION", "crd_documents", "install_crds", "module_zip"]

VERSION: Final = "v1.7.0"
ZIP_SHA256: Final = "f9041f93ad3b2572089afa858ceac74e0545e7769490ae774039ed0f841f3d6d"
"""The module zip's digest (``sha256sum`` of what the proxy served on 2026-12-07)."""
MODULE: Final = "sigs.k8s.io/gateway-api"
STANDARD: Final = f"{MODULE}@{VERSION}/config/crd/standard/"


def _proxy() -> str:
    for entry in os.environ.get("GOPROXY", "").replace("|", ",").split(","):
        if entry.startswith(("http://", "https://")):
            return entry.rstrip("/")
    return "https://proxy.golang.org"


def module_zip() -> Path:
    """The module's zip in the build cache, downloaded (and checked) the first time.

    Raises:
        StackError: the proxy cannot be reached, or served something else.
    """
    path = cache_root() / "gateway-api" / f"{VERSION}.zip"
    if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == ZIP_SHA256:
        return path
    url = f"{_proxy()}/{MODULE}/@v/{VERSION}.zip"
    try:
        with urllib.request.urlopen(url, timeout=60) as answer:
            data = answer.read()
    except OSError as exc:
        raise StackError(f"download the Gateway API CRDs from {url}: {exc}; set GOPROXY to a "
                         "reachable Go module proxy") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != ZIP_SHA256:
        raise StackError(f"download the Gateway API CRDs from {url}: sha256 {digest}, expected "
                         f"{ZIP_SHA256}; the proxy served another file")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part")
    partial.write_bytes(data)
    partial.replace(path)
    return path


def crd_documents() -> list[dict[str, Any]]:
    """The standard channel's CustomResourceDefinitions, as the release publishes them."""
    with zipfile.ZipFile(io.BytesIO(module_zip().read_bytes())) as archive:
        found = []
        for name in sorted(archive.namelist()):
            if name.startswith(STANDARD) and name.endswith(".yaml"):
                for doc in yaml.safe_load_all(archive.read(name)):
                    if doc and doc.get("kind") == "CustomResourceDefinition":
                        found.append(doc)
    if not found:
        raise StackError(f"read the Gateway API CRDs: none under {STANDARD} in {module_zip()}")
    return found


def install_crds(cluster: KubeCluster, timeout: float = 60.0) -> list[str]:
    """Apply the standard CRDs and wait until each is Established; their names.

    Server-side apply: they are too big for client-side apply's annotation.

    Raises:
        StackError: a CRD is not Established within ``timeout`` seconds.
    """
    names = []
    for doc in crd_documents():
        cluster.apply(doc)
        names.append(doc["metadata"]["name"])
    deadline = time.monotonic() + timeout
    for name in names:
        while True:
            crd = cluster.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", name) or {}
            conditions = (crd.get("status") or {}).get("conditions") or []
            if any(c.get("type") == "Established" and c.get("status") == "True"
                   for c in conditions):
                break
            if time.monotonic() > deadline:
                raise StackError(f"install the Gateway API CRDs: {name} not Established after "
                                 f"{timeout:.0f}s ({conditions})")
            time.sleep(0.5)
    return names
