"""Where the locally built binaries live: an explicit variable, else the build cache.

``scripts/kube-assets``, ``scripts/coredns-assets`` and ``scripts/prometheus-assets`` build
once into ``${MODELRELEASE_BUILD__CACHE_DIR:-~/.cache/modelrelease}/<name>/<version>/``; a
variable such as ``KUBE_ASSETS`` or ``PROMETHEUS`` names binaries the user already has.
"""

from __future__ import annotations

import os
from pathlib import Path

from modelrelease.errors import StackError

__all__ = ["asset_path", "built_binary", "cache_root"]


def cache_root() -> Path:
    """The build cache the asset scripts fill (``MODELRELEASE_BUILD__CACHE_DIR`` or default)."""
    cache = os.environ.get("MODELRELEASE_BUILD__CACHE_DIR") or str(
        Path.home() / ".cache" / "modelrelease")
    return Path(cache).expanduser()


def asset_path(variable: str, *cached: str, script: str) -> tuple[Path, str]:
    """``$variable`` when set, else ``cache_root()/cached...``; and where it came from.

    The second value names the origin for error messages: ``"KUBE_ASSETS=/opt/k8s"`` or
    ``"the kube-assets cache"`` (``script`` is the script's name without ``scripts/``).
    """
    explicit = os.environ.get(variable)
    if explicit:
        return Path(explicit).expanduser(), f"{variable}={explicit}"
    return cache_root().joinpath(*cached), f"the {script} cache"


def built_binary(variable: str, *cached: str, script: str, otherwise: str) -> Path:
    """The executable :func:`asset_path` names.

    Raises:
        StackError: It is missing or not executable, with the script that builds it and
            ``otherwise`` (what else the user can do).
    """
    path, origin = asset_path(variable, *cached, script=script)
    if not os.access(path, os.X_OK):
        raise StackError(f"find {path.name} {path}: missing in {origin}; run `scripts/{script}` "
                         f"(builds it once from its Go module, a few minutes), or {otherwise}")
    return path
