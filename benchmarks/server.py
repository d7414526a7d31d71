"""A minimal keep-alive HTTP/1.1 server that accepts every request with a 202.

It exists so that client benchmarks measure the client: it parses only the request
line, the headers and a ``Content-Length`` body, stores nothing, and responds to each
request with the same small JSON body (``{"event_id":"evt-…"}``). Pipelined requests
get their responses in order, with one write per read. It binds 127.0.0.1 only.

Usage::

    python -m benchmarks.server [--port 0] [--cpu 1] [--max-seconds 900]

The server prints ``PORT <n> PID <pid>`` on one line once it listens, and stops on
SIGTERM or SIGINT, when its parent process exits, or after ``--max-seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from typing import cast

# Every response has the same length, so a load generator can count responses by
# counting bytes: the event id is a fixed-width counter.
_EVENT_ID_DIGITS = 12
_BODY_TEMPLATE = b'{"event_id":"evt-%0*d"}'
_RESPONSE_HEAD = (
    b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
)
_BAD_REQUEST_BODY = b'{"error":{"message":"unsupported request framing"}}'
_BAD_REQUEST = (
    b"HTTP/1.1 400 Bad Request\r\n"
    b"Content-Type: application/json\r\n"
    b"Content-Length: %d\r\n"
    b"Connection: close\r\n"
    b"\r\n" % len(_BAD_REQUEST_BODY)
) + _BAD_REQUEST_BODY
_MAX_HEAD_BYTES = 64 * 1024


def response_bytes(counter: int) -> bytes:
    """Return the complete 202 response whose event id carries ``counter``."""
    body = _BODY_TEMPLATE % (_EVENT_ID_DIGITS, counter % 10**_EVENT_ID_DIGITS)
    return _RESPONSE_HEAD % len(body) + body


RESPONSE_LENGTH = len(response_bytes(0))


class _Counter:
    """Count of the requests this process responded to, over all connections."""

    value = 0


class AcceptingProtocol(asyncio.Protocol):
    """Parse pipelined HTTP/1.1 requests and respond to each with a 202."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, but have its methods.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        responses: list[bytes] = []
        start = 0

        while True:
            head_end = buffer.find(b"\r\n\r\n", start)
            if head_end < 0:
                if len(buffer) - start > _MAX_HEAD_BYTES:
                    self._reject()
                    return
                break
            body_length = _content_length(bytes(buffer[start:head_end]))
            if body_length is None:
                self._reject()
                return
            request_end = head_end + 4 + body_length
            if request_end > len(buffer):
                break
            _Counter.value += 1
            responses.append(response_bytes(_Counter.value))
            start = request_end

        if start:
            del buffer[:start]
        if responses and self._transport is not None:
            self._transport.write(b"".join(responses))

    def _reject(self) -> None:
        if self._transport is not None:
            self._transport.write(_BAD_REQUEST)
            self._transport.close()
        self._buffer.clear()


def _content_length(head: bytes) -> int | None:
    """Return the body length that ``head`` announces: 0 without a body, None if unsupported."""
    lowered = head.lower()
    if b"\r\ntransfer-encoding:" in lowered:
        return None
    marker = lowered.find(b"\r\ncontent-length:")
    if marker < 0:
        return 0
    value_start = marker + len(b"\r\ncontent-length:")
    value_end = lowered.find(b"\r\n", value_start)
    value = lowered[value_start:] if value_end < 0 else lowered[value_start:value_end]
    try:
        length = int(value.strip())
    except ValueError:
        return None
    return length if length >= 0 else None


def pin_to_cpu(cpu: int | None) -> None:
    """Pin this process to one CPU where the platform allows it; otherwise do nothing."""
    if cpu is None or not hasattr(os, "sched_setaffinity"):
        return
    if cpu in os.sched_getaffinity(0):
        os.sched_setaffinity(0, {cpu})


def new_event_loop(name: str) -> asyncio.AbstractEventLoop:
    """Create an ``asyncio`` or ``uvloop`` event loop."""
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    if name != "asyncio":
        raise ValueError(f"unknown event loop {name!r}; expected 'asyncio' or 'uvloop'")
    return asyncio.new_event_loop()


def uvloop_available() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


async def serve(port: int, max_seconds: float) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(AcceptingProtocol, "127.0.0.1", port, backlog=1024)
    bound_port = server.sockets[0].getsockname()[1]
    print(f"PORT {bound_port} PID {os.getpid()}", flush=True)

    stop = asyncio.Event()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signal_number, stop.set)
    _stop_when_orphaned(loop, stop, os.getppid())

    try:
        await asyncio.wait_for(stop.wait(), timeout=max_seconds)
    except TimeoutError:
        print(f"server: stopping after --max-seconds {max_seconds:g}", file=sys.stderr)
    server.close()
    await server.wait_closed()


def _stop_when_orphaned(loop: asyncio.AbstractEventLoop, stop: asyncio.Event, parent: int) -> None:
    """Set ``stop`` once the parent process has exited; check again every half second."""
    if os.getppid() != parent:
        print("server: stopping because the parent process exited", file=sys.stderr)
        stop.set()
        return
    loop.call_later(0.5, _stop_when_orphaned, loop, stop, parent)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any free)")
    parser.add_argument("--cpu", type=int, default=None, help="CPU number to pin the server to")
    parser.add_argument(
        "--loop",
        choices=("auto", "asyncio", "uvloop"),
        default="auto",
        help="event loop (auto: uvloop when installed)",
    )
    parser.add_argument(
        "--max-seconds", type=float, default=900.0, help="stop after this many seconds"
    )
    arguments = parser.parse_args()

    pin_to_cpu(arguments.cpu)
    loop_name = arguments.loop
    if loop_name == "auto":
        loop_name = "uvloop" if uvloop_available() else "asyncio"
    loop = new_event_loop(loop_name)
    try:
        loop.run_until_complete(serve(arguments.port, arguments.max_seconds))
    finally:
        loop.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
