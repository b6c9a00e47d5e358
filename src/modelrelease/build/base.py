"""The development serving base: a fast path for unit-level build tests, nothing else.

It holds only ``/etc/passwd``, ``/etc/group`` and empty ``/opt/ml`` and ``/tmp``, and
declares in its labels which host paths the node must bind-mount read-only (this
interpreter's prefix and the system's ``/usr``, ``/lib``, ``/lib64``, ``/bin``), which
Python version that is and which packages it holds, so the image builder adds a
dependency layer only for what is missing. Its PATH points into this machine's
interpreter: images built on it run only on this machine's stand-in node, never on a
real kubelet, in ``ctr run`` or on another cluster. No command builds it: only
``build_dev_base`` (the registry-auth test and ``benchmarks/image_build.py``).

The real serving base, self-contained and reproducible, is ``build.serving_base``
(``modelrelease image base``; recipe in ``deployments/serving-base``).
"""

from __future__ import annotations

import json
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import modelrelease
from modelrelease.adapters.oci_registry import PushStats, RegistryClient
from modelrelease.build.layer import BlobStore, write_layer
from modelrelease.build.packages import installed_packages
from modelrelease.domain import image as img
from modelrelease.domain.reference import ImageRef

USER = "1000:1000"


def host_runtime_paths() -> list[str]:
    """Host paths the node must bind-mount for this interpreter and modelrelease to run."""
    paths = {sys.prefix, sys.base_prefix, "/usr", "/lib", "/lib64", "/bin", "/etc/ssl"}
    package_root = Path(modelrelease.__file__).resolve().parent.parent
    if not package_root.is_relative_to(sys.prefix):
        paths.add(str(package_root))
    return sorted(p for p in paths if Path(p).exists())


def build_dev_base(to: str, registry: RegistryClient, cache_dir: Path) -> tuple[str, PushStats]:
    """Build and push the development serving base to ``to``; return its digest.

    Unit-level fast path only (see the module docstring); ``build_serving_base`` builds
    the base that runs anywhere.
    """
    target = ImageRef.parse(to)
    store = BlobStore(cache_dir / "blobs")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "etc").mkdir()
        (root / "etc" / "passwd").write_text(
            "root:x:0:0:root:/root:/bin/sh\nmodel:x:1000:1000:model:/tmp:/bin/sh\n")
        (root / "etc" / "group").write_text("root:x:0:\nmodel:x:1000:\n")
        (root / "opt" / "ml").mkdir(parents=True)
        (root / "tmp").mkdir()
        layer = write_layer(root, "/", store, compress=True)
    runtime_bin = str(Path(sys.executable).parent)
    labels = {
        img.LABEL_HOST_RUNTIME: json.dumps(host_runtime_paths()),
        img.LABEL_PYTHON_VERSION: f"{sys.version_info.major}.{sys.version_info.minor}",
        img.LABEL_PYTHON_PACKAGES: json.dumps(installed_packages(), separators=(",", ":")),
        img.LABEL_CREATED_BY: f"modelrelease {modelrelease.__version__}",
    }
    scratch = img.BaseImage(
        digest="", manifest={"layers": []},
        config={"architecture": "amd64", "os": "linux",
                "config": {"Env": [f"PATH={runtime_bin}:/usr/local/bin:/usr/bin:/bin"]}},
    )
    serving = img.ServingConfig(entrypoint=["python"], working_dir="/tmp", port=8080, user=USER,
                                env={"HOME": "/tmp", "PYTHONDONTWRITEBYTECODE": "1"})
    config = img.image_config(scratch, [layer], serving, labels, datetime.fromtimestamp(0, UTC))
    manifest = img.image_manifest(scratch, config, [layer], {})
    tags = [target.tag or "latest"]
    return registry.push_image(target, target, scratch,
                               [(layer.descriptor, store.path(layer.descriptor.digest))],
                               config, manifest, tags)
