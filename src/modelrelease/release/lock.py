"""The endpoint's lock, held for a release or a rollback, or a refusal that says how to go on."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from modelrelease.errors import ReleaseInProgress
from modelrelease.release.ports import Cluster
from modelrelease.settings import ReleaseConfig


@contextlib.contextmanager
def holding_lock(cluster: Cluster, holder: str, options: ReleaseConfig, doing: str
                 ) -> Iterator[None]:
    """Hold the endpoint's lock as ``holder`` while inside.

    Raises:
        ReleaseInProgress: another holder has it (after ``options.wait_for_lock_s``); the
            message starts with ``doing`` (``release endpoint ns/name``).
    """
    with cluster.lock(holder, options.lock_ttl_s, options.wait_for_lock_s) as got:
        if not got:
            raise ReleaseInProgress(
                f"{doing}: another release holds its lock; wait for it, abort it "
                "(modelrelease abort), or allow waiting with "
                "MODELRELEASE_RELEASE__WAIT_FOR_LOCK_S")
        yield
