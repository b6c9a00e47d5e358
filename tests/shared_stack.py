"""One local stack shared by two pytest processes (``scripts/suite``'s stack parts).

``--part=stack-a`` owns the stack: it starts it (after the tests that start a node of their
own), runs most stack tests, and stops it at the end. ``--part=stack-b`` is its guest: it
waits until the stack is up and re-uses it (its tests need only the stack's addresses, not
its processes), running the flow and UI tests meanwhile. The tests that restart the stack's
parts (``tests/faults/test_restarts.py``) and the owner's final stop wait until the guest
has finished.

Set by ``scripts/suite`` (not ``MODELRELEASE_*``: the pipeline's settings would take them
for theirs); without them each pytest process starts a stack of its own:

- ``SUITE_STACK_ROOT``: the stack's directory (its ``stack.json`` says it is up);
- ``SUITE_GUEST_DONE``: a file the guest's end creates (the owner waits for it);
- ``SUITE_OWNER_DONE``: a file the owner's end creates (a guest still waiting
  for a stack that never came gives up).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from modelrelease_localstack.stack import Stack
from modelrelease_localstack.stack_state import read_state, unhealthy

ROOT_ENV = "SUITE_STACK_ROOT"
GUEST_DONE_ENV = "SUITE_GUEST_DONE"
OWNER_DONE_ENV = "SUITE_OWNER_DONE"
WAIT_S = 60 * 60
"""How long either side waits for the other: longer than any part of the suite."""


def shared_root() -> Path | None:
    """The shared stack's directory, when the suite shares one."""
    root = os.environ.get(ROOT_ENV)
    return Path(root) if root else None


def wait_until(done: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    """Poll ``done`` every second; fail the test (not hang) after ``timeout``."""
    deadline = time.monotonic() + timeout
    said = False
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {timeout:.0f}s for {what}", pytrace=False)
        if not said:
            print(f"[shared stack] waiting for {what}", flush=True)
            said = True
        time.sleep(1)


def wait_for_guest() -> None:
    """In the owner: wait until the guest has finished (no-op without a guest)."""
    done = os.environ.get(GUEST_DONE_ENV)
    if done:
        wait_until(Path(done).exists, "the other stack part (flows, ui) to finish")


def _stack_up(root: Path) -> bool:
    state = read_state(root)
    if state is not None and state.phase == "up" and not unhealthy(state):
        return True
    owner_done = os.environ.get(OWNER_DONE_ENV)
    if owner_done and Path(owner_done).exists():
        pytest.fail(f"the owning stack part ended without a stack in {root}", pytrace=False)
    return False


@contextmanager
def shared_stack(root: Path, part: str, gpus: int) -> Iterator[Stack]:
    """The session's stack in a shared ``root``: started by ``stack-a``, re-used by
    ``stack-b``.

    The owner stops it at the end, once the guest has finished.
    """
    if part == "stack-b":
        wait_until(lambda: _stack_up(root), f"the stack in {root} (started by the other part)")
        guest = Stack(root, gpus=gpus, detached=True, metrics_server=False)
        guest.up()
        assert guest.reused, f"{root}: the stack was not up to re-use"
        yield guest  # the owner stops it
        return
    owner = Stack(root, gpus=gpus, detached=True, metrics_server=False)  # see metrics_server
    try:
        owner.up()
    except BaseException:  # the guest waits for this stack: tell it there will be none
        owner_done = os.environ.get(OWNER_DONE_ENV)
        if owner_done:
            Path(owner_done).touch()
        raise
    try:
        yield owner
    finally:
        wait_for_guest()
        owner.down()
