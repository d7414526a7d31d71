"""The misbehaving-server toolkit on the wire, and the client surviving each misbehaviour.

Everything runs on loopback: a ``RawHTTPServer`` for what aiohttp.web will not do
(never respond, stall after the headers, close mid-response or right after a
keep-alive response, reset), and the ``SandboxServer`` where the stored state matters.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import hashlib
import itertools
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC
from typing import Any

import pytest
from multidict import CIMultiDictProxy

from hakuna_async import (
    APIConnectionError,
    APITimeoutError,
    HakunaClient,
    InternalServerError,
    RateLimitError,
    RequestValidationError,
    RetryPolicy,
    Timeout,
)
from hakuna_async.testing import (
    CloseAfterResponse,
    CloseMidResponse,
    Delay,
    Drop,
    FaultInjector,
    NoResponse,
    RawHTTPServer,
    RecordedRequest,
    Reset,
    Respond,
    SandboxServer,
    StallBody,
    StallResponse,
)

KEY_HEADER = "Hakuna-Idempotency-Key"
FAST_RETRIES = RetryPolicy(max_retries=2, initial_wait=0.01, max_wait=0.02)
SHORT_TIMEOUT = Timeout(connect=1, read=1, total=5)


@pytest.fixture
async def server() -> AsyncIterator[RawHTTPServer]:
    async with RawHTTPServer() as raw:
        yield raw


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    async with SandboxServer() as server:
        yield server


def client_for(server: RawHTTPServer | SandboxServer, **settings: Any) -> HakunaClient:
    settings.setdefault("retry_policy", FAST_RETRIES)
    settings.setdefault("timeout", SHORT_TIMEOUT)
    api_key = server.api_key if isinstance(server, SandboxServer) else "sk_test"
    return HakunaClient(api_key, base_url=server.url, **settings)


def key_lines(record: RecordedRequest) -> list[str]:
    headers = record.headers
    assert isinstance(headers, CIMultiDictProxy)
    return headers.getall(KEY_HEADER, [])


def gaps(records: list[RecordedRequest]) -> list[float]:
    times = [record.received_at.timestamp() for record in records]
    return [later - earlier for earlier, later in itertools.pairwise(times)]


async def exchange(port: int, request: bytes, *, wait: float = 0.3) -> tuple[bytes, str]:
    """Send raw bytes; return what came back and how the connection ended.

    The ending is ``"eof"`` (a FIN), ``"reset"`` (an RST) or ``"open"`` (nothing more
    within ``wait`` seconds).
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    received = b""
    try:
        writer.write(request)
        await writer.drain()
        while True:
            try:
                chunk = await asyncio.wait_for(reader.read(65536), wait)
            except TimeoutError:
                return received, "open"
            except ConnectionResetError:
                return received, "reset"
            if not chunk:
                return received, "eof"
            received += chunk
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def post(body: bytes, *, key: str = "raw-key", extra: str = "") -> bytes:
    return (
        f"POST /events?dry=1&x= HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer sk_sandbox_local\r\nHakuna-Version: v2.0\r\n"
        f"Content-Type: application/json\r\n{KEY_HEADER}: {key}\r\n{extra}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


# The raw server itself.


async def test_raw_server_records_request_as_received(server: RawHTTPServer) -> None:
    body = b'{"type": "order_placed"}'

    response, ending = await exchange(server.port, post(body, extra="X-Twice: 1\r\nX-Twice: 2\r\n"))

    record = server.requests[0]
    assert response.startswith(b"HTTP/1.1 202 Accepted\r\n")
    assert b"Connection: keep-alive\r\n" in response
    assert ending == "open"
    assert record.method == "POST"
    assert record.path == "/events"
    assert record.query == {"dry": "1", "x": ""}
    assert record.body == body
    assert record.body_sha256 == hashlib.sha256(body).hexdigest()
    assert record.idempotency_key == "raw-key"
    assert key_lines(record) == ["raw-key"]
    assert isinstance(record.headers, CIMultiDictProxy)
    assert record.headers.getall("x-twice") == ["1", "2"]
    assert record.status == 202
    assert record.fault == "Respond"
    assert server.connections_accepted == 1


async def test_raw_server_reads_chunked_body(server: RawHTTPServer) -> None:
    request = (
        b"POST /events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: t\r\n\r\n"
    )

    await exchange(server.port, request)

    assert server.requests[0].body == b"hello world"


async def test_raw_server_keeps_connection_alive(server: RawHTTPServer) -> None:
    body = b"{}"

    last = post(body, extra="Connection: close\r\n")
    response, ending = await exchange(server.port, post(body) + post(body) + last)

    assert response.count(b"HTTP/1.1 202") == 3
    assert ending == "eof"
    assert len(server.requests) == 3
    assert server.connections_accepted == 1


async def test_raw_server_script_then_default(server: RawHTTPServer) -> None:
    server.script(Respond(503), Respond(429))
    server.default = Respond(204, body=b"")

    statuses = []
    for _ in range(4):
        response, _ = await exchange(server.port, post(b"{}", extra="Connection: close\r\n"))
        statuses.append(int(response.split(b" ")[1]))

    assert statuses == [503, 429, 204, 204]
    assert server.pending == ()


async def test_raw_server_rejects_bad_requests(server: RawHTTPServer) -> None:
    bad_line, bad_line_end = await exchange(server.port, b"NONSENSE\r\n\r\n")
    folded, _ = await exchange(server.port, b"GET / HTTP/1.1\r\nA: 1\r\n folded\r\n\r\n")
    length, _ = await exchange(server.port, b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n")

    assert bad_line.startswith(b"HTTP/1.1 400 ")
    assert bad_line_end == "eof"
    assert folded.startswith(b"HTTP/1.1 400 ")
    assert length.startswith(b"HTTP/1.1 400 ")
    assert len(server.requests) == 0


async def test_raw_server_reset_before_reading(server: RawHTTPServer) -> None:
    server.script(Reset())

    response, ending = await exchange(server.port, post(b'{"a": 1}'))

    assert response == b""
    assert ending == "reset"
    assert server.requests[0].body == b""
    assert server.requests[0].idempotency_key == "raw-key"
    assert server.requests[0].status is None
    assert server.requests[0].fault == "Reset"


async def test_raw_server_reset_after_reading(server: RawHTTPServer) -> None:
    server.script(Reset(after_handling=True))

    response, ending = await exchange(server.port, post(b'{"a": 1}'))

    assert (response, ending) == (b"", "reset")
    assert server.requests[0].body == b'{"a": 1}'


async def test_raw_server_no_response_holds_open(server: RawHTTPServer) -> None:
    server.script(NoResponse())

    response, ending = await exchange(server.port, post(b"{}"), wait=0.2)

    assert (response, ending) == (b"", "open")
    assert server.requests[0].status is None


async def test_raw_server_stall_after_headers(server: RawHTTPServer) -> None:
    server.script(StallResponse(body_bytes=3))

    response, ending = await exchange(server.port, post(b"{}"), wait=0.2)

    head, _, body = response.partition(b"\r\n\r\n")
    assert ending == "open"
    assert b"Content-Length: 29\r\n" in head
    assert body == b'{"e'
    assert server.requests[0].status == 202


@pytest.mark.parametrize("byte_count", [0, 1, 9, 40, 120])
async def test_raw_server_close_mid_response(server: RawHTTPServer, byte_count: int) -> None:
    server.script(CloseMidResponse(byte_count))

    response, ending = await exchange(server.port, post(b"{}"))

    assert len(response) == byte_count
    assert ending == "eof"
    assert server.requests[0].status == (None if byte_count == 0 else 202)


async def test_raw_server_close_after_keep_alive(server: RawHTTPServer) -> None:
    server.script(CloseAfterResponse())

    response, ending = await exchange(server.port, post(b"{}"))

    assert b"Connection: keep-alive\r\n" in response
    assert response.endswith(b'{"event_id":"evt-raw-server"}')
    assert ending == "eof"


async def test_raw_server_stop_is_prompt() -> None:
    server = RawHTTPServer(default=NoResponse())
    await server.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(post(b"{}"))
    await writer.drain()
    while not server.requests:
        await asyncio.sleep(0.01)
    loop = asyncio.get_running_loop()

    started = loop.time()
    await server.stop()
    elapsed = loop.time() - started
    ended = await reader.read()
    writer.close()
    await writer.wait_closed()

    assert elapsed < 0.5
    assert ended == b""


async def test_raw_server_ipv6_loopback(redoc_order: Any) -> None:
    server = RawHTTPServer(host="::1")
    try:
        await server.start()
    except OSError:
        pytest.skip("IPv6 loopback is not available on this machine")

    try:
        url = server.url
        async with client_for(server) as client:
            accepted = await client.events.publish(redoc_order)
    finally:
        await server.stop()

    assert url.startswith("http://[::1]:")
    assert accepted.event_id == "evt-raw-server"
    assert len(server.requests) == 1


def test_raw_server_binds_loopback_only() -> None:
    with pytest.raises(ValueError, match="loopback"):
        RawHTTPServer(host="0.0.0.0")
    with pytest.raises(TypeError, match="Respond"):
        RawHTTPServer(default=Delay(1))  # type: ignore[arg-type]


# Sandbox faults on the wire.


async def test_sandbox_reset_sends_rst(sandbox: SandboxServer) -> None:
    sandbox.faults.add(Reset())

    response, ending = await exchange(sandbox.port, post(b'{"a": 1}', key="reset-1"))

    assert (response, ending) == (b"", "reset")
    assert sandbox.requests[0].body == b""
    assert sandbox.requests[0].idempotency_key == "reset-1"
    assert sandbox.requests[0].fault == "Reset"
    assert sandbox.events == []


async def test_sandbox_drop_sends_fin(sandbox: SandboxServer) -> None:
    sandbox.faults.add(Drop())

    response, ending = await exchange(sandbox.port, post(b'{"a": 1}'))

    # Drop reads the whole request and closes politely: a FIN, never an RST.
    assert (response, ending) == (b"", "eof")
    assert sandbox.requests[0].body == b'{"a": 1}'


async def test_sandbox_reset_after_handling_stores(
    sandbox: SandboxServer, redoc_order: Any
) -> None:
    sandbox.faults.add(Reset(after_handling=True))

    async with client_for(sandbox, max_retries=0) as client:
        with pytest.raises(APIConnectionError):
            await client.events.publish(redoc_order)

    assert len(sandbox.events) == 1
    assert sandbox.requests[0].status is None


# Random faults.


def draw_sequence(seed: int, count: int) -> list[str | None]:
    injector = FaultInjector()
    injector.add_random([Respond(503), Reset(), Drop()], probability=0.3, seed=seed)
    faults = (injector.take("POST", "/events") for _ in range(count))
    return [None if fault is None else type(fault).__name__ for fault in faults]


def test_random_faults_repeat_per_seed() -> None:
    first = draw_sequence(7, 1000)

    assert draw_sequence(7, 1000) == first
    assert draw_sequence(8, 1000) != first
    assert 230 <= sum(name is not None for name in first) <= 370
    assert {"Respond", "Reset", "Drop"} <= set(first)


def test_random_faults_after_counted_rules() -> None:
    injector = FaultInjector()
    injector.add(Respond(500), times=2)
    injector.add_random([Respond(503)], probability=1.0, seed=1)
    injector.add_random([Respond(429)], probability=1.0, seed=1, path="/carts")

    statuses = [injector.take("POST", "/events") for _ in range(4)]

    assert [fault.status for fault in statuses if isinstance(fault, Respond)] == [
        500,
        500,
        503,
        503,
    ]
    assert injector.take("GET", "/orders/x/plan-connections") is None
    assert injector.applied_count(Respond) == 4


def test_random_faults_reject_invalid_rules() -> None:
    injector = FaultInjector()

    with pytest.raises(ValueError, match="at least one"):
        injector.add_random([], probability=0.1, seed=1)
    with pytest.raises(ValueError, match="probability"):
        injector.add_random([Drop()], probability=1.5, seed=1)
    with pytest.raises(TypeError, match="fault"):
        injector.add_random(["Drop"], probability=0.5, seed=1)  # type: ignore[list-item]


# Scenarios: the client on a misbehaving network.


@pytest.mark.parametrize("fault", [Drop(after_handling=True), Reset(after_handling=True)])
async def test_stored_then_lost_response_stores_once(
    sandbox: SandboxServer, redoc_order: Any, fault: Drop | Reset
) -> None:
    sandbox.faults.add(fault)

    async with client_for(sandbox) as client:
        accepted = await client.events.publish(redoc_order)

    first, second = sandbox.requests
    assert first.fault == type(fault).__name__
    assert first.status is None
    assert second.status == 202
    assert first.idempotency_key is not None
    assert second.idempotency_key == first.idempotency_key
    assert second.body == first.body
    assert second.body_sha256 == first.body_sha256
    assert len(sandbox.events) == 1
    assert accepted.event_id == sandbox.events[0].event_id


async def test_caller_key_on_every_attempt(server: RawHTTPServer, redoc_order: Any) -> None:
    server.script(Respond(503), Respond(503))

    async with client_for(server) as client:
        await client.events.publish(redoc_order, idempotency_key="order-1001-created")

    assert [record.status for record in server.requests] == [503, 503, 202]
    for record in server.requests:
        assert key_lines(record) == ["order-1001-created"]


async def test_generated_key_shared_within_call(server: RawHTTPServer, redoc_order: Any) -> None:
    server.script(Respond(503), Respond(503))

    async with client_for(server) as client:
        await client.events.publish(redoc_order)
        server.script(Respond(503))
        await client.events.publish(redoc_order)

    lines = [key_lines(record) for record in server.requests]
    assert all(len(line) == 1 for line in lines)
    keys = [line[0] for line in lines]
    assert keys[0] == keys[1] == keys[2]
    assert keys[3] == keys[4]
    assert keys[0] != keys[3]
    assert uuid.UUID(keys[0]).version == 4


async def test_retry_waits_for_http_date(server: RawHTTPServer, redoc_order: Any) -> None:
    # An HTTP-date has whole seconds: "3 seconds ahead" is an instant 2 to 3 s away.
    retry_at = email.utils.formatdate(time.time() + 3, usegmt=True)
    instant = email.utils.parsedate_to_datetime(retry_at).timestamp()
    server.script(Respond(503, headers={"Retry-After": retry_at}))
    policy = RetryPolicy(max_retries=3, initial_wait=0.05, max_wait=0.1)

    async with client_for(server, retry_policy=policy) as client:
        await client.events.publish(redoc_order)

    first, retry = server.requests
    assert first.status == 503
    assert retry.status == 202
    assert retry.received_at.timestamp() >= instant
    # The wait adds at most half the backoff ceiling (0.025 s) of jitter.
    assert retry.received_at.timestamp() - instant < 0.5
    assert retry.received_at.timestamp() - first.received_at.timestamp() > 2.0


def past_date() -> str:
    return email.utils.formatdate(time.time() - 3600, usegmt=True)


@pytest.mark.parametrize("retry_after", ["0", "-5", "past", "abc"])
async def test_429_forever_never_bursts(
    server: RawHTTPServer, redoc_order: Any, retry_after: str
) -> None:
    value = past_date() if retry_after == "past" else retry_after
    server.default = Respond(429, headers={"Retry-After": value})
    policy = RetryPolicy(max_retries=2, initial_wait=0.1, max_wait=1.0)

    async with client_for(server, retry_policy=policy) as client:
        for _ in range(2):
            with pytest.raises(RateLimitError) as raised:
                await client.events.publish(redoc_order)
            assert raised.value.retry_after is None
            assert raised.value.attempts == 3

    assert len(server.requests) == 2 * 3
    first_call, second_call = server.requests[:3], server.requests[3:]
    for call in (first_call, second_call):
        first_gap, second_gap = gaps(call)
        # Equal jitter: retry 1 waits 0.05 to 0.1 s, retry 2 waits 0.1 to 0.2 s.
        assert first_gap >= 0.05
        assert second_gap >= 0.1


async def test_429_huge_retry_after_fails_fast(server: RawHTTPServer, redoc_order: Any) -> None:
    server.default = Respond(429, headers={"Retry-After": "999999"})
    loop = asyncio.get_running_loop()

    async with client_for(server) as client:
        started = loop.time()
        with pytest.raises(RateLimitError) as raised:
            await client.events.publish(redoc_order)
        elapsed = loop.time() - started

    assert raised.value.retry_after == 999999
    assert raised.value.attempts == 1
    assert len(server.requests) == 1
    assert elapsed < 0.5


@pytest.mark.parametrize("behaviour", [NoResponse(), StallResponse(body_bytes=10)])
async def test_silent_server_times_out(
    server: RawHTTPServer, redoc_order: Any, behaviour: NoResponse | StallResponse
) -> None:
    server.default = behaviour
    loop = asyncio.get_running_loop()

    async with client_for(server, max_retries=0, timeout=Timeout(read=0.3, total=5)) as client:
        started = loop.time()
        with pytest.raises(APITimeoutError) as raised:
            await client.events.publish(redoc_order)
        elapsed = loop.time() - started

    assert 0.3 <= elapsed < 0.3 + 0.3
    assert "read limit 0.3s" in str(raised.value)
    assert len(server.requests) == 1


@pytest.mark.parametrize("behaviour", [NoResponse(), StallResponse(body_bytes=10)])
async def test_silent_server_meets_deadline(
    server: RawHTTPServer, redoc_order: Any, behaviour: NoResponse | StallResponse
) -> None:
    server.default = behaviour
    loop = asyncio.get_running_loop()

    async with client_for(server, max_retries=10, timeout=Timeout(read=0.3, total=1.0)) as client:
        started = loop.time()
        with pytest.raises(APITimeoutError) as raised:
            await client.events.publish(redoc_order)
        elapsed = loop.time() - started

    assert 1.0 <= elapsed < 1.0 + 0.3
    assert "deadline" in str(raised.value)
    assert len(server.requests) == raised.value.attempts


async def test_closed_keep_alive_next_call_succeeds(
    server: RawHTTPServer, redoc_order: Any
) -> None:
    server.script(CloseAfterResponse())

    async with client_for(server) as client:
        first = await client.events.publish(redoc_order)
        second = await client.events.publish(redoc_order)

    assert first.event_id == second.event_id == "evt-raw-server"
    # The second call may first write to the closed pooled connection; that attempt
    # never reaches a live handler, and the retry opens a new connection.
    assert len(server.requests) == 2
    assert server.connections_accepted == 2
    assert server.requests[0].idempotency_key != server.requests[1].idempotency_key


@pytest.mark.parametrize("byte_count", [0, 20, 60, 100])
async def test_close_mid_response_is_retried(
    server: RawHTTPServer, redoc_order: Any, byte_count: int
) -> None:
    server.script(CloseMidResponse(byte_count), CloseMidResponse(byte_count))

    async with client_for(server, max_retries=0) as client:
        with pytest.raises(APIConnectionError) as raised:
            await client.events.publish(redoc_order)
        accepted = await client.events.publish(redoc_order, max_retries=1)

    assert "the server closed the connection before a complete response" in str(raised.value)
    assert accepted.event_id == "evt-raw-server"
    assert len(server.requests) == 3


async def test_cancel_during_backoff_stops(server: RawHTTPServer, redoc_order: Any) -> None:
    server.default = Respond(503)
    policy = RetryPolicy(max_retries=5, initial_wait=0.6, max_wait=0.6)
    loop = asyncio.get_running_loop()

    async with client_for(server, retry_policy=policy) as client:
        task = asyncio.create_task(client.events.publish(redoc_order))
        while not server.requests:
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.05)
        started = loop.time()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        elapsed = loop.time() - started
        await asyncio.sleep(0.7)

    assert task.cancelled()
    # Far below the 0.3 to 0.6 s backoff wait that the cancellation cut short.
    assert elapsed < 0.2
    assert len(server.requests) == 1


async def test_wait_for_stops_retries(server: RawHTTPServer, redoc_order: Any) -> None:
    server.default = Respond(503)
    policy = RetryPolicy(max_retries=5, initial_wait=0.6, max_wait=0.6)
    loop = asyncio.get_running_loop()

    async with client_for(server, retry_policy=policy) as client:
        started = loop.time()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(client.events.publish(redoc_order), timeout=0.1)
        elapsed = loop.time() - started
        await asyncio.sleep(0.7)

    assert elapsed < 0.3
    assert len(server.requests) == 1


async def test_cancel_during_attempt_stops(server: RawHTTPServer, redoc_order: Any) -> None:
    server.default = NoResponse()

    async with client_for(server, timeout=Timeout(read=5, total=10)) as client:
        task = asyncio.create_task(client.events.publish(redoc_order))
        while not server.requests:
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.2)

    assert len(server.requests) == 1


