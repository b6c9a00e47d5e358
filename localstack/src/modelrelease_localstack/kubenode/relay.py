"""A TCP relay from the node's address to the API server on loopback (the ``kubernetes`` Service).

The API server binds 127.0.0.1 only, and an EndpointSlice cannot name a loopback address, so
pods cannot reach it through the ``kubernetes`` Service (10.96.0.1:443) by themselves. The node
runs this relay as one of its processes: it listens on the node's bridge address
(``10.245.N.1:PORT``, an address the project creates) and copies bytes both ways to the API
server's ``127.0.0.1:PORT``. TLS stays end to end between the pod and the API server (whose
certificate names 10.96.0.1 and ``kubernetes.default.svc``); the relay sees only ciphertext.
The node points the ``kubernetes`` Endpoints and EndpointSlice at the relay
(:func:`kubernetes_endpoints`, :func:`kubernetes_endpointslice`).

Standard library only, run as a script (``python relay.py --listen ... --to ...``): it starts
in a few tens of milliseconds and does not import the project.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Final

__all__ = ["ENDPOINTS_MANAGER", "kubernetes_endpoints", "kubernetes_endpointslice", "main"]

ENDPOINTS_MANAGER: Final = "modelrelease-kubenode"
"""Field manager (and EndpointSlice ``managed-by``) of the ``kubernetes`` endpoints."""
_CHUNK: Final = 64 * 1024


def kubernetes_endpoints(address: str, port: int) -> dict[str, object]:
    """The ``default/kubernetes`` Endpoints naming the relay (not mirrored: the slice is ours)."""
    return {
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": address}],
                     "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}],
    }


def kubernetes_endpointslice(address: str, port: int) -> dict[str, object]:
    """The ``default/kubernetes`` EndpointSlice naming the relay (what kube-proxy reads)."""
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "kubernetes",
                                "endpointslice.kubernetes.io/managed-by":
                                    f"{ENDPOINTS_MANAGER}.modelrelease.io"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
    }


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


async def _serve(listen: tuple[str, int], target: tuple[str, int], ready: Path | None) -> None:
    async def relay(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            upstream_r, upstream_w = await asyncio.open_connection(*target)
        except OSError as exc:
            print(f"relay: connect {target[0]}:{target[1]}: {exc}", file=sys.stderr, flush=True)
            client_w.close()
            return
        try:
            await asyncio.gather(_pipe(client_r, upstream_w), _pipe(upstream_r, client_w))
        finally:
            for w in (client_w, upstream_w):
                with contextlib.suppress(OSError):
                    w.close()

    server = await asyncio.start_server(relay, listen[0], listen[1], reuse_address=True)
    print(f"relay: {listen[0]}:{listen[1]} -> {target[0]}:{target[1]}", flush=True)
    if ready is not None:
        ready.write_text(f"{os.getpid()}\n")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def main(argv: list[str] | None = None) -> int:
    """``relay.py --listen HOST:PORT --to HOST:PORT [--ready-file PATH]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--listen", type=_address, required=True)
    parser.add_argument("--to", type=_address, required=True)
    parser.add_argument("--ready-file", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        asyncio.run(_serve(args.listen, args.to, args.ready_file))
    except OSError as exc:
        print(f"relay: error: listen {args.listen[0]}:{args.listen[1]}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
