"""Open-loop HTTP load generator (httpx async): the judge's samples, canary and primary at once.

**Open loop.** Request ``i`` of every arm is scheduled at ``start + i / rate`` (arms offset
by a fraction of the interval so their sends interleave), and it is sent at that time
whether or not earlier requests have answered. A slow server therefore cannot lower the
offered load and hide its latency, as it would with a closed loop (N workers each waiting
for the previous answer).

**No coordinated omission.** Each request's latency is measured from its *scheduled* send
time to the end of its response body, not from when it actually left. If the generator
falls behind (its own CPU, the connection pool, ``max_in_flight``), the wait is charged to
the latency, as wrk2 does, and the report says so: ``lag`` is actual minus scheduled send
time, and ``held`` tells whether the achieved rate stayed within ``rate_tolerance`` of the
target. ``service_ms`` (actual send to response) is kept too, for diagnosis. The event
loop's timers fire with about 1 ms granularity, so a request due within ``EARLY_S`` (1 ms)
is sent at once rather than slept for; such a request is timed from its actual send.

**Bounds.** A run stops scheduling after ``max_requests`` per arm or ``duration``, whichever
comes first (at least one is required), then waits for the requests in flight (each bounded
by ``timeout``).

**Outcomes.** A response is ok when ``ok(response)`` is true (default: a 2xx status);
timeouts and transport errors are failed requests with no status. Nothing is raised for a
failing target: failures are data for the judge.

**Connections.** httpcore's connection pool scans every connection and every queued
request on each event, which turns quadratic with tens of requests in flight (measured
here: 1,500 req/s with 10 in flight, 500 req/s with 30). So each arm keeps *lanes*: httpx
transports holding one keep-alive connection each. A request takes a free lane or opens a
new one (never waits for one), so lanes grow to the peak concurrency, every pool stays at
one connection, and the generator reaches ~2,500 req/s on one core. Requests go straight to
the transport (``handle_async_request``), built once per arm; the lanes share one TLS
context, and environment proxy settings are not used (the generator measures the target,
not a proxy).

Logging: one DEBUG line per arm per run (not per request: at 1,000 req/s a line per request
would cost more than the request).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import httpx

from modelrelease.domain.analysis import ArmSamples, Samples

logger = logging.getLogger(__name__)

EARLY_S = 0.001  # a request due this soon is sent now (timer granularity), timed from its send

__all__ = ["ArmReport", "LoadReport", "RequestRecord", "Target", "generate_load"]


@dataclass(frozen=True)
class Target:
    """One arm: where to send and what."""

    name: str
    url: str
    method: str = "GET"
    content: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RequestRecord:
    """One request: when it was due, how late it left, how long it took, how it ended."""

    scheduled_s: float  # due time, seconds after the run's start
    lag_ms: float  # actual send minus scheduled send (down to -EARLY_S: sent a little early)
    latency_ms: float  # response end minus *scheduled* send (coordinated-omission free)
    service_ms: float  # response end minus actual send
    status: int | None
    ok: bool
    error: str | None = None


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


@dataclass(frozen=True)
class ArmReport:
    """One arm's requests and whether the generator kept to its timeline."""

    name: str
    target_rps: float
    requests: tuple[RequestRecord, ...]
    achieved_rps: float
    lag_p99_ms: float
    lag_max_ms: float
    held: bool

    @property
    def errors(self) -> int:
        """Requests that failed."""
        return sum(not r.ok for r in self.requests)

    def samples(self) -> ArmSamples:
        """The judge's view: latency from the scheduled send, and success."""
        return ArmSamples(
            tuple(max(r.latency_ms, 1e-6) for r in self.requests),
            tuple(r.ok for r in self.requests),
        )

    def latency_quantile(self, q: float) -> float:
        """Nearest-rank quantile (0..1) of all requests' latency in ms."""
        return _quantile([r.latency_ms for r in self.requests], q)


