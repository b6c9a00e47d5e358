"""Open-loop HTTP load generator (asyncio): the judge's samples, canary and primary at once.

**Open loop.** Request ``i`` of every arm is scheduled at ``start + i / rate`` (arms offset
by a fraction of the interval so their sends interleave), and it is sent at that time
whether or not earlier requests have answered. A slow server therefore cannot lower the
offered load and hide its latency, as it would with a closed loop (N workers each waiting
for the previous answer).

**No coordinated omission.** Each request's latency is measured from its *scheduled* send
time to the end of its response body (on plain http: the kernel's receive time of its
last bytes, see ``lane``), not from when it actually left. If the generator
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

**Scheduling.** One callback chain on the loop's timers sends everything due, then sleeps
until the next due time (no task per request on plain http; see below). A full garbage
collection of the process's old objects cannot stall the timeline: they are frozen
(``gc.freeze``) for the run.

**Clients.** Plain-http targets (pods, loopback) go through ``lane.LanePool``: h11 on
keep-alive sockets, ~0.1 ms of CPU per request, so ~5,000 req/s on one core and, at
1,000 req/s on 2 cores shared with the server, a p99 within ~1-2% of the server's own.
https targets, and any run given a ``transport`` factory (e.g. the API server proxy's
identity, or ``httpx.MockTransport`` in tests), go through httpx at ~0.45 ms per request
(~2,000 req/s), in *lanes*: httpcore's connection pool scans every connection and every
queued request on each event, which turns quadratic with tens of requests in flight
(measured here: 1,500 req/s with 10 in flight, 500 req/s with 30), so each lane is an
httpx transport holding one keep-alive connection. Either way a request takes an idle
connection or opens a new one (never waits for one), so connections grow to the peak
concurrency. The arm's request is built once (``httpx.Request``; the lean client sends the
same method, target, headers and body); the httpx lanes share one TLS context, and
environment proxy settings are not used (the generator measures the target, not a proxy).

**Slices.** A target may carry ``variants``: slice values with a weight, each with its own
body or headers. Request ``i`` of every arm sends the variant the *largest deficit* rule
picks (the one furthest below its weight's share of the first ``i + 1`` requests), so
the mix is exact and evenly spread, and the same in every arm; each record carries its
slice value for the judge.

Logging: one DEBUG line per arm per run (not per request: at 1,000 req/s a line per request
would cost more than the request).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import logging
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import h11
import httpx

from modelrelease.adapters.lane import LanePool
from modelrelease.domain.analysis import ArmSamples, Samples

logger = logging.getLogger(__name__)

EARLY_S = 0.001  # a request due this soon is sent now (timer granularity), timed from its send

__all__ = ["ArmReport", "LoadReport", "RequestRecord", "Target", "Variant", "generate_load",
           "variant_sequence"]


@dataclass(frozen=True)
class Variant:
    """One slice of an arm's requests: its value, its weight, and what it changes."""

    slice: str
    weight: float
    content: bytes | None = None  # None: the target's body
    headers: Mapping[str, str] = field(default_factory=dict)  # over the target's


@dataclass(frozen=True)
class Target:
    """One arm: where to send and what (``variants``: a slice mix, see the module doc)."""

    name: str
    url: str
    method: str = "GET"
    content: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    variants: tuple[Variant, ...] = ()


