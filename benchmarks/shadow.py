"""Benchmark: what shadow copies cost the primary's users (``modelrelease.serving.shadow``).

Run ``.venv/bin/python benchmarks/shadow.py [--rates 30,150] [--seconds 10] [--rounds 3]``.
Starts two real serving processes on 127.0.0.1 (``python -m modelrelease.serving``, the
entrypoint the images run), each with a real iris model saved by MLflow: the primary,
whose ``MODELRELEASE_SHADOW_TARGET`` is the canary, and the canary. For each rate (the
default 30 req/s is the judge's load rate, ``PipelineSettings.release.load_rate``; 150 is
5x it) the open-loop generator (``adapters.loadgen``, coordinated-omission free) loads the
primary as users would, for ``--seconds``, alternating shadow off and shadow on at 100%
(``PUT /modelrelease/shadow``) for ``--rounds`` rounds each, so drift on a shared machine
falls on both. The baseline is the same primary with shadow off, in the same run.

In a cluster the canary's pods have CPU of their own; here all three processes share the
machine's cores. The canary therefore runs at the lowest priority (``--canary-nice 19``),
so it gets what the primary and the users leave, as a canary on other cores would take
nothing from them: a canary that falls behind shows as copies dropped, not as users'
latency. ``--canary-nice 0`` measures the shared machine instead.

One JSON line per rate:
``{"bench":"shadow","mirror_pct":100,"rate_rps":…,"primary_p50_ms_off":…,
"primary_p50_ms_on":…,"primary_p99_ms_off":…,"primary_p99_ms_on":…,"mirrored":…,
"dropped":…, ...}``; ``p99_change_pct`` is on against off, ``mirrored`` the copies the
canary answered, ``dropped`` those the primary's queue could not take, ``failed`` those
that got no answer, ``users_errors`` the users' non-2xx answers with shadow on.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from modelrelease.adapters.loadgen import Target, generate_load
from modelrelease.domain.shadow import CONTROL_PATH, TARGET_ENV, TOKEN_ENV, TOKEN_HEADER
from modelrelease_localstack.demo_model import save_iris_model

TOKEN = "bench-shadow-token"
BODY = json.dumps({"dataframe_split": {
    "columns": ["sepal_length", "sepal_width", "petal_length", "petal_width"],
    "data": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]}}).encode()


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serving(model: Path, env: dict[str, str], nice: int = 0) -> Iterator[str]:
    """``python -m modelrelease.serving`` on a free loopback port; yields its URL."""
    port = free_port()
    proc = subprocess.Popen(
        ["nice", "-n", str(nice), sys.executable, "-m", "modelrelease.serving"],
        env=os.environ | env | {"MODELRELEASE_MODEL_PATH": str(model),
                                "MODELRELEASE_PORT": str(port),
                                "MODELRELEASE_HOST": "127.0.0.1"},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                said = proc.stderr.read() if proc.stderr else ""
                raise RuntimeError(f"serving {model} exited: {said}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/ping", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"serving {model}: no /ping in 120 s")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def load(url: str, rate: float, seconds: float) -> tuple[list[float], int]:
    """Users' latencies (ms, from each request's scheduled send) and their errors."""
    report = asyncio.run(generate_load(
        [Target("primary", f"{url}/invocations", "POST", BODY,
                {"Content-Type": "application/json"})],
        rate, duration=timedelta(seconds=seconds)))
    records = report.arms["primary"].requests
    return [r.latency_ms for r in records], sum(1 for r in records if not r.ok)


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.5) - 1))]


def counts(http: httpx.Client, primary: str) -> dict[str, int]:
    answer = http.get(f"{primary}{CONTROL_PATH}", params={"after": 10**12},
                      headers={TOKEN_HEADER: TOKEN})
    answer.raise_for_status()
    return dict(answer.json()["counts"])


def bench_rate(http: httpx.Client, primary: str, rate: float, seconds: float,
               rounds: int, canary_nice: int) -> dict[str, Any]:
    off: list[float] = []
    on: list[float] = []
    users_errors = 0
    auth = {TOKEN_HEADER: TOKEN}
    load(primary, rate, 2.0)  # warm both, connections and caches
    before = counts(http, primary) if rounds else {}
    for round_ in range(rounds):
        http.delete(f"{primary}{CONTROL_PATH}", headers=auth).raise_for_status()
        latencies, _ = load(primary, rate, seconds)
        off += latencies
        http.put(f"{primary}{CONTROL_PATH}", headers=auth,
                 json={"percent": 100, "seconds": 3600}).raise_for_status()
        latencies, errors = load(primary, rate, seconds)
        on += latencies
        users_errors += errors
        log(f"rate {rate:g}/s round {round_ + 1}/{rounds}: p99 off "
            f"{quantile(off, 0.99):.2f} ms, on {quantile(on, 0.99):.2f} ms")
    http.delete(f"{primary}{CONTROL_PATH}", headers=auth).raise_for_status()
    deadline = time.monotonic() + 60
    while counts(http, primary).get("queued", 0) and time.monotonic() < deadline:
        time.sleep(0.2)
    after = counts(http, primary)
    p99_off, p99_on = quantile(off, 0.99), quantile(on, 0.99)
    return {"bench": "shadow", "mirror_pct": 100, "rate_rps": rate,
            "primary_p50_ms_off": round(quantile(off, 0.5), 2),
            "primary_p50_ms_on": round(quantile(on, 0.5), 2),
            "primary_p99_ms_off": round(p99_off, 2), "primary_p99_ms_on": round(p99_on, 2),
            "p99_change_pct": round((p99_on / p99_off - 1) * 100, 1),
            "mirrored": after["answered"] - before.get("answered", 0),
            "dropped": after["dropped"] - before.get("dropped", 0),
            "failed": after["failed"] - before.get("failed", 0),
            "agreed": after["agreed"] - before.get("agreed", 0),
            "users_requests_on": len(on), "users_errors": users_errors,
            "seconds_per_round": seconds, "rounds": rounds, "canary_nice": canary_nice,
            "loadavg_1m": round(os.getloadavg()[0], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="30,150")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--canary-nice", type=int, default=19)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-shadow-") as tmp:
        root = Path(tmp)
        log("saving the models")
        save_iris_model(str(root / "primary"))
        save_iris_model(str(root / "canary"), c=0.5)
        with serving(root / "canary", {}, nice=args.canary_nice) as canary, \
                serving(root / "primary", {TARGET_ENV: canary, TOKEN_ENV: TOKEN}) as primary, \
                httpx.Client(timeout=30) as http:
            log(f"primary {primary} copies to canary {canary}")
            for rate in (float(r) for r in args.rates.split(",")):
                print(json.dumps(bench_rate(http, primary, rate, args.seconds, args.rounds,
                                            args.canary_nice)),
                      flush=True)


if __name__ == "__main__":
    main()
