"""modelrelease.domain imports no vendor SDK: proven in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

FORBIDDEN = ("kubernetes", "httpx", "mlflow", "prefect")

SCRIPT = textwrap.dedent(
    """
    import importlib, json, pkgutil, sys
    import modelrelease.domain as domain
    names = [domain.__name__] + [
        info.name for info in pkgutil.walk_packages(domain.__path__, domain.__name__ + ".")
    ]
    for name in names:
        importlib.import_module(name)
    forbidden = %r
    loaded = sorted(
        m for m in sys.modules if m.split(".")[0] in forbidden
    )
    print(json.dumps({"modules": names, "loaded": loaded}))
    """
)


@pytest.fixture(scope="module")
def imported() -> dict[str, list[str]]:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT % (FORBIDDEN,)],
        capture_output=True, text=True, check=True, timeout=120,
    )
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_every_domain_module_was_imported(imported: dict[str, list[str]]) -> None:
    assert {
        "modelrelease.domain",
        "modelrelease.domain.image",
        "modelrelease.domain.model",
        "modelrelease.domain.reference",
        "modelrelease.domain.requirements",
    } <= set(imported["modules"])


@pytest.mark.parametrize("vendor", [pytest.param(v, id=v) for v in FORBIDDEN])
def test_domain_imports_no_vendor_sdk(imported: dict[str, list[str]], vendor: str) -> None:
    assert [m for m in imported["loaded"] if m.split(".")[0] == vendor] == []
