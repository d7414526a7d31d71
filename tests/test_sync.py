"""The blocking facade: threads, fork, and misuse inside an event loop."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from hakuna_async import ClientStateError, NotFoundError
from hakuna_async.sync import HakunaSyncClient
from hakuna_async.testing import SandboxServer
from hakuna_async.testing.sample import generate_events


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    """A sandbox serving from its own loop in a background thread."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = SandboxServer()
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(timeout=10)
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


@pytest.fixture
def client(sandbox: SandboxServer) -> Iterator[HakunaSyncClient]:
    with HakunaSyncClient(sandbox.api_key, base_url=sandbox.url) as sync_client:
        yield sync_client


def test_sync_publish_and_read_back(client: HakunaSyncClient, redoc_order: Any) -> None:
    accepted = client.events.publish(redoc_order)
    connections = client.orders.plan_connections("ord-123")

    assert accepted.event_id.startswith("evt-")
    assert connections.plan_connections[0].plan_line_item_id == "line-item-id-3322"


def test_sync_errors_are_the_async_ones(client: HakunaSyncClient) -> None:
    with pytest.raises(NotFoundError):
        client.orders.plan_connections("ord-missing")


def test_sync_publish_from_eight_threads(client: HakunaSyncClient, sandbox: SandboxServer) -> None:
    events = list(generate_events(400, seed=31))

    with ThreadPoolExecutor(max_workers=8) as pool:
        accepted = list(pool.map(client.events.publish, events))

    assert len({a.event_id for a in accepted}) == 400
    assert len(sandbox.events) == 400


def test_sync_publish_many(client: HakunaSyncClient, sandbox: SandboxServer) -> None:
    results = list(client.events.publish_many(generate_events(120, seed=32), concurrency=8))

    assert sorted(r.index for r in results) == list(range(120))
    assert all(r.ok for r in results)
    assert len(sandbox.events) == 120


def test_sync_publish_many_early_exit(client: HakunaSyncClient, sandbox: SandboxServer) -> None:
    for count, _ in enumerate(
        client.events.publish_many(generate_events(5000, seed=33), concurrency=4), 1
    ):
        if count == 10:
            break

    assert len(sandbox.events) < 100
    assert client.orders is not None


async def test_sync_inside_running_loop_raises(sandbox: SandboxServer, redoc_order: Any) -> None:
    sync_client = HakunaSyncClient(sandbox.api_key, base_url=sandbox.url)
    try:
        with pytest.raises(ClientStateError, match="inside a running event loop"):
            sync_client.events.publish(redoc_order)
    finally:
        sync_client.close()

    assert len(sandbox.requests) == 0


def test_sync_close_twice_then_use_raises(sandbox: SandboxServer, redoc_order: Any) -> None:
    sync_client = HakunaSyncClient(sandbox.api_key, base_url=sandbox.url)
    sync_client.events.publish(redoc_order)

    sync_client.close()
    sync_client.close()

    with pytest.raises(ClientStateError, match="closed"):
        sync_client.events.publish(redoc_order)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_sync_client_survives_fork(client: HakunaSyncClient, sandbox: SandboxServer) -> None:
    first, in_child, after = list(generate_events(3, seed=34))
    client.events.publish(first)

    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child process
        try:
            client.events.publish(in_child)
            client.close()
        except BaseException:
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(child, 0)
    client.events.publish(after)

    assert os.waitstatus_to_exitcode(status) == 0
    assert len(sandbox.events) == 3
