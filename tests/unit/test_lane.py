"""The lean HTTP/1.1 client of the load generator against scripted servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import h11
import pytest

from modelrelease.adapters.lane import SO_TIMESTAMPNS, LanePool

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def events(path: str = "/", body: bytes = b"") -> tuple[h11.Event, ...]:
    headers = [("Host", "127.0.0.1")]
    if body:
        headers.append(("Content-Length", str(len(body))))
    head = h11.Request(method="POST" if body else "GET", target=path, headers=headers)
    return (head, h11.Data(data=body), h11.EndOfMessage()) if body else (
        head, h11.EndOfMessage())


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """The head of the next request (b"" at EOF), its body consumed."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return b""
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            await reader.readexactly(int(line.split(b":")[1]))
    return head


class Server:
    """A scripted server: counts connections, answers with ``answer`` (None: hang up)."""

    def __init__(self, answer: Callable[[bytes, int], Awaitable[bytes | None]],
                 close_after: bool) -> None:
        self.answer = answer
        self.close_after = close_after
        self.connections = 0
        self.heads: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while head := await read_request(reader):
                self.heads.append(head)
                reply = await self.answer(head, len(self.heads))
                if reply is None:
                    break
                writer.write(reply)
                await writer.drain()
                if self.close_after:
                    break
        finally:
            writer.close()


async def call(pool: LanePool, request: Sequence[h11.Event] = events()) -> dict[str, Any]:
    """One request; what ``on_done`` got, plus the loop time it was called at."""
    loop = asyncio.get_running_loop()
    result: asyncio.Future[dict[str, Any]] = loop.create_future()
    before = loop.time()

    def on_done(done: float, status: int | None, headers: Sequence[tuple[bytes, bytes]],
                body: bytes, error: str | None) -> None:
        assert not result.done(), "on_done called twice"
        result.set_result({"done": done, "status": status, "headers": dict(headers),
                           "body": body, "error": error, "called": loop.time(),
                           "before": before})

    pool.request(request, on_done)
    return await result


def run(answer: Callable[[bytes, int], Awaitable[bytes | None]],
        body: Callable[[LanePool, Server], Awaitable[None]], timeout_s: float = 5.0,
        host: str = "127.0.0.1", close_after: bool = False) -> Server:
    server = Server(answer, close_after)

    async def main() -> None:
        listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        pool = LanePool(host, port, timeout_s)
        try:
            await pool.prepare()
            await body(pool, server)
        finally:
            await pool.aclose()
            listener.close()
            await listener.wait_closed()

    asyncio.run(main())
    return server


def test_keep_alive_reuses_one_connection_for_sequential_requests() -> None:
    async def answer(head: bytes, n: int) -> bytes:
        return OK

    async def body(pool: LanePool, server: Server) -> None:
        for _ in range(5):
            got = await call(pool, events("/x", b'{"a": 1}'))
            assert (got["status"], got["body"], got["error"]) == (200, b"ok", None)
            assert got["before"] <= got["done"] <= got["called"]

    server = run(answer, body)
    assert server.connections == 1  # the one opened by prepare
    assert len(server.heads) == 5
    assert server.heads[0].startswith(b"POST /x HTTP/1.1\r\n")


def test_concurrent_requests_never_wait_for_a_busy_connection() -> None:
    async def answer(head: bytes, n: int) -> bytes:
        await asyncio.sleep(0.1)
        return OK

    async def body(pool: LanePool, server: Server) -> None:
        got = await asyncio.gather(*(call(pool) for _ in range(4)))
        assert [g["status"] for g in got] == [200] * 4
        # all four in flight at once: none waited ~0.1 s for another's connection
        assert max(g["done"] - g["before"] for g in got) < 0.1 + 0.09
        assert len(pool.idle) == 4

    server = run(answer, body)
    assert server.connections == 4


def test_chunked_body_headers_and_connection_close() -> None:
    async def answer(head: bytes, n: int) -> bytes:
        return (b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n"
                b"X-Arm: canary\r\nConnection: close\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")

    async def body(pool: LanePool, server: Server) -> None:
        first = await call(pool)
        assert (first["status"], first["body"], first["error"]) == (503, b"abcde", None)
        assert first["headers"][b"x-arm"] == b"canary"
        assert not pool.connections  # "Connection: close": not kept
        second = await call(pool)
        assert second["status"] == 503

    assert run(answer, body).connections == 2


def test_body_delimited_by_close() -> None:
    async def answer(head: bytes, n: int) -> bytes:
        return b"HTTP/1.0 200 OK\r\n\r\nuntil the end"

    async def body(pool: LanePool, server: Server) -> None:
        got = await call(pool)
        assert (got["status"], got["body"], got["error"]) == (200, b"until the end", None)
        assert not pool.connections

    run(answer, body, close_after=True)


def test_a_name_resolving_to_several_addresses_uses_the_one_that_answers() -> None:
    """"localhost" may resolve to ::1 first; the server listens on 127.0.0.1 only."""

    async def answer(head: bytes, n: int) -> bytes:
        return OK

    async def body(pool: LanePool, server: Server) -> None:
        for _ in range(3):
            assert (await call(pool))["status"] == 200

    assert run(answer, body, host="localhost").connections == 1