@dataclass(frozen=True)
class LoadReport:
    """A run against every arm: one ``ArmReport`` per target name."""

    arms: Mapping[str, ArmReport]
    target_rps: float
    duration_s: float

    @property
    def held(self) -> bool:
        """Whether every arm got its requested rate (within the tolerance)."""
        return all(arm.held for arm in self.arms.values())

    @property
    def lag_reason(self) -> str | None:
        """Why the rate was not held, with the numbers; None when it was."""
        late = [a for a in self.arms.values() if not a.held]
        if not late:
            return None
        return "; ".join(
            f"could not hold {a.target_rps:g} req/s on {a.name}: achieved "
            f"{a.achieved_rps:.1f} req/s, sends up to {a.lag_max_ms:.1f} ms late "
            f"(p99 {a.lag_p99_ms:.1f} ms)" for a in late
        )

    def samples(self, canary: str = "canary", primary: str = "primary") -> Samples:
        """Both arms as the judge's ``Samples``."""
        return Samples(self.arms[canary].samples(), self.arms[primary].samples())


def _redacted(url: str) -> str:
    parsed = httpx.URL(url)
    if not parsed.password:
        return url
    return str(parsed.copy_with(username=parsed.username, password="***"))


def _request(target: Target, timeout: timedelta) -> httpx.Request:
    """The arm's request, built once (credentials in the URL become basic auth)."""
    url = httpx.URL(target.url)
    headers = dict(target.headers)
    if url.username or url.password:
        token = base64.b64encode(f"{url.username}:{url.password}".encode()).decode()
        headers.setdefault("Authorization", f"Basic {token}")
        url = url.copy_with(username=None, password=None)
    return httpx.Request(target.method, url, content=target.content, headers=headers,
                         extensions={"timeout": httpx.Timeout(timeout.total_seconds()).as_dict()})


def _default_ok(response: httpx.Response) -> bool:
    return response.is_success


async def generate_load(
    targets: Sequence[Target],
    rate: float,
    *,
    max_requests: int | None = None,
    duration: timedelta | None = None,
    timeout: timedelta = timedelta(seconds=10),
    transport: Callable[[], httpx.AsyncBaseTransport] | None = None,
    max_in_flight: int = 1000,
    rate_tolerance: float = 0.02,
    ok: Callable[[httpx.Response], bool] = _default_ok,
) -> LoadReport:
    """Send ``rate`` requests per second to each target on a fixed timeline.

    Args:
        targets: the arms (distinct names), all loaded at the same rate in the same window.
        rate: requests per second per arm.
        max_requests: stop after this many requests per arm.
        duration: stop scheduling after this long.
        timeout: per-request timeout (a timed-out request is a failed request).
        transport: makes one lane (default: ``httpx.AsyncHTTPTransport`` limited to one
            connection); e.g. a factory of ``httpx.MockTransport`` to fake faults.
        max_in_flight: requests outstanding at once across arms (each holds a connection);
            beyond it the generator waits, which shows as lag and in ``held``.
        rate_tolerance: relative shortfall of the achieved rate still counted as held.
        ok: whether a response counts as a success (default: 2xx).

    Returns:
        A ``LoadReport`` with every request and, per arm, the achieved rate and lag.
    """
    if not targets:
        raise ValueError("generate load: no targets")
    if len({t.name for t in targets}) != len(targets):
        raise ValueError("generate load: target names must be distinct")
    if not (rate > 0 and math.isfinite(rate)):
        raise ValueError(f"generate load: rate must be a positive number, got {rate}")
    if max_requests is None and duration is None:
        raise ValueError("generate load: give max_requests, duration or both")
    count = max_requests if max_requests is not None else math.inf
    if duration is not None:
        count = min(count, math.floor(duration.total_seconds() * rate))
    per_arm = int(count)
    if per_arm <= 0:
        raise ValueError("generate load: the bounds allow no request")
    if transport is None:
        make = _lane_factory()
        await _warm_up(make)
    else:
        make = transport
    return await _run(make, targets, rate, per_arm, timeout, max_in_flight, rate_tolerance, ok)


def _lane_factory() -> Callable[[], httpx.AsyncBaseTransport]:
    """One-connection transports sharing one TLS context (building one costs ~35 ms)."""
    context = httpx.create_ssl_context()
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)

    def lane() -> httpx.AsyncBaseTransport:
        return httpx.AsyncHTTPTransport(verify=context, limits=limits)

    return lane


