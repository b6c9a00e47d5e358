"""The engine that sends a pod's shadow copies to the canary and records both answers.

:class:`Mirror` runs on an asyncio loop, as the lean client of ``adapters.lane`` (h11 on
keep-alive sockets): at most ``senders`` copies in flight, ``queue_size`` more waiting, the
rest dropped and counted. It runs in the shadow sender, a child process of the serving
process (``serving.shadow_sender``), so none of its work is taken from the users.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import SplitResult, urlsplit

import h11

from modelrelease.adapters.lane import LanePool
from modelrelease.domain.shadow import (
    REQUEST_ID_HEADER,
    SERVED_HEADER,
    SHADOW_HEADER,
    ShadowRecord,
    answer_digest,
)
from modelrelease.errors import InvalidInput

QUEUE_SIZE: Final = 1000
"""Copies that may wait for a sender; one more is dropped."""
SENDERS: Final = 16
"""Copies in flight at once, each on a keep-alive connection of its own."""
TIMEOUT_S: Final = 10.0
"""How long a copy may wait for the canary's answer before it counts as failed."""
KEEP: Final = 10_000
"""Records a pod keeps (the oldest go first); the judge reads them as they come."""
_SERVED: Final = SERVED_HEADER.lower().encode()


def target_of(target: str) -> SplitResult:
    """``target`` split, when it is a plain ``http://HOST[:PORT]`` URL.

    Raises:
        InvalidInput: It is not.
    """
    url = urlsplit(target)
    if url.scheme != "http" or not url.hostname:
        raise InvalidInput(f"shadow target {target!r}: copies go to the canary Service "
                           "over plain http://HOST[:PORT]")
    return url


@dataclass(frozen=True)
class Copy:
    """One live request to send to the canary, and the answer its user got."""

    request_id: str
    body: bytes
    headers: tuple[tuple[str, str], ...]
    primary_status: int
    primary_body: bytes
    payloads: bool
    primary_ms: float = 0.0
    """How long the primary took to start answering (``SERVED_HEADER``'s measure)."""


class Mirror:
    """Sends copies to ``target`` with at most ``senders`` in flight, and records answers.

    Runs on an asyncio loop (the shadow sender's), as the lean client of ``adapters.lane``.
    A copy is sent at once while fewer than ``senders`` are in flight, else waits in a
    queue of ``queue_size``; beyond that it is dropped.

    Args:
        target: The canary Service's base URL (``http://E-canary.NS.svc:8080``).
        queue_size: Copies that may wait; beyond it :meth:`offer` drops.
        senders: Copies in flight at once (each on a connection of its own).
        timeout: Seconds a copy may take, connecting included.
        keep: Records kept.

    Raises:
        InvalidInput: ``target`` is not a plain ``http://HOST[:PORT]`` URL.
    """

    def __init__(self, target: str, *, queue_size: int = QUEUE_SIZE, senders: int = SENDERS,
                 timeout: float = TIMEOUT_S, keep: int = KEEP) -> None:
        url = target_of(target)
        self.host, self.port = str(url.hostname), url.port or 80
        self.path = url.path.rstrip("/") + "/invocations"
        self.authority = url.netloc.encode()
        self.queue_size, self.senders, self.timeout = queue_size, senders, timeout
        self.waiting: deque[Copy] = deque()
        self.in_flight = 0
        self.pool: LanePool | None = None  # made on the mirror's loop, at the first copy
        self.records: deque[ShadowRecord] = deque(maxlen=keep)
        self.counts = {"offered": 0, "answered": 0, "failed": 0, "dropped": 0, "agreed": 0,
                       "disagreed": 0}
        self._seq = 0

    def pending(self) -> int:
        """Copies not answered yet: waiting, or in flight."""
        return len(self.waiting) + self.in_flight

    def offer(self, copy: Copy) -> bool:
        """Send or queue ``copy`` without waiting; False (counted as dropped) when full.

        Call it from the mirror's loop.
        """
        if self.in_flight < self.senders:
            self._send(copy)
        elif len(self.waiting) < self.queue_size:
            self.waiting.append(copy)
        else:
            self.drop()
            return False
        self.counts["offered"] += 1
        return True

    def drop(self) -> None:
        """Count a copy that was not sent."""
        self.counts["dropped"] += 1

    def last_seq(self) -> int:
        """The number of the last record made (0: none yet)."""
        return self._seq

    def snapshot(self, after: int = 0) -> tuple[dict[str, int], list[ShadowRecord]]:
        """The counts, and the records numbered above ``after``."""
        return self.counts | {"queued": self.pending()}, [r for r in self.records
                                                           if r.seq > after]

    def _send(self, copy: Copy) -> None:
        if self.pool is None:
            self.pool = LanePool(self.host, self.port, self.timeout)
        headers = [(b"host", self.authority), (b"content-length", str(len(copy.body)).encode()),
                   *((k.encode("latin-1"), v.encode("latin-1")) for k, v in copy.headers),
                   (SHADOW_HEADER.encode(), copy.request_id.encode("latin-1")),
                   (REQUEST_ID_HEADER.encode(), copy.request_id.encode("latin-1"))]
        events = (h11.Request(method="POST", target=self.path, headers=headers),
                  h11.Data(data=copy.body), h11.EndOfMessage())
        sent = self.pool.loop.time()
        self.in_flight += 1

        def done(at: float, status: int | None, headers: Sequence[tuple[bytes, bytes]],
                 body: bytes, error: str | None) -> None:
            self.in_flight -= 1
            served = next((v for k, v in headers if k.lower() == _SERVED), None)
            took = _ms(served) if served is not None else None
            self._record(copy, None if error else status,
                         (at - sent) * 1000.0 if took is None else took, body, error)
            if self.waiting and self.in_flight < self.senders:
                self._send(self.waiting.popleft())

        self.pool.request(events, done)

    def _record(self, copy: Copy, status: int | None, took_ms: float, body: bytes,
                error: str | None) -> None:
        self._seq += 1
        record = ShadowRecord(
            self._seq, copy.request_id, copy.primary_status, answer_digest(copy.primary_body),
            status, took_ms, None if status is None else answer_digest(body), error=error,
            payloads=_texts(copy, body) if copy.payloads else None, primary_ms=copy.primary_ms)
        self.records.append(record)
        failed = record.canary_failed
        self.counts["failed" if failed else "answered"] += 1
        if record.agree is not None:
            self.counts["agreed" if record.agree else "disagreed"] += 1


def _ms(value: bytes) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def _texts(copy: Copy, canary: bytes) -> tuple[str, str, str]:
    return (copy.body.decode("utf-8", "replace"), copy.primary_body.decode("utf-8", "replace"),
            canary.decode("utf-8", "replace"))

