"""Faults-tier fixtures. ``alone_on_the_stack``: a test module that restarts the stack's
parts (``test_restarts.py``) or loads the whole node (``test_concurrency.py``) uses it, so
under ``scripts/suite`` it waits until the other stack part (``--part=stack-b``), which
shares the stack, has finished; ``tests/conftest.py`` runs such modules last. The kills of
the release process (``test_kill.py``) touch only their own endpoint and run before them,
beside stack-b."""

from __future__ import annotations

import pytest

from tests.shared_stack import wait_for_guest


@pytest.fixture(scope="session")
def alone_on_the_stack() -> None:
    """Wait for the shared stack's guest to finish (a no-op without one)."""
    wait_for_guest()
