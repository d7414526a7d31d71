"""The retry policy: each rule of ``hakuna_async._retry``, alone and through the client.

Client-level checks run against a ``RawHTTPServer`` on loopback, which records every
attempt with the time it arrived.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from hakuna_async import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    ConfigurationError,
    ConflictError,
    HakunaClient,
    InternalServerError,
    RateLimitError,
    RetryPolicy,
    Timeout,
)
from hakuna_async._pressure import BatchPressure
from hakuna_async._retry import parse_retry_after
from hakuna_async.models._operations import PUBLISH_EVENT
from hakuna_async.testing import NoResponse, RawHTTPServer, Reset, Respond

# 2026-12-04T20:00:00Z, a Friday.
NOW = datetime(2026, 12, 4, 20, 0, 0, tzinfo=UTC).timestamp()
TINY_WAITS = RetryPolicy(max_retries=2, initial_wait=0.001, max_wait=0.002)


@pytest.fixture
async def server() -> AsyncIterator[RawHTTPServer]:
    async with RawHTTPServer() as raw:
        yield raw


def client_for(server: RawHTTPServer, **settings: Any) -> HakunaClient:
    settings.setdefault("retry_policy", TINY_WAITS)
    settings.setdefault("timeout", Timeout(connect=1, read=1, total=5))
    return HakunaClient("sk_test", base_url=server.url, **settings)


# Parsing Retry-After.


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        ("  7\t", 7.0),
        ("1.5", 1.5),
        ("007", 7.0),
        ("999999", 999999.0),
        ("Fri, 04 Dec 2026 20:00:03 GMT", 3.0),
        ("Friday, 04-Dec-26 20:00:03 GMT", 3.0),
        ("Fri Dec  4 20:00:03 2026", 3.0),
        ("Fri Dec 4 20:00:03 2026", 3.0),
        ("Sat, 05 Dec 2026 20:00:00 GMT", 86400.0),
        # A leap second counts as the second before it.
        ("Fri, 04 Dec 2026 20:00:60 GMT", 59.0),
    ],
)
def test_retry_after_accepted_forms(value: str, seconds: float) -> None:
    assert parse_retry_after(value, now=NOW) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "0",
        "0.0",
        "-5",
        "-0",
        "+5",
        "abc",
        "1e3",
        "inf",
        "nan",
        "0x10",
        "5 s",
        "5, 7",
        "1.",
        ".5",
        "\u0661\u0662",  # Arabic-Indic digits: float() reads them, HTTP does not.
        "Fri, 04 Dec 2026 20:00:00 GMT",  # now, which is not in the future
        "Thu, 03 Dec 2026 20:00:00 GMT",  # the past
        "Sun, 06 Nov 1994 08:49:37 GMT",
        "Fri, 04 Dec 2026 20:00:03 +0000",  # HTTP-dates are GMT only
        "Fri, 04 Dec 2026 20:00:03 UTC",
        "fri, 04 dec 2026 20:00:03 gmt",  # HTTP-dates are case-sensitive
        "04 Dec 2026 20:00:03 GMT",
        "Fri, 31 Feb 2026 20:00:03 GMT",
        "Fri, 04 Dec 2026 25:00:03 GMT",
        "Friday, 04-Dec-2026 20:00:03 GMT",
    ],
)
def test_retry_after_without_usable_wait(value: str | None) -> None:
    assert parse_retry_after(value, now=NOW) is None


@pytest.mark.parametrize(
    ("value", "year"),
    [
        ("Monday, 01-Jan-76 00:00:00 GMT", 2076),  # 50 years ahead: still the future
        ("Monday, 01-Jan-77 00:00:00 GMT", 1977),  # more than 50 years ahead: the past
        ("Monday, 01-Jan-27 00:00:00 GMT", 2027),
    ],
)
def test_retry_after_rfc850_two_digit_year(value: str, year: int) -> None:
    expected = datetime(year, 1, 1, tzinfo=UTC).timestamp() - NOW

    seconds = parse_retry_after(value, now=NOW)

    if expected > 0:
        assert seconds == pytest.approx(expected)
    else:
        assert seconds is None


def test_retry_after_date_uses_wall_clock() -> None:
    header = datetime.fromtimestamp(math.floor(time.time()) + 10, UTC).strftime(
        "%a, %d %b %Y %H:%M:%S GMT"
    )

    seconds = parse_retry_after(header)

    assert seconds is not None
    assert 9.0 < seconds <= 10.0


def test_retry_after_too_large_for_float_is_infinite() -> None:
    assert parse_retry_after("9" * 400) == math.inf


# Backoff and waits.


def test_backoff_ceiling_doubles_up_to_max_wait() -> None:
    policy = RetryPolicy(initial_wait=0.5, max_wait=8.0)

    ceilings = [policy.backoff_ceiling(n) for n in range(1, 8)]

    assert ceilings == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_backoff_wait_is_equal_jitter() -> None:
    policy = RetryPolicy(initial_wait=0.5, max_wait=8.0)

    for retry_number in (1, 2, 5):
        ceiling = policy.backoff_ceiling(retry_number)
        waits = [policy.backoff_wait(retry_number) for _ in range(500)]

        assert min(waits) >= ceiling / 2
        assert max(waits) <= ceiling
        assert len(set(waits)) > 400


def test_server_wait_is_minimum_jitter_only_adds() -> None:
    policy = RetryPolicy(initial_wait=0.5, max_wait=8.0)

    waits = [policy.wait_before_retry(1, 3.0) for _ in range(500)]

    assert min(waits) >= 3.0
    assert max(waits) <= 3.0 + 0.25
    assert len(set(waits)) > 400


def test_short_server_wait_keeps_backoff() -> None:
    policy = RetryPolicy(initial_wait=0.5, max_wait=8.0)

    waits = [policy.wait_before_retry(3, 0.01) for _ in range(500)]

    assert min(waits) >= policy.backoff_ceiling(3) / 2


@pytest.mark.parametrize("status", [408, 429, 500, 501, 502, 503, 504, 507, 599])
def test_retryable_statuses(status: int) -> None:
    assert RetryPolicy.is_retryable_status(status)


@pytest.mark.parametrize("status", [300, 304, 400, 401, 403, 404, 405, 409, 413, 422, 451])
def test_final_statuses(status: int) -> None:
    assert not RetryPolicy.is_retryable_status(status)


@pytest.mark.parametrize(
    "settings",
    [
        {"max_retries": -1},
        {"max_retries": True},
        {"max_retries": 1.5},
        {"initial_wait": 0},
        {"initial_wait": math.nan},
        {"initial_wait": 2.0, "max_wait": 1.0},
        {"max_retry_after": -1},
        {"max_retry_after": math.nan},
    ],
)
def test_policy_rejects_invalid_settings(settings: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        RetryPolicy(**settings)


def test_with_max_retries_keeps_waits() -> None:
    policy = RetryPolicy(max_retries=2, initial_wait=0.1, max_wait=0.4, max_retry_after=5)

    changed = policy.with_max_retries(7)

    assert changed == RetryPolicy(max_retries=7, initial_wait=0.1, max_wait=0.4, max_retry_after=5)
    assert policy.with_max_retries(None) is policy


# Through the client.


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
async def test_client_retries_status_to_limit(
    server: RawHTTPServer, redoc_order: Any, status: int
) -> None:
    server.default = Respond(status)

    async with client_for(server) as client:
        with pytest.raises(APIStatusError) as raised:
            await client.events.publish(redoc_order)

    assert raised.value.status == status
    assert raised.value.attempts == 3
    assert len(server.requests) == 3


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
async def test_client_never_retries_status(
    server: RawHTTPServer, redoc_order: Any, status: int
) -> None:
    server.default = Respond(status)

    async with client_for(server) as client:
        with pytest.raises(APIStatusError) as raised:
            await client.events.publish(redoc_order)

    assert raised.value.status == status
    assert raised.value.attempts == 1
    assert len(server.requests) == 1


async def test_client_409_is_conflict_error(server: RawHTTPServer, redoc_order: Any) -> None:
    server.default = Respond(409, headers={"Retry-After": "1"})

    async with client_for(server) as client:
        with pytest.raises(ConflictError):
            await client.events.publish(redoc_order)

    assert len(server.requests) == 1


async def test_client_retries_connection_reset(server: RawHTTPServer, redoc_order: Any) -> None:
    server.script(Reset(), Reset())

    async with client_for(server) as client:
        accepted = await client.events.publish(redoc_order)
        server.script(Reset(), Reset(), Reset())
        with pytest.raises(APIConnectionError) as raised:
            await client.events.publish(redoc_order)

    assert accepted.event_id == "evt-raw-server"
    assert raised.value.attempts == 3
    assert len(server.requests) == 6


async def test_exhausted_429_keeps_retry_after(server: RawHTTPServer, redoc_order: Any) -> None:
    server.default = Respond(429, headers={"Retry-After": "0.01"})

    async with client_for(server, max_retries=1) as client:
        with pytest.raises(RateLimitError) as raised:
            await client.events.publish(redoc_order)

    assert raised.value.retry_after == pytest.approx(0.01)
    assert len(server.requests) == 2


async def test_huge_retry_after_with_no_retries_set(
    server: RawHTTPServer, redoc_order: Any
) -> None:
    server.default = Respond(429, headers={"Retry-After": "999999"})

    async with client_for(server, max_retries=0) as client:
        with pytest.raises(RateLimitError) as raised:
            await client.events.publish(redoc_order)

    assert raised.value.retry_after == 999999


async def test_huge_retry_after_on_503_fails_fast(server: RawHTTPServer, redoc_order: Any) -> None:
    server.default = Respond(503, headers={"Retry-After": "3600"})
    loop = asyncio.get_running_loop()

    async with client_for(server) as client:
        started = loop.time()
        with pytest.raises(InternalServerError) as raised:
            await client.events.publish(redoc_order)
        elapsed = loop.time() - started

    assert raised.value.attempts == 1
    assert raised.value.headers["Retry-After"] == "3600"
    assert elapsed < 0.5
    assert len(server.requests) == 1


async def test_per_call_max_retries_overrides_client(
    server: RawHTTPServer, redoc_order: Any
) -> None:
    server.default = Respond(503)

    async with client_for(server, max_retries=4) as client:
        with pytest.raises(InternalServerError):
            await client.events.publish(redoc_order)
        client_attempts = len(server.requests)
        with pytest.raises(InternalServerError):
            await client.events.publish(redoc_order, max_retries=1)

    assert client_attempts == 5
    assert len(server.requests) == 5 + 2


async def test_per_call_timeout_overrides_client(server: RawHTTPServer, redoc_order: Any) -> None:
    server.default = NoResponse()
    loop = asyncio.get_running_loop()

    async with client_for(server, timeout=Timeout(connect=5, read=30, total=60)) as client:
        started = loop.time()
        with pytest.raises(APITimeoutError):
            await client.events.publish(redoc_order, timeout=Timeout(read=0.2, total=0.5))
        structured = loop.time() - started
        started = loop.time()
        with pytest.raises(APITimeoutError):
            await client.events.publish(redoc_order, timeout=0.3, max_retries=0)
        plain_seconds = loop.time() - started

    assert 0.5 <= structured < 0.8
    assert 0.3 <= plain_seconds < 0.6


async def test_deadline_counts_waits(server: RawHTTPServer, redoc_order: Any) -> None:
    server.default = Respond(503, headers={"Retry-After": "0.5"})
    loop = asyncio.get_running_loop()

    async with client_for(server, max_retries=5, timeout=Timeout(total=0.8)) as client:
        started = loop.time()
        with pytest.raises(InternalServerError) as raised:
            await client.events.publish(redoc_order)
        elapsed = loop.time() - started

    # Attempt 1, a wait of at least 0.5 s, attempt 2; the next wait would end past 0.8 s.
    assert raised.value.attempts == 2
    assert len(server.requests) == 2
    assert 0.5 <= elapsed < 0.8


async def test_server_wait_past_deadline_fails_at_once(
    server: RawHTTPServer, redoc_order: Any
) -> None:
    server.default = Respond(429, headers={"Retry-After": "5"})
    loop = asyncio.get_running_loop()

    async with client_for(server, timeout=Timeout(total=2)) as client:
        started = loop.time()
        with pytest.raises(RateLimitError) as raised:
            await client.events.publish(redoc_order)
        elapsed = loop.time() - started

    assert raised.value.retry_after == 5
    assert raised.value.attempts == 1
    assert elapsed < 0.5


async def test_batch_pause_counts_against_deadline(server: RawHTTPServer, redoc_order: Any) -> None:
    pressure = BatchPressure(max_concurrency=1)
    pressure.on_throttled(30)
    loop = asyncio.get_running_loop()

    async with client_for(server) as client:
        started = loop.time()
        with pytest.raises(APITimeoutError) as raised:
            await client.request(
                PUBLISH_EVENT,
                body=b'{"type": "order_cancelled"}',
                timeout=Timeout(total=0.3),
                pressure=pressure,
            )
        elapsed = loop.time() - started

    assert raised.value.attempts == 0
    assert "deadline" in str(raised.value)
    assert 0.3 <= elapsed < 0.6
    assert server.connections_accepted == 0
