"""Fixtures shared by the unit tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No MODELRELEASE_* or MLFLOW_TRACKING* variables from outside, and a working
    directory of the test's own (no .env file, no deployments/ of this checkout)."""
    for name in list(os.environ):
        if name.upper().startswith(("MODELRELEASE_", "MLFLOW_TRACKING")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return monkeypatch
