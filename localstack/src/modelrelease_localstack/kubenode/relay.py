"""A TCP relay from the node's address to services on loopback: the API server and the stack's.

The API server binds 127.0.0.1 only, and an EndpointSlice cannot name a loopback address, so
pods cannot reach it through the ``kubernetes`` Service (10.96.0.1:443) by themselves. The node
runs this relay as one of its processes: it listens on the node's bridge address
(``10.245.N.1:PORT``, an address the project creates) and copies bytes both ways to the API
server's ``127.0.0.1:PORT``. TLS stays end to end between the pod and the API server (whose
certificate names 10.96.0.1 and ``kubernetes.default.svc``); the relay sees only ciphertext.
The node points the ``kubernetes`` Endpoints and EndpointSlice at the relay
(:func:`kubernetes_endpoints`, :func:`kubernetes_endpointslice`).

The same process relays the host services the node is given as ``host_ports``: in the local
stack its Prefect server, MLflow and registry (``stack_state.IN_CLUSTER``), which also bind
loopback only. Each gets a port of its own on the bridge address, relayed to its loopback
port; ``KubeNode.host_address`` says where, the stack records it as ``in_cluster``, and the
pipeline's pods (``modelrelease dev install``: the Prefect worker, its flow-run Jobs, the
webhook bridge) are configured with those addresses. containerd pulls from the registry at its
relay address too (``registry_host_ports``). Whatever a service speaks, the relay only copies
bytes.

One ``--listen``/``--to`` pair per relayed service. Standard library only, run as a script
(``python relay.py --listen ... --to ... [--listen ... --to ...]``): it starts in a few tens of
milliseconds and does not import the project.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Awaitable, Callable
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


async def _serve(pairs: list[tuple[tuple[str, int], tuple[str, int]]],
                 ready: Path | None) -> None:
    def relay_to(target: tuple[str, int]) -> Callable[
            [asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
        async def relay(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
            try:
                upstream_r, upstream_w = await asyncio.open_connection(*target)
            except OSError as exc:
                print(f"relay: connect {target[0]}:{target[1]}: {exc}", file=sys.stderr,
                      flush=True)
                client_w.close()
                return
            try:
                await asyncio.gather(_pipe(client_r, upstream_w), _pipe(upstream_r, client_w))
            finally:
                for w in (client_w, upstream_w):
                    with contextlib.suppress(OSError):
                        w.close()
        return relay

    servers = []
    for listen, target in pairs:
        try:
            servers.append(await asyncio.start_server(relay_to(target), listen[0], listen[1],
                                                      reuse_address=True))
        except OSError as exc:
            raise OSError(f"listen {listen[0]}:{listen[1]}: {exc}") from exc
        print(f"relay: {listen[0]}:{listen[1]} -> {target[0]}:{target[1]}", flush=True)
    if ready is not None:
        ready.write_text(f"{os.getpid()}\n")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with contextlib.AsyncExitStack() as servers_open:
        for server in servers:
            await servers_open.enter_async_context(server)
        await stop.wait()


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def main(argv: list[str] | None = None) -> int:
    """``relay.py --listen HOST:PORT --to HOST:PORT [--listen ... --to ...] [--ready-file P]``.

    Each ``--listen`` is relayed to the ``--to`` in the same position.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--listen", type=_address, action="append", required=True)
    parser.add_argument("--to", type=_address, action="append", required=True)
    parser.add_argument("--ready-file", type=Path, default=None)
    args = parser.parse_args(argv)
    if len(args.listen) != len(args.to):
        parser.error(f"{len(args.listen)} --listen but {len(args.to)} --to: give one --to "
                     "after each --listen")
    try:
        asyncio.run(_serve(list(zip(args.listen, args.to, strict=True)), args.ready_file))
    except OSError as exc:
        print(f"relay: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
