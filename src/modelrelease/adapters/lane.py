"""A lean asyncio HTTP/1.1 client for the load generator's plain-http targets (h11).

httpx costs ~0.45 ms of CPU per request; at 1,000 req/s on a 2-core machine shared with the
server under test, the generator's own CPU queueing then shows up in the measured tail.
This client does the least per request (~0.1 ms): the request's bytes come from h11 (the
parser httpx itself uses) and are written on a keep-alive connection's non-blocking socket
from the caller's stack (no task, no transport, no future per request); the response is
read and parsed in the socket's reader callback; completion is a plain callback.

**Response end.** The end of a response is the kernel's receive timestamp of its last
bytes (``SO_TIMESTAMPNS``, Linux), not the time the event loop got round to reading
them: the loop may be busy with other responses, or the process descheduled, and that
delay is the generator's, not the server's. Where the kernel gives no timestamp the
reading time is used. (Sends need no such care: the load generator times requests from
their *scheduled* send.)

**Connections.** A ``LanePool`` holds the keep-alive connections to one origin: a request
takes an idle connection or opens a new one (it never waits for a busy one, so an
open-loop schedule is never held up by a slow answer), and a connection goes back to the
idle list when its response has ended and both sides may reuse it. The host is resolved
once, when the pool is prepared. No pipelining: one request at a time per connection.

**Outcomes.** ``LanePool.request`` calls ``on_done(done, status, headers, body, error)``
exactly once, from the loop: ``done`` is the loop time (``loop.time()``) the response
ended or the failure was seen; ``error`` is ``None`` for a response (any status) and
otherwise names the failure after the httpx exception it corresponds to
(``ConnectError``, ``ConnectTimeout``, ``ReadTimeout``, ``ReadError``, ``WriteError``,
``RemoteProtocolError``), so reports read the same whichever client sent the request.
``timeout`` bounds each request as a whole, connecting included.

Plain http only: https targets go through httpx (TLS, proxies' identities).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import h11

__all__ = ["SO_TIMESTAMPNS", "LanePool", "OnDone"]

# done (loop time), status, headers, body, error
OnDone = Callable[[float, int | None, Sequence[tuple[bytes, bytes]], bytes, str | None], None]

# receive timestamps as struct timespec (absent from the socket module; 35 on Linux)
SO_TIMESTAMPNS: int | None = getattr(socket, "SO_TIMESTAMPNS",
                                     35 if sys.platform == "linux" else None)
_TIMESPEC = struct.Struct("@ll")  # time_t tv_sec; long tv_nsec
_RECV_SIZE = 256 * 1024
_ANCILLARY_SIZE = socket.CMSG_SPACE(_TIMESPEC.size)
_CLOSED = {  # the server hung up mid-exchange (httpcore's words); key: a response began
    False: "RemoteProtocolError: Server disconnected without sending a response.",
    True: "RemoteProtocolError: peer closed connection without sending complete message body",
}


class _Connection:
    """One keep-alive connection on a non-blocking socket: at most one request in flight."""

    def __init__(self, pool: LanePool, sock: socket.socket) -> None:
        self.pool = pool
        self.loop = pool.loop
        self.sock = sock
        self.fd = sock.fileno()
        self.h11 = h11.Connection(h11.CLIENT)
        self.on_done: OnDone | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.written = 0.0
        self.unsent: memoryview | None = None
        self.status: int | None = None
        self.headers: Sequence[tuple[bytes, bytes]] = ()
        self.body: list[bytes] = []
        self.closed = False
        self.loop.add_reader(self.fd, self._readable)

    def send(self, events: Sequence[h11.Event], on_done: OnDone, deadline: float) -> None:
        """Write one request now; ``on_done`` is called once, with its response or failure."""
        self.on_done = on_done
        self.status, self.headers, self.body = None, (), []
        self.timer = self.loop.call_at(deadline, self._timed_out)
        try:
            data = b"".join(self.h11.send(event) or b"" for event in events)
        except h11.LocalProtocolError as exc:
            self._fail(self.loop.time(), f"LocalProtocolError: {exc}")
            return
        self.written = self.loop.time()
        try:
            sent = self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            self._fail(self.loop.time(), f"WriteError: {exc}")
            return
        if sent < len(data):  # a full socket buffer: the rest when it drains
            self.unsent = memoryview(data)[sent:]
            self.loop.add_writer(self.fd, self._writable)

    def _writable(self) -> None:
        assert self.unsent is not None
        try:
            sent = self.sock.send(self.unsent)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._fail(self.loop.time(), f"WriteError: {exc}")
            return
        self.unsent = self.unsent[sent:]
        if not self.unsent:
            self.unsent = None
            self.loop.remove_writer(self.fd)

    def _readable(self) -> None:
        now = self.loop.time()
        try:
            data, ancillary, _, _ = self.sock.recvmsg(_RECV_SIZE, _ANCILLARY_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._fail(now, f"ReadError: {exc}")
            return
        if self.on_done is None:
            self._close()  # the server closed an idle connection, or spoke out of turn
            return
        if ancillary:
            now = self._arrival(now, ancillary)
        try:
            self.h11.receive_data(data)  # b"": the server closed its side
            self._events(now)
        except h11.RemoteProtocolError as exc:
            self._fail(now, f"RemoteProtocolError: {exc}" if data else _CLOSED[
                self.status is not None])
            return
        if not data and self.on_done is not None:
            self._fail(now, _CLOSED[self.status is not None])

    def _arrival(self, now: float, ancillary: list[tuple[int, int, bytes]]) -> float:
        """The kernel's receive time of these bytes on the loop's clock (else ``now``)."""
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS \
                    and len(payload) >= _TIMESPEC.size:
                seconds, nanoseconds = _TIMESPEC.unpack_from(payload)
                before, wall, after = self.loop.time(), time.time(), self.loop.time()
                arrived = seconds + nanoseconds * 1e-9 - wall + (before + after) / 2
                # a wall-clock step shows as an arrival outside the request's span: ignore
                return arrived if self.written <= arrived <= now else now
        return now

    def _events(self, now: float) -> None:
        while True:
            event = self.h11.next_event()
            if isinstance(event, h11.Data):
                self.body.append(event.data)
            elif isinstance(event, h11.Response):
                self.status, self.headers = event.status_code, event.headers
            elif isinstance(event, h11.EndOfMessage):
                self._finish(now)
                return
            elif event is h11.NEED_DATA:
                return
            elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                self._fail(now, _CLOSED[self.status is not None])
                return
            # InformationalResponse (1xx): keep reading for the final response

    def _finish(self, now: float) -> None:
        on_done, self.on_done = self.on_done, None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
            self.h11.start_next_cycle()
            self.pool.idle.append(self)
        else:
            self._close()  # e.g. "Connection: close"
        assert on_done is not None
        on_done(now, self.status, self.headers, b"".join(self.body), None)

    def _fail(self, now: float, error: str) -> None:
        on_done, self.on_done = self.on_done, None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self._close()
        if on_done is not None:
            on_done(now, None, (), b"", error)

    def _timed_out(self) -> None:
        self.timer = None
        self._fail(self.loop.time(), "ReadTimeout: timed out")

    def _close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.pool.forget(self)
        self.loop.remove_reader(self.fd)
        if self.unsent is not None:
            self.unsent = None
            self.loop.remove_writer(self.fd)
        self.sock.close()

    def abort(self, error: str) -> None:
        """Close now; a request in flight fails with ``error``."""
        self._fail(self.loop.time(), error)


class LanePool:
    """Keep-alive HTTP/1.1 connections to one plain-http origin.

    Args:
        host: the origin's host (a name is resolved once, by ``prepare``).
        port: its port.
        timeout_s: bound on each request, connecting included.
    """

    def __init__(self, host: str, port: int, timeout_s: float) -> None:
        self.loop = asyncio.get_running_loop()
        self.host = host
        self.port = port
        self.timeout_s = timeout_s
        self.addresses: list[tuple[socket.AddressFamily, Any]] = []  # resolved once
        self.idle: list[_Connection] = []
        self.connections: set[_Connection] = set()
        self.connecting: set[asyncio.Task[None]] = set()

    async def prepare(self) -> None:
        """Resolve the host and open one connection, before any timed request.

        Failures are left for the requests to meet (and report): nothing is raised.
        """
        try:
            async with asyncio.timeout(self.timeout_s):
                self.addresses = await self._resolve()
                self.idle.append(await self._open())
        except (OSError, TimeoutError):
            return

    def request(self, events: Sequence[h11.Event], on_done: OnDone) -> None:
        """Send one request (h11 events: ``Request``, any ``Data``, ``EndOfMessage``).

        On an idle connection it is written before this returns; otherwise a new connection
        is opened for it. ``on_done`` is called exactly once, later, from the loop.
        """
        deadline = self.loop.time() + self.timeout_s
        if self.idle:
            self.idle.pop().send(events, on_done, deadline)  # the most recently used
            return
        task = self.loop.create_task(self._connect_and_send(events, on_done, deadline))
        self.connecting.add(task)
        task.add_done_callback(self.connecting.discard)

    async def _connect_and_send(self, events: Sequence[h11.Event], on_done: OnDone,
                                deadline: float) -> None:
        try:
            async with asyncio.timeout_at(deadline):
                connection = await self._open()
        except TimeoutError:
            on_done(self.loop.time(), None, (), b"", "ConnectTimeout: timed out")
            return
        except OSError as exc:
            on_done(self.loop.time(), None, (), b"", f"ConnectError: {exc}")
            return
        except asyncio.CancelledError:
            on_done(self.loop.time(), None, (), b"", "ConnectError: the pool was closed")
            raise
        connection.send(events, on_done, deadline)

    async def _resolve(self) -> list[tuple[socket.AddressFamily, Any]]:
        infos = await self.loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        if not infos:
            raise OSError(f"no address for {self.host}")
        return [(info[0], info[4]) for info in infos]

    async def _open(self) -> _Connection:
        """A new connection: to the address that worked last, else each in turn."""
        addresses = list(self.addresses) or await self._resolve()
        for attempt, (family, address) in enumerate(addresses):
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if SO_TIMESTAMPNS is not None:
                    with contextlib.suppress(OSError):
                        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
                await self.loop.sock_connect(sock, address)
            except OSError:
                sock.close()
                if attempt == len(addresses) - 1:
                    raise
                continue
            except BaseException:
                sock.close()
                raise
            if attempt and (family, address) in self.addresses:
                # e.g. "localhost": ::1 refused, 127.0.0.1 taken; try that one first from now
                self.addresses.remove((family, address))
                self.addresses.insert(0, (family, address))
            connection = _Connection(self, sock)
            self.connections.add(connection)
            return connection
        raise OSError(f"no address for {self.host}")  # unreachable: _resolve gives one

    def forget(self, connection: _Connection) -> None:
        """Drop a closed connection from the pool."""
        self.connections.discard(connection)
        if connection in self.idle:
            self.idle.remove(connection)

    async def aclose(self) -> None:
        """Close every connection and pending connect (requests in flight fail)."""
        for task in list(self.connecting):
            task.cancel()
        if self.connecting:
            await asyncio.gather(*self.connecting, return_exceptions=True)
        for connection in list(self.connections):
            connection.abort("ReadError: the pool was closed")
        self.idle.clear()
