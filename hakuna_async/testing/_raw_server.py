"""``RawHTTPServer``: an HTTP/1.1 server on plain asyncio streams that misbehaves on purpose.

aiohttp.web always completes a response or closes the connection politely, so the
sandbox cannot show a client what a broken network or a broken proxy does. This server
can: it accepts a connection and never responds (``NoResponse``), sends the headers
and then stalls the body (``StallResponse``), closes after some bytes of the response
(``CloseMidResponse``), announces ``Connection: keep-alive`` and closes right after the
response (``CloseAfterResponse``), or resets the connection (``Reset``). ``Respond`` sends
a complete response and keeps the connection open.

Each request takes the next behaviour of the script (``script(...)``) and, when the
script is empty, ``default``. Every request is recorded as received in ``requests``,
with the ``RecordedRequest`` type of the sandbox. The server binds loopback addresses
only::

    async with RawHTTPServer() as server:
        server.script(Respond(503), NoResponse())
        ...  # point a client at server.url
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from types import TracebackType
from typing import Final, Self, TypeAlias
from urllib.parse import parse_qsl, urlsplit

from multidict import CIMultiDict, CIMultiDictProxy

from ._faults import Reset, Respond
from ._server import IDEMPOTENCY_HEADER, fault_reply, set_linger_zero
from ._state import RecordedRequest, RequestLog

__all__ = [
    "ACCEPTED",
    "Behaviour",
    "CloseAfterResponse",
    "CloseMidResponse",
    "NoResponse",
    "RawHTTPServer",
    "StallResponse",
]

#: A 202 with the body of an accepted event, the default response of the raw server.
ACCEPTED: Final = Respond(202, body={"event_id": "evt-raw-server"})

# Limits on what a request may send. The request line and headers share the first one.
_MAX_HEAD_BYTES: Final = 64 * 1024
_MAX_BODY_BYTES: Final = 1024 * 1024


@dataclass(frozen=True)
class NoResponse:
    """Read the whole request and never respond.

    The connection stays open until the client closes it or the server stops.
    """


@dataclass(frozen=True)
class StallResponse:
    """Send the status line, the headers and ``body_bytes`` bytes of the body, then stall.

    ``Content-Length`` announces the whole body, so the client waits for the rest,
    which never comes: the connection stays open until the client closes it or the
    server stops.
    """

    response: Respond = ACCEPTED
    body_bytes: int = 0

    def __post_init__(self) -> None:
        if self.body_bytes < 0:
            raise ValueError(f"StallResponse body_bytes must be 0 or more, got {self.body_bytes}.")


@dataclass(frozen=True)
class CloseMidResponse:
    """Send the first ``byte_count`` bytes of the response, then close the connection (a FIN).

    The bytes are counted over the whole response: status line, headers and body.
    """

    byte_count: int
    response: Respond = ACCEPTED

    def __post_init__(self) -> None:
        if self.byte_count < 0:
            raise ValueError(
                f"CloseMidResponse byte_count must be 0 or more, got {self.byte_count}."
            )


@dataclass(frozen=True)
class CloseAfterResponse:
    """Send the whole response announcing ``Connection: keep-alive``, then close at once."""

    response: Respond = ACCEPTED


Behaviour: TypeAlias = (
    Respond | Reset | NoResponse | StallResponse | CloseMidResponse | CloseAfterResponse
)
_BEHAVIOUR_TYPES: Final = (
    Respond,
    Reset,
    NoResponse,
    StallResponse,
    CloseMidResponse,
    CloseAfterResponse,
)


class _BadRequest(Exception):
    """The request cannot be parsed: the server sends ``status`` and closes the connection."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class _RequestHead:
    method: str
    target: str
    headers: CIMultiDictProxy[str]