def variant_sequence(weights: Sequence[float], count: int) -> list[int]:
    """Which variant each of ``count`` requests sends: the largest-deficit rule.

    Request ``i`` goes to the variant with the largest ``share * (i + 1) - sent so far``
    (ties: the first), so every prefix of the sequence is as close to the mix as whole
    requests allow.
    """
    total = sum(weights)
    shares = [w / total for w in weights]
    sent = [0] * len(weights)
    out = []
    for i in range(count):
        pick = max(range(len(weights)), key=lambda v: shares[v] * (i + 1) - sent[v])
        sent[pick] += 1
        out.append(pick)
    return out


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
    slice: str = ""  # the variant's slice value ("": the target has no variants)


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
        sliced = any(r.slice for r in self.requests)
        return ArmSamples(
            tuple(max(r.latency_ms, 1e-6) for r in self.requests),
            tuple(r.ok for r in self.requests),
            tuple(r.slice for r in self.requests) if sliced else (),
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


def _requests(target: Target, timeout: timedelta) -> list[httpx.Request]:
    """The arm's requests, one per variant (or the one without), built once."""
    if not target.variants:
        return [_request(target, timeout, target.content, target.headers)]
    return [_request(target, timeout, v.content if v.content is not None else target.content,
                     {**target.headers, **v.headers}) for v in target.variants]


def _request(target: Target, timeout: timedelta, content: bytes | None,
             headers: Mapping[str, str]) -> httpx.Request:
    """One request of the arm (credentials in the URL become basic auth)."""
    url = httpx.URL(target.url)
    headers = dict(headers)
    if url.username or url.password:
        token = base64.b64encode(f"{url.username}:{url.password}".encode()).decode()
        headers.setdefault("Authorization", f"Basic {token}")
        url = url.copy_with(username=None, password=None)
    return httpx.Request(target.method, url, content=content, headers=headers,
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
        transport: makes one httpx lane, for every arm (default: the lean h11 client for
            plain http, an ``httpx.AsyncHTTPTransport`` limited to one connection for
            https); e.g. a factory of ``httpx.MockTransport`` to fake faults.
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
    for target in targets:
        if any(not (v.weight > 0 and math.isfinite(v.weight)) for v in target.variants):
            raise ValueError(f"generate load: {target.name}: variant weights must be positive")
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
    # plain http without a transport of the caller's: the lean h11 client; else httpx
    lean = [transport is None and httpx.URL(t.url).scheme == "http" for t in targets]
    make = transport
    if make is None and not all(lean):
        make = _httpx_lane_factory()
        await _warm_up(make)
    return await _run(make, lean, targets, rate, per_arm, timeout, max_in_flight,
                      rate_tolerance, ok)


def _httpx_lane_factory() -> Callable[[], httpx.AsyncBaseTransport]:
    """One-connection transports sharing one TLS context (building one costs ~35 ms)."""
    context = httpx.create_ssl_context()
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)

    def lane() -> httpx.AsyncBaseTransport:
        return httpx.AsyncHTTPTransport(verify=context, limits=limits)

    return lane


async def _warm_up(make: Callable[[], httpx.AsyncBaseTransport]) -> None:
    """One request through a fresh httpx lane to a throwaway local socket, before the timeline.

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


def _h11_events(request: httpx.Request) -> tuple[h11.Event, ...]:
    """The arm's request as h11 events (same method, target, headers and body as httpx)."""
    head = h11.Request(method=request.method, target=request.url.raw_path,
                       headers=request.headers.raw)
    body = request.content
    return (head, h11.Data(data=body), h11.EndOfMessage()) if body else (
        head, h11.EndOfMessage())


@contextlib.contextmanager
def _quiet_gc() -> Iterator[None]:
    """Keep the collector's full passes off the process's old objects during the timeline.

    A full collection scans every tracked object (in the release flow, hundreds of
    thousands: Prefect, the kubernetes client...) and stalls the loop for tens of ms, which
    the open-loop timeline charges to every request due meanwhile. Freezing what exists
    before the run (``gc.freeze``, undone after) leaves the collector only the run's own
    objects; it keeps running, so a long run does not grow without bound.
    """
    freeze = gc.get_freeze_count() == 0  # leave a caller's own freeze alone
    if freeze:
        gc.freeze()
    try:
        yield
    finally:
        if freeze:
            gc.unfreeze()


async def _run(
    make: Callable[[], httpx.AsyncBaseTransport] | None, lean: Sequence[bool],
    targets: Sequence[Target], rate: float, per_arm: int, timeout: timedelta,
    max_in_flight: int, rate_tolerance: float, ok: Callable[[httpx.Response], bool],
) -> LoadReport:
    loop = asyncio.get_running_loop()
    interval = 1.0 / rate
    records: list[list[RequestRecord | None]] = [[None] * per_arm for _ in targets]
    sent_at: list[list[float]] = [[0.0] * per_arm for _ in targets]
    requests = [_requests(t, timeout) for t in targets]
    picks = [variant_sequence([v.weight for v in t.variants], per_arm) if t.variants
             else [0] * per_arm for t in targets]
    slices = [[v.slice for v in t.variants] or [""] for t in targets]
    default_ok = ok is _default_ok
    pools: list[LanePool | None] = [None] * len(targets)
    events: list[list[tuple[h11.Event, ...]]] = [[] for _ in targets]
    free: list[list[httpx.AsyncBaseTransport]] = [[] for _ in targets]
    lanes: list[httpx.AsyncBaseTransport] = []
    tasks: list[asyncio.Task[None]] = []
    in_flight = 0
    position = 0
    paused = stopped = False
    drained: asyncio.Future[None] = loop.create_future()

    def record(arm: int, index: int, scheduled: float, sent: float, done: float,
               status: int | None, good: bool, error: str | None) -> None:
        records[arm][index] = RequestRecord(
            scheduled_s=scheduled - start, lag_ms=(sent - scheduled) * 1e3,
            latency_ms=(done - min(scheduled, sent)) * 1e3, service_ms=(done - sent) * 1e3,
            status=status, ok=good, error=error, slice=slices[arm][picks[arm][index]],
        )

    def fail(exc: BaseException) -> None:
        if not drained.done():
            drained.set_exception(exc)

    def release() -> None:
        nonlocal in_flight, paused
        in_flight -= 1
        if paused and in_flight < max_in_flight:
            paused = False
            loop.call_soon(tick)
        if in_flight == 0 and position == len(timeline) and not drained.done():
            drained.set_result(None)

    def send_lean(arm: int, index: int, scheduled: float) -> None:
        pool = pools[arm]
        assert pool is not None

        def on_done(done: float, status: int | None, headers: Sequence[tuple[bytes, bytes]],
                    body: bytes, error: str | None) -> None:
            try:
                good = status is not None and (
                    200 <= status < 300 if default_ok else
                    ok(httpx.Response(status, headers=list(headers), content=body,
                                      request=requests[arm][picks[arm][index]])))
                record(arm, index, scheduled, sent, done, status, good, error)
            except Exception as exc:  # noqa: BLE001 - ``ok`` is the caller's: raised at the end
                fail(exc)
            finally:
                release()

        sent = sent_at[arm][index] = loop.time()
        pool.request(events[arm][picks[arm][index]], on_done)

    async def send_httpx(arm: int, index: int, scheduled: float) -> None:
        assert make is not None
        try:
            if free[arm]:
                lane = free[arm].pop()
            else:
                lane = make()
                lanes.append(lane)
            sent = sent_at[arm][index] = loop.time()
            status: int | None = None
            error: str | None = None
            good = False
            request = requests[arm][picks[arm][index]]
            try:
                response = await lane.handle_async_request(request)
                try:
                    await response.aread()
                    done = loop.time()  # before the connection goes back to the lane's pool
                finally:
                    await response.aclose()
                response.request = request
                status, good = response.status_code, ok(response)
            except httpx.HTTPError as exc:
                done = loop.time()
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            free[arm].append(lane)
            record(arm, index, scheduled, sent, done, status, good, error)
        finally:
            release()

    def surface(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and (exc := task.exception()) is not None:
            fail(exc)  # e.g. ``ok`` raised: not a failed request but the caller's bug

    def start_httpx(arm: int, index: int, scheduled: float) -> None:
        task = loop.create_task(send_httpx(arm, index, scheduled))
        task.add_done_callback(surface)
        tasks.append(task)

    def tick() -> None:
        """Send everything due (a timer's wake-up is ~1 ms coarse), then sleep till the next."""
        nonlocal in_flight, position, paused
        if stopped:
            return
        try:
            while position < len(timeline):
                offset, arm, index = timeline[position]
                scheduled = start + offset
                if scheduled - loop.time() > EARLY_S:
                    # timers round up to the next ms: aim 1 ms early so the wake-up lands
                    # before the due time; the request then leaves early, timed from its send
                    loop.call_at(scheduled - EARLY_S, tick)
                    return
                if in_flight >= max_in_flight:
                    paused = True  # resumed by ``release``; the wait shows as lag
                    return
                in_flight += 1
                position += 1
                senders[arm](arm, index, scheduled)
            if in_flight == 0 and not drained.done():
                drained.set_result(None)
        except Exception as exc:  # noqa: BLE001 - raised from ``generate_load`` below
            fail(exc)

    # the arms' timelines interleave: arm j is offset by j / len(targets) of an interval
    timeline = sorted(
        (index * interval + arm * interval / len(targets), arm, index)
        for index in range(per_arm) for arm in range(len(targets))
    )
    senders: list[Callable[[int, int, float], None]] = []
    try:
        for arm, variants in enumerate(requests):
            if lean[arm]:
                url = variants[0].url
                pool = pools[arm] = LanePool(url.host, url.port or 80, timeout.total_seconds())
                await pool.prepare()
                events[arm] = [_h11_events(request) for request in variants]
                senders.append(send_lean)
            else:
                senders.append(start_httpx)
        with _quiet_gc():
            start = loop.time() + 0.01
            loop.call_at(start - EARLY_S, tick)
            await drained
        if tasks:
            await asyncio.gather(*tasks)
    finally:
        stopped = True
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for lane in lanes:
            await lane.aclose()
        for each in pools:
            if each is not None:
                await each.aclose()
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
