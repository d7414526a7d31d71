"""Measure how many requests per second the benchmark server handles on its own core.

A raw-socket load generator opens ``--connections`` keep-alive connections and keeps
``--depth`` pipelined ``POST /events`` requests in flight on each, with a realistic
event body and the headers an SDK sends. Pipelining makes the generator cheap per
request, so the server saturates first. The generator counts responses by bytes,
because every response of ``benchmarks.server`` has the same length::

    python -m benchmarks.server_capacity --port PORT --server-pid PID [--cpu 0]

Prints one JSON object: responses per second, and the CPU share (1.0 = one core) of
the server and of the generator during the measured window.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any, cast

from benchmarks.clients import STATIC_HEADERS, Window, process_cpu_seconds, take_snapshot
from benchmarks.server import RESPONSE_LENGTH, new_event_loop, pin_to_cpu, uvloop_available


def request_bytes(body: bytes, port: int) -> bytes:
    headers = {
        "Host": f"127.0.0.1:{port}",
        **STATIC_HEADERS,
        "Hakuna-Idempotency-Key": "00000000-0000-4000-8000-000000000000",
        "Content-Length": str(len(body)),
    }
    head = "POST /events HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return head.encode() + b"\r\n" + body


class PipelinedConnection(asyncio.Protocol):
    """Send ``depth`` requests at once, and the next batch when all their responses are in."""

    def __init__(self, batch: bytes, depth: int, window: Window, counts: list[int]) -> None:
        self._batch = batch
        self._depth = depth
        self._window = window
        self._counts = counts
        self._pending_bytes = 0
        self._transport: asyncio.Transport | None = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._send_batch()

    def data_received(self, data: bytes) -> None:
        self._pending_bytes -= len(data)
        if self._pending_bytes > 0:
            return
        if self._window.measuring:
            self._counts[0] += self._depth
        if self._window.stopped:
            assert self._transport is not None
            self._transport.close()
        else:
            self._send_batch()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def _send_batch(self) -> None:
        assert self._transport is not None
        self._pending_bytes = self._depth * RESPONSE_LENGTH
        self._transport.write(self._batch)


async def measure(arguments: argparse.Namespace) -> dict[str, Any]:
    body = arguments.events.read_bytes().splitlines()[0]
    batch = request_bytes(body, arguments.port) * arguments.depth
    window = Window()
    counts = [0]
    loop = asyncio.get_running_loop()

    connections = []
    for _ in range(arguments.connections):
        _, protocol = await loop.create_connection(
            lambda: PipelinedConnection(batch, arguments.depth, window, counts),
            "127.0.0.1",
            arguments.port,
        )
        connections.append(protocol)

    await asyncio.sleep(arguments.warmup)
    start = take_snapshot(arguments.server_pid)
    window.measuring = True
    await asyncio.sleep(arguments.duration)
    window.measuring = False
    end = take_snapshot(arguments.server_pid)
    window.stopped = True
    await asyncio.wait_for(
        asyncio.gather(*(connection.closed for connection in connections)), timeout=10
    )

    seconds = end.wall - start.wall
    result: dict[str, Any] = {
        "connections": arguments.connections,
        "depth": arguments.depth,
        "responses_per_second": counts[0] / seconds,
        "generator_busy": (end.cpu - start.cpu) / seconds,
    }
    if start.server_cpu is not None and end.server_cpu is not None:
        result["server_busy"] = (end.server_cpu - start.server_cpu) / seconds
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="benchmark server port")
    parser.add_argument("--server-pid", type=int, default=None, help="server process id")
    parser.add_argument("--events", type=Path, required=True, help="JSON Lines file of events")
    parser.add_argument("--connections", type=int, default=16, help="connections to open")
    parser.add_argument("--depth", type=int, default=16, help="pipelined requests per connection")
    parser.add_argument("--warmup", type=float, default=0.5, help="seconds before the window")
    parser.add_argument("--duration", type=float, default=2.0, help="window length in seconds")
    parser.add_argument("--cpu", type=int, default=None, help="CPU number to pin this process to")
    arguments = parser.parse_args()

    pin_to_cpu(arguments.cpu)
    loop = new_event_loop("uvloop" if uvloop_available() else "asyncio")
    try:
        result = loop.run_until_complete(measure(arguments))
    finally:
        loop.close()
    result["server_cpu_known"] = process_cpu_seconds(arguments.server_pid) is not None
    json.dump(result, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