class RawHTTPServer:
    """A scriptable HTTP/1.1 server on a loopback address and a free port by default.

    ``requests`` records every request, ``connections_accepted`` counts the TCP
    connections, and ``script()`` queues behaviours for the next requests. Raise
    ``ValueError`` for a host that is not a loopback address.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        default: Behaviour = ACCEPTED,
        max_recorded_requests: int = 100_000,
    ) -> None:
        if not _is_loopback(host):
            raise ValueError(f"RawHTTPServer binds loopback addresses only, got {host!r}.")
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be from 0 (a free port) to 65535, got {port}.")
        _check_behaviour(default)

        self._host = host
        self._requested_port = port
        self._default: Behaviour = default
        self._script: deque[Behaviour] = deque()
        self._requests = RequestLog(max_recorded_requests)
        self.connections_accepted = 0

        self._server: asyncio.Server | None = None
        self._url: str | None = None
        self._port: int | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Bind the port and start serving. Raise ``RuntimeError`` if already running."""
        if self._server is not None:
            raise RuntimeError(f"The raw server is already running at {self._url}.")
        server = await asyncio.start_server(
            self._serve_connection, self._host, self._requested_port, limit=_MAX_HEAD_BYTES
        )
        bound_host, bound_port = server.sockets[0].getsockname()[:2]
        self._server = server
        self._port = bound_port
        self._url = (
            f"http://[{bound_host}]:{bound_port}"
            if ":" in bound_host
            else f"http://{bound_host}:{bound_port}"
        )

    async def stop(self) -> None:
        """Stop listening and abort every open connection. Calling it again does nothing."""
        server = self._server
        if server is None:
            return
        self._server = None
        server.close()
        # Aborting a connection ends its handler, because a stalled read then reads end of stream.
        for writer in list(self._writers):
            writer.transport.abort()
        if self._connections:
            await asyncio.wait(self._connections, timeout=2.0)
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await server.wait_closed()

    @property
    def url(self) -> str:
        """The base URL, such as ``http://127.0.0.1:54321``, without a trailing slash."""
        if self._server is None or self._url is None:
            raise RuntimeError(
                "The raw server is not running: use `async with RawHTTPServer()` or await start()."
            )
        return self._url

    @property
    def port(self) -> int:
        """The bound TCP port."""
        if self._server is None or self._port is None:
            raise RuntimeError(
                "The raw server is not running: use `async with RawHTTPServer()` or await start()."
            )
        return self._port

    @property
    def requests(self) -> RequestLog:
        """The recorded requests, oldest first."""
        return self._requests

    @property
    def default(self) -> Behaviour:
        """The behaviour for requests that find the script empty."""
        return self._default

    @default.setter
    def default(self, behaviour: Behaviour) -> None:
        _check_behaviour(behaviour)
        self._default = behaviour

    @property
    def pending(self) -> tuple[Behaviour, ...]:
        """The scripted behaviours not used yet, next first."""
        return tuple(self._script)

    def script(self, *behaviours: Behaviour) -> None:
        """Queue ``behaviours`` for the next requests, one each, after those already queued."""
        for behaviour in behaviours:
            _check_behaviour(behaviour)
        self._script.extend(behaviours)

    # Serving.

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.connections_accepted += 1
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        self._writers.add(writer)
        try:
            while await self._serve_request(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _serve_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Serve one request and return whether the connection stays open for another."""
        try:
            raw_head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False  # The client closed the connection between requests.
        except asyncio.LimitOverrunError:
            await _send_error(writer, 431, "The request line and headers are too large.")
            return False
        received_at = datetime.now(UTC)

        try:
            head = _parse_head(raw_head)
        except _BadRequest as error:
            await _send_error(writer, error.status, str(error))
            return False

        behaviour = self._script.popleft() if self._script else self._default
        if isinstance(behaviour, Reset) and not behaviour.after_handling:
            self._record(head, b"", None, behaviour, received_at)
            _reset(writer)
            return False

        try:
            body = await _read_body(reader, head.headers)
        except _BadRequest as error:
            await _send_error(writer, error.status, str(error))
            return False
        self._record(head, body, _status_sent(behaviour), behaviour, received_at)
        return await self._act(behaviour, head, reader, writer)

    async def _act(
        self,
        behaviour: Behaviour,
        head: _RequestHead,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        if isinstance(behaviour, Reset):
            _reset(writer)
            return False
        if isinstance(behaviour, NoResponse):
            await _read_until_closed(reader)
            return False

        response_head, body, keep_alive = _encode_response(_response_of(behaviour))
        if isinstance(behaviour, StallResponse):
            writer.write(response_head + body[: behaviour.body_bytes])
            await writer.drain()
            await _read_until_closed(reader)
            return False
        if isinstance(behaviour, CloseMidResponse):
            writer.write((response_head + body)[: behaviour.byte_count])
            await writer.drain()
            return False

        writer.write(response_head + body)
        await writer.drain()
        if isinstance(behaviour, CloseAfterResponse):
            return False
        return keep_alive and head.headers.get("Connection", "").lower() != "close"

    def _record(
        self,
        head: _RequestHead,
        body: bytes,
        status: int | None,
        behaviour: Behaviour,
        received_at: datetime,
    ) -> None:
        parts = urlsplit(head.target)
        self._requests.append(
            RecordedRequest(
                method=head.method,
                path=parts.path,
                query=dict(parse_qsl(parts.query, keep_blank_values=True)),
                headers=head.headers,
                body=body,
                body_sha256=hashlib.sha256(body).hexdigest(),
                idempotency_key=head.headers.get(IDEMPOTENCY_HEADER),
                status=status,
                fault=type(behaviour).__name__,
                received_at=received_at,
            )
        )


def _parse_head(raw_head: bytes) -> _RequestHead:
    lines = raw_head[: -len(b"\r\n\r\n")].split(b"\r\n")
    request_line = lines[0].decode("latin-1").split(" ")
    if len(request_line) != 3 or not request_line[2].startswith("HTTP/1."):
        raise _BadRequest(400, f"Invalid request line {lines[0][:100]!r}.")
    method, target, _ = request_line

    headers: CIMultiDict[str] = CIMultiDict()
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        # A name with surrounding whitespace or a folded line (leading space) is invalid.
        if not colon or not name or name != name.strip() or line[:1] in (b" ", b"\t"):
            raise _BadRequest(400, f"Invalid header line {line[:100]!r}.")
        headers.add(name.decode("latin-1"), value.strip(b" \t").decode("latin-1"))
    return _RequestHead(method, target, CIMultiDictProxy(headers))


async def _read_body(reader: asyncio.StreamReader, headers: CIMultiDictProxy[str]) -> bytes:
    """Read a body framed by ``Content-Length`` or chunked transfer coding."""
    transfer_encoding = headers.get("Transfer-Encoding")
    if transfer_encoding is not None:
        if transfer_encoding.lower() != "chunked":
            raise _BadRequest(501, f"Unsupported Transfer-Encoding {transfer_encoding!r}.")
        return await _read_chunked(reader)

    lengths = set(headers.getall("Content-Length", []))
    if not lengths:
        return b""
    if len(lengths) > 1 or not next(iter(lengths)).isdigit():
        raise _BadRequest(400, f"Invalid Content-Length {sorted(lengths)!r}.")
    length = int(next(iter(lengths)))
    if length > _MAX_BODY_BYTES:
        raise _BadRequest(413, f"The body of {length} bytes is over {_MAX_BODY_BYTES} bytes.")
    return await reader.readexactly(length)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        size_line = await reader.readuntil(b"\r\n")
        try:
            size = int(size_line.split(b";")[0].strip(), 16)
        except ValueError:
            raise _BadRequest(400, f"Invalid chunk size line {size_line[:40]!r}.") from None
        if size == 0:
            # Trailer fields, if any, end with an empty line. They are not recorded.
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass
            return b"".join(chunks)
        total += size
        if total > _MAX_BODY_BYTES:
            raise _BadRequest(413, f"The chunked body is over {_MAX_BODY_BYTES} bytes.")
        chunks.append(await reader.readexactly(size))
        if await reader.readexactly(2) != b"\r\n":
            raise _BadRequest(400, "A chunk does not end with CRLF.")


def _response_of(behaviour: Behaviour) -> Respond:
    if isinstance(behaviour, Respond):
        return behaviour
    if isinstance(behaviour, StallResponse | CloseMidResponse | CloseAfterResponse):
        return behaviour.response
    raise TypeError(f"{type(behaviour).__name__} sends no response.")


def _status_sent(behaviour: Behaviour) -> int | None:
    if isinstance(behaviour, Reset | NoResponse):
        return None
    if isinstance(behaviour, CloseMidResponse) and behaviour.byte_count == 0:
        return None
    return _response_of(behaviour).status


def _encode_response(response: Respond) -> tuple[bytes, bytes, bool]:
    """Return the status line and headers, the body, and whether the connection stays open."""
    reply = fault_reply(response)
    headers = reply.header_map()
    headers["Content-Length"] = str(len(reply.body))
    headers.setdefault("Connection", "keep-alive")
    keep_alive = headers["Connection"].lower() != "close"

    try:
        reason = HTTPStatus(reply.status).phrase
    except ValueError:
        reason = ""
    lines = [f"HTTP/1.1 {reply.status} {reason}"]
    lines.extend(f"{name}: {value}" for name, value in headers.items())
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"), reply.body, keep_alive


async def _send_error(writer: asyncio.StreamWriter, status: int, message: str) -> None:
    response_head, body, _ = _encode_response(
        Respond(status, headers={"Connection": "close"}, body=message)
    )
    writer.write(response_head + body)
    await writer.drain()


async def _read_until_closed(reader: asyncio.StreamReader) -> None:
    """Discard what the client sends until it closes the connection or the server aborts it."""
    while await reader.read(65536):
        pass


def _reset(writer: asyncio.StreamWriter) -> None:
    set_linger_zero(writer.get_extra_info("socket"))
    writer.transport.abort()


def _check_behaviour(behaviour: object) -> None:
    if not isinstance(behaviour, _BEHAVIOUR_TYPES):
        names = ", ".join(kind.__name__ for kind in _BEHAVIOUR_TYPES)
        raise TypeError(f"Expected one of {names}, got {type(behaviour).__name__}.")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
