"""The shadow sender: a child process of a serving pod that sends its copies.

Each copy costs CPU: a request written, an answer parsed, two digests. Done on the serving
loop, that time is taken from the users: a request arriving meanwhile waits for it, and
the primary's p99 grew by 5 to 11% at 30 requests/s (``benchmarks/shadow.py``). So the
serving process only hands each copy over a Unix socket to this child
(:class:`SenderProcess`: one length-prefixed frame, written without waiting; a buffer
past ``BUFFER`` drops the copy and counts it), and the child sends them
(``serving.shadow.Mirror``, on its own loop and interpreter lock), records the answers,
and answers the serving process's questions (counts, records) on a second socket. It
pushes its counts every half second, for the pod's ``/metrics``. It exits when the
serving process goes (its sockets close).

Run as ``python -m modelrelease.serving.shadow_sender DATA_FD CONTROL_FD TARGET QUEUE
SENDERS TIMEOUT KEEP``; :class:`SenderProcess` starts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import struct
import subprocess
import sys
from collections.abc import Iterable
from typing import Any, Final

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from modelrelease.domain.shadow import ShadowRecord
from modelrelease.serving.mirror import (
    KEEP,
    QUEUE_SIZE,
    SENDERS,
    TIMEOUT_S,
    Copy,
    Mirror,
    target_of,
)

BUFFER: Final = 8 << 20
"""Bytes of copies the serving process may have handed over and the child not read yet."""
NICE: Final = 10
"""How much lower the child's CPU priority is than the serving process's."""
PUSH_S: Final = 0.5
"""How often the child pushes its counts."""
_LENGTH = struct.Struct(">I")


def frame(payload: bytes) -> bytes:
    """``payload`` with its length in front."""
    return _LENGTH.pack(len(payload)) + payload


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    """The next frame's payload (``asyncio.IncompleteReadError`` at the end)."""
    (length,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
    return await reader.readexactly(length)


def encode_copy(copy: Copy) -> bytes:
    """A copy as one frame's payload: its fields as JSON, then the request and the answer."""
    head = json.dumps({"id": copy.request_id, "headers": copy.headers,
                       "status": copy.primary_status, "payloads": copy.payloads,
                       "ms": copy.primary_ms}).encode()
    return b"".join((_LENGTH.pack(len(head)), head, _LENGTH.pack(len(copy.body)), copy.body,
                     copy.primary_body))


def decode_copy(payload: bytes) -> Copy:
    """What :func:`encode_copy` wrote."""
    (size,) = _LENGTH.unpack_from(payload, 0)
    head = json.loads(payload[4:4 + size])
    (body_size,) = _LENGTH.unpack_from(payload, 4 + size)
    start = 8 + size
    return Copy(head["id"], payload[start:start + body_size],
                tuple((str(k), str(v)) for k, v in head["headers"]), int(head["status"]),
                payload[start + body_size:], bool(head["payloads"]), float(head["ms"]))


class _Counts(Collector):
    """The child's counts (as last pushed) and the serving process's own drops, exported."""

    def __init__(self, sender: SenderProcess) -> None:
        self.sender = sender

    def collect(self) -> Iterable[Any]:
        counts = self.sender.counts()
        copies = CounterMetricFamily("modelrelease_shadow_copies",
                                     "Live requests copied to the canary, by outcome.",
                                     labels=["outcome"])
        for outcome in ("answered", "failed", "dropped"):
            copies.add_metric([outcome], counts.get(outcome, 0))
        yield copies
        agreement = CounterMetricFamily(
            "modelrelease_shadow_agreement",
            "Copies both tracks answered, by whether the answers agree.", labels=["agree"])
        agreement.add_metric(["true"], counts.get("agreed", 0))
        agreement.add_metric(["false"], counts.get("disagreed", 0))
        yield agreement
        yield GaugeMetricFamily("modelrelease_shadow_queue",
                                "Copies waiting to be sent or answered.",
                                value=counts.get("queued", 0))


class SenderProcess:
    """The serving process's side of the sender: hands copies over, asks for records.

    Made on the serving loop (the first ``PUT /modelrelease/shadow``); :meth:`start` must be
    awaited before :meth:`offer`. Arguments as :class:`~modelrelease.serving.shadow.Mirror`
    takes them, passed on to the child.

    Raises:
        InvalidInput: ``target`` is not a plain ``http://HOST[:PORT]`` URL.
    """

    def __init__(self, target: str, registry: CollectorRegistry | None = None, *,
                 queue_size: int = QUEUE_SIZE, senders: int = SENDERS,
                 timeout: float = TIMEOUT_S, keep: int = KEEP) -> None:
        target_of(target)  # refused here, before a process is started for it
        self.args = [target, str(queue_size), str(senders), str(timeout), str(keep)]
        self.dropped = 0
        self.offered = 0
        self.pushed: dict[str, int] = {}
        self.last = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.data: asyncio.StreamWriter | None = None
        self.control: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self.asking = asyncio.Lock()
        if registry is not None:
            registry.register(_Counts(self))

    async def start(self) -> None:
        """Start the child and connect to it (once)."""
        if self.proc is not None:
            return
        data, child_data = socket.socketpair()
        control, child_control = socket.socketpair()
        fds = (child_data.fileno(), child_control.fileno())
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "modelrelease.serving.shadow_sender", *map(str, fds),
             *self.args], pass_fds=fds)
        child_data.close()
        child_control.close()
        reader, self.data = await asyncio.open_unix_connection(sock=data)
        self.control = await asyncio.open_unix_connection(sock=control)
        asyncio.get_running_loop().create_task(self._counts_from(reader))

    async def _counts_from(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                self.pushed = json.loads(await read_frame(reader))
        except (asyncio.IncompleteReadError, ConnectionError):
            return

    def offer(self, copy: Copy) -> bool:
        """Hand ``copy`` to the child without waiting; False (counted) past ``BUFFER``."""
        writer = self.data
        payload = encode_copy(copy)
        if writer is None or writer.is_closing() or \
                writer.transport.get_write_buffer_size() + len(payload) > BUFFER:
            self.drop()
            return False
        writer.write(frame(payload))
        self.offered += 1
        return True

    def drop(self) -> None:
        """Count a copy the serving process did not hand over."""
        self.dropped += 1

    def counts(self) -> dict[str, int]:
        """The child's counts as last pushed, with what is on its way to it and the drops.

        ``offered``: copies the child took (or will: handed over, not read yet);
        ``dropped``: those it could not take, and those never handed over.
        """
        pushed = self.pushed
        taken, refused = pushed.get("offered", 0), pushed.get("dropped", 0)
        on_the_way = max(0, self.offered - taken - refused)
        return pushed | {"offered": taken + on_the_way, "dropped": refused + self.dropped,
                         "queued": pushed.get("queued", 0) + on_the_way}

    async def snapshot(self, after: int = 0) -> tuple[dict[str, int], list[ShadowRecord]]:
        """The counts now, and the records numbered above ``after`` (asked of the child)."""
        assert self.control is not None, "start() first"
        reader, writer = self.control
        async with self.asking:
            try:
                writer.write(frame(json.dumps({"after": after}).encode()))
                answer = json.loads(await read_frame(reader))
            except (asyncio.IncompleteReadError, ConnectionError):
                # the child is gone (its counts stay as last pushed); nothing more to read
                return self.counts() | {"sender_exited": 1}, []
        self.pushed, self.last = answer["counts"], int(answer["last"])
        return self.counts(), [ShadowRecord.from_json(item) for item in answer["records"]]

    def last_seq(self) -> int:
        """The last record's number, as of the last :meth:`snapshot`."""
        return self.last


async def _child(data_fd: int, control_fd: int, target: str, queue_size: int, senders: int,
                 timeout: float, keep: int) -> None:
    mirror = Mirror(target, queue_size=queue_size, senders=senders, timeout=timeout,
                    keep=keep)
    data_reader, data_writer = await asyncio.open_unix_connection(
        sock=socket.socket(fileno=data_fd))
    control_reader, control_writer = await asyncio.open_unix_connection(
        sock=socket.socket(fileno=control_fd))

    async def copies() -> None:
        while True:
            mirror.offer(decode_copy(await read_frame(data_reader)))

    async def questions() -> None:
        while True:
            asked = json.loads(await read_frame(control_reader))
            counts, records = mirror.snapshot(int(asked.get("after", 0)))
            control_writer.write(frame(json.dumps({
                "counts": counts, "last": mirror.last_seq(),
                "records": [r.as_json() for r in records]}).encode()))

    async def push() -> None:
        while True:
            await asyncio.sleep(PUSH_S)
            counts, _ = mirror.snapshot(mirror.last_seq())
            data_writer.write(frame(json.dumps(counts).encode()))

    tasks = [asyncio.create_task(work()) for work in (copies, questions, push)]
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in tasks:
        task.cancel()
    # the serving process is gone (or a frame was malformed): nothing left to copy for


def main(argv: list[str]) -> None:
    """The child's entry point (module doc), at a lower CPU priority than the serving."""
    data_fd, control_fd, target, queue_size, senders, timeout, keep = argv
    os.nice(NICE)  # short of CPU, the pod serves its users first: copies wait or drop
    with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError, KeyboardInterrupt):
        asyncio.run(_child(int(data_fd), int(control_fd), target, int(queue_size),
                           int(senders), float(timeout), int(keep)))


if __name__ == "__main__":
    main(sys.argv[1:])
