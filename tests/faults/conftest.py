"""Faults-tier fixtures. ``alone_on_the_stack``: a test module that restarts the stack's
parts (``test_restarts.py``) uses it, so under ``scripts/suite`` it waits until the other
stack part (``--part=stack-b``), which shares the stack, has finished; ``tests/conftest.py``
runs such modules last. The tier's other modules (kills of the release process, releases
at once) touch only their own endpoints and run beside the other part."""

from __future__ import annotations

import pytest

from tests.shared_stack import wait_for_guest


@pytest.fixture(scope="session")
def alone_on_the_stack() -> None:
    """Wait for the shared stack's guest to finish (a no-op without one)."""
    wait_for_guest()