async def _warm_up(make: Callable[[], httpx.AsyncBaseTransport]) -> None:
    """One request through a fresh lane to a throwaway local socket, before the timeline.

    The first request of a process pays ~60 ms of lazy imports and setup in httpcore and
    anyio; without this, the first scheduled requests would carry it as latency.
    """

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    lane = make()
    try:
        port = server.sockets[0].getsockname()[1]
        response = await lane.handle_async_request(httpx.Request("GET", f"http://127.0.0.1:{port}/"))
        await response.aread()
        await response.aclose()
    finally:
        await lane.aclose()
        server.close()
        await server.wait_closed()


async def _run(
    make: Callable[[], httpx.AsyncBaseTransport], targets: Sequence[Target], rate: float,
    per_arm: int, timeout: timedelta, max_in_flight: int, rate_tolerance: float,
    ok: Callable[[httpx.Response], bool],
) -> LoadReport:
    loop = asyncio.get_running_loop()
    interval = 1.0 / rate
    records: list[list[RequestRecord | None]] = [[None] * per_arm for _ in targets]
    sent_at: list[list[float]] = [[0.0] * per_arm for _ in targets]
    in_flight = 0
    room = asyncio.Event()
    requests = [_request(t, timeout) for t in targets]
    free: list[list[httpx.AsyncBaseTransport]] = [[] for _ in targets]
    lanes: list[httpx.AsyncBaseTransport] = []

    async def send(arm: int, index: int, scheduled: float, start: float) -> None:
        nonlocal in_flight
        if free[arm]:
            lane = free[arm].pop()
        else:
            lane = make()
            lanes.append(lane)
        sent = loop.time()
        sent_at[arm][index] = sent
        status: int | None = None
        error: str | None = None
        good = False
        try:
            response = await lane.handle_async_request(requests[arm])
            try:
                await response.aread()
                done = loop.time()  # before the connection goes back to the lane's pool
            finally:
                await response.aclose()
            response.request = requests[arm]
            status, good = response.status_code, ok(response)
        except httpx.HTTPError as exc:
            done = loop.time()
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        finally:
            free[arm].append(lane)
            in_flight -= 1
            room.set()
        records[arm][index] = RequestRecord(
            scheduled_s=scheduled - start, lag_ms=(sent - scheduled) * 1e3,
            latency_ms=(done - min(scheduled, sent)) * 1e3, service_ms=(done - sent) * 1e3,
            status=status, ok=good, error=error,
        )

    # the arms' timelines interleave: arm j is offset by j / len(targets) of an interval
    timeline = sorted(
        (index * interval + arm * interval / len(targets), arm, index)
        for index in range(per_arm) for arm in range(len(targets))
    )
    tasks: list[asyncio.Task[None]] = []
    start = loop.time() + 0.01
    for offset, arm, index in timeline:
        scheduled = start + offset
        delay = scheduled - loop.time()
        if delay > EARLY_S:
            # the loop's timers round up to the next ms: aim 1 ms early so the wake-up
            # lands before the due time; the request then leaves early, timed from its send
            await asyncio.sleep(delay - EARLY_S)
        while in_flight >= max_in_flight:
            room.clear()
            await room.wait()
        in_flight += 1
        tasks.append(loop.create_task(send(arm, index, scheduled, start)))
    try:
        await asyncio.gather(*tasks)
    finally:
        for lane in lanes:
            await lane.aclose()
    finished = loop.time()

    arms: dict[str, ArmReport] = {}
    for arm, target in enumerate(targets):
        done = tuple(r for r in records[arm] if r is not None)
        first = start + arm * interval / len(targets)
        span = sent_at[arm][-1] - first + interval
        achieved = per_arm / span
        lags = [r.lag_ms for r in done]
        report = ArmReport(
            name=target.name, target_rps=rate, requests=done, achieved_rps=achieved,
            lag_p99_ms=_quantile(lags, 0.99), lag_max_ms=max(lags),
            held=achieved >= rate * (1.0 - rate_tolerance),
        )
        arms[target.name] = report
        logger.debug(
            "load %s %s: %d requests at %.1f/%.1f req/s, %d errors, p50 %.1f ms, p99 %.1f ms, "
            "lag p99 %.1f ms", target.method, _redacted(target.url), per_arm, achieved, rate,
            report.errors, report.latency_quantile(0.5), report.latency_quantile(0.99),
            report.lag_p99_ms,
        )
    return LoadReport(arms=arms, target_rps=rate, duration_s=finished - start)
