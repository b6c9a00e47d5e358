"""Where the locally built binaries live: an explicit variable, else the build cache.

``scripts/kube-assets``, ``scripts/coredns-assets`` and ``scripts/prometheus-assets`` build
once into ``${MODELRELEASE_BUILD__CACHE_DIR:-~/.cache/modelrelease}/<name>/<version>/``; a
variable such as ``KUBE_ASSETS`` or ``PROMETHEUS`` names binaries the user already has.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["asset_path", "cache_root"]


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