def test_disconnect_without_response_is_a_protocol_error() -> None:
    async def answer(head: bytes, n: int) -> None:
        return None  # close the connection instead

    async def body(pool: LanePool, server: Server) -> None:
        got = await call(pool)
        assert got["status"] is None
        assert got["error"].startswith("RemoteProtocolError: Server disconnected")

    run(answer, body)


def test_timeout_is_a_read_timeout_and_the_connection_is_dropped() -> None:
    async def answer(head: bytes, n: int) -> bytes:
        await asyncio.sleep(2.0)
        return OK

    async def body(pool: LanePool, server: Server) -> None:
        got = await call(pool)
        assert got["error"] == "ReadTimeout: timed out"
        assert got["done"] - got["before"] >= 0.2 - 0.002
        assert not pool.connections

    run(answer, body, timeout_s=0.2)


def test_refused_connection_is_a_connect_error() -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()

    async def main() -> None:
        pool = LanePool("127.0.0.1", port, 1.0)
        await pool.prepare()  # nothing raised: the requests report it
        got = await call(pool)
        assert got["status"] is None
        assert got["error"].startswith("ConnectError: ")
        await pool.aclose()

    asyncio.run(main())


def test_unresolvable_host_is_a_connect_error() -> None:
    async def main() -> None:
        pool = LanePool("no-such-host.invalid", 80, 2.0)
        await pool.prepare()
        got = await call(pool)
        assert got["error"].startswith("ConnectError: ")
        await pool.aclose()

    asyncio.run(main())


def test_an_idle_connection_closed_by_the_server_is_replaced() -> None:
    async def answer(head: bytes, n: int) -> bytes:
        return OK  # then hang up (no "Connection: close" said)

    async def body(pool: LanePool, server: Server) -> None:
        assert (await call(pool))["status"] == 200
        await asyncio.sleep(0.05)  # the EOF arrives on the idle connection: forgotten
        assert not pool.connections and not pool.idle
        assert (await call(pool))["status"] == 200

    assert run(answer, body, close_after=True).connections == 2


def test_closing_the_pool_fails_requests_in_flight() -> None:
    async def answer(head: bytes, n: int) -> bytes:
        await asyncio.sleep(5.0)
        return OK

    async def body(pool: LanePool, server: Server) -> None:
        pending = asyncio.ensure_future(call(pool))
        await asyncio.sleep(0.05)
        await pool.aclose()
        got = await pending
        assert got["error"] == "ReadError: the pool was closed"

    run(answer, body)


@pytest.mark.parametrize("status", [100, 103])
def test_informational_responses_are_skipped(status: int) -> None:
    async def answer(head: bytes, n: int) -> bytes:
        return f"HTTP/1.1 {status} Info\r\n\r\n".encode() + OK

    async def body(pool: LanePool, server: Server) -> None:
        got = await call(pool)
        assert (got["status"], got["body"]) == (200, b"ok")

    run(answer, body)


def test_disconnect_mid_body_is_a_protocol_error() -> None:
    async def answer(head: bytes, n: int) -> bytes:
        return b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"

    async def body(pool: LanePool, server: Server) -> None:
        got = await call(pool)
        assert got["status"] is None
        assert got["error"].startswith("RemoteProtocolError: peer closed connection")

    run(answer, body, close_after=True)


def test_garbage_is_a_protocol_error() -> None:
    async def answer(head: bytes, n: int) -> bytes:
        return b"NOT HTTP AT ALL\r\n\r\n"

    async def body(pool: LanePool, server: Server) -> None:
        got = await call(pool)
        assert got["status"] is None
        assert got["error"].startswith("RemoteProtocolError: ")
        assert not pool.connections

    run(answer, body)


@pytest.mark.skipif(SO_TIMESTAMPNS is None, reason="no kernel receive timestamps here")
def test_the_response_end_is_when_it_arrived_not_when_the_loop_read_it() -> None:
    """A loop busy elsewhere when the response arrives does not add to the latency."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    sent: list[float] = []
    answered = threading.Event()

    def serve() -> None:  # a thread: it answers while the loop below is blocked
        conn, _ = listener.accept()
        with conn:
            while data := conn.recv(65536):
                if b"\r\n\r\n" in data:
                    conn.sendall(OK)
                    sent.append(time.monotonic())  # the bytes are in our socket by now
                    answered.set()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()

    async def main() -> dict[str, Any]:
        pool = LanePool("127.0.0.1", port, 5.0)
        await pool.prepare()
        pending = asyncio.ensure_future(call(pool))
        while not answered.is_set():  # let the loop write the request, and no more
            await asyncio.sleep(0)
            answered.wait(0.01)  # the loop is blocked while the answer arrives
        time.sleep(0.3)  # and stays busy well after it arrived
        got = await pending
        await pool.aclose()
        return got

    got = asyncio.run(main())
    listener.close()
    thread.join(5)
    assert got["status"] == 200
    (arrived_by,) = sent
    # The loop read the answer at least 0.3 s after it arrived; the end is the kernel's
    # arrival stamp, which precedes the server's sendall returning. The margin is half the
    # loop's delay: converting the stamp to the monotonic clock reads two clocks, and a
    # loaded machine (the whole suite beside) can preempt the thread between the reads.
    assert got["called"] - arrived_by >= 0.3
    assert got["done"] <= arrived_by + 0.15
