"""The faults tier restarts the stack's parts: under ``scripts/suite`` it waits until the
other stack part (flows, ui: ``--part=stack-b``), which shares the stack, has finished."""

from __future__ import annotations

import pytest

from tests.shared_stack import wait_for_guest


@pytest.fixture(scope="session", autouse=True)
def alone_on_the_stack() -> None:
    """Wait for the shared stack's guest to finish (a no-op without one)."""
    wait_for_guest()