@pytest.mark.parametrize(
    "key",
    ["order-1\r\nX-Injected: 1", "order-1\nX-Injected: 1", "order-1\r", "schlüssel", ""],
)
async def test_unsafe_header_value_sends_nothing(
    server: RawHTTPServer, redoc_order: Any, key: str
) -> None:
    async with client_for(server) as client:
        with pytest.raises(RequestValidationError) as raised:
            await client.events.publish(redoc_order, idempotency_key=key)

    assert raised.value.field == KEY_HEADER
    assert server.connections_accepted == 0
    assert len(server.requests) == 0


async def test_crlf_in_path_stays_one_segment(server: RawHTTPServer) -> None:
    server.default = Respond(200, body={"order_id": "x", "plan_connections": []})

    async with client_for(server) as client:
        await client.orders.plan_connections("ord\r\nX-Injected: 1")

    record = server.requests[0]
    # yarl, under aiohttp, writes ":" unescaped: it is valid inside a path segment.
    assert record.path == "/orders/ord%0D%0AX-Injected:%201/plan-connections"
    assert "X-Injected" not in record.headers


async def test_retry_records_arrive_in_order(server: RawHTTPServer, redoc_order: Any) -> None:
    server.script(Respond(500), Respond(502), Respond(504))

    async with client_for(server, max_retries=3) as client:
        await client.events.publish(redoc_order)

    statuses = [record.status for record in server.requests]
    times = [record.received_at for record in server.requests]
    assert statuses == [500, 502, 504, 202]
    assert times == sorted(times)
    assert all(moment.tzinfo is UTC for moment in times)


async def test_503_then_success_has_no_error(server: RawHTTPServer, redoc_order: Any) -> None:
    server.script(Respond(503, headers={"Retry-After": "0.05"}))

    async with client_for(server) as client:
        accepted = await client.events.publish(redoc_order)
        stats = client.stats

    assert accepted.event_id == "evt-raw-server"
    assert (stats.requests, stats.retries) == (2, 1)
    assert gaps(list(server.requests))[0] >= 0.05


async def test_sandbox_stall_then_retry_replays(sandbox: SandboxServer, redoc_order: Any) -> None:
    sandbox.faults.add(StallBody(5))

    async with client_for(sandbox, timeout=Timeout(read=0.2, total=5)) as client:
        accepted = await client.events.publish(redoc_order)

    assert len(sandbox.events) == 1
    assert accepted.event_id == sandbox.events[0].event_id
    assert [record.fault for record in sandbox.requests] == ["StallBody", None]


async def test_internal_error_mapping_kept(server: RawHTTPServer, redoc_order: Any) -> None:
    server.default = Respond(500, body="<html>oops</html>")

    async with client_for(server, max_retries=0) as client:
        with pytest.raises(InternalServerError) as raised:
            await client.events.publish(redoc_order)

    assert raised.value.body == b"<html>oops</html>"
