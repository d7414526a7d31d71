"""The recipes in examples/, each run as a real server or worker against the sandbox.

Every recipe runs in a subprocess that talks to a sandbox on loopback, serves or
processes real calls, is stopped with a signal, and must not print the warnings of a
client, session or task left open at shutdown.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
from arq.connections import RedisSettings, create_pool
from celery import Celery
from conftest import ProcessGroup, Started, free_port

from hakuna_async.testing import SandboxServer
from hakuna_async.testing.sample import generate_events

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# What Python, asyncio and aiohttp print when a client, session or task is left open.
SHUTDOWN_NOISE = (
    "Unclosed client session",
    "Unclosed connector",
    "Event loop is closed",
    "Task was destroyed",
    "was not closed",
)


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    async with SandboxServer() as server:
        yield server


def recipe_env(sandbox: SandboxServer, **extra: str) -> dict[str, str]:
    python_path = os.pathsep.join(filter(None, [str(EXAMPLES), os.environ.get("PYTHONPATH")]))
    return {
        "HAKUNA_API_KEY": sandbox.api_key,
        "HAKUNA_BASE_URL": sandbox.url,
        "PYTHONPATH": python_path,
        # Shows HakunaClient's own warning when it is garbage-collected unclosed.
        "PYTHONWARNINGS": "always::ResourceWarning",
        **extra,
    }


def assert_clean_shutdown(started: Started) -> None:
    output = started.output()
    for noise in SHUTDOWN_NOISE:
        assert noise not in output, f"{started.name} printed {noise!r}:\n{output[-4000:]}"


async def wait_until_serving(http: aiohttp.ClientSession, url: str, started: Started) -> None:
    """Wait up to 30 s for ``url`` to respond with any status."""
    for _ in range(300):
        if started.process.returncode is not None:
            raise AssertionError(f"{started.name} exited early:\n{started.output()[-4000:]}")
        try:
            async with http.get(url):
                return
        except aiohttp.ClientConnectionError:
            await asyncio.sleep(0.1)
    raise AssertionError(f"{started.name} did not serve {url} within 30 s")


async def exercise_web_app(base: str, sandbox: SandboxServer, redoc_order: Any) -> None:
    """Publish, replay, read back and send an invalid event through a recipe's routes."""
    key = str(uuid.uuid4())
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        async with http.post(
            f"{base}/events", json=redoc_order, headers={"Idempotency-Key": key}
        ) as response:
            assert response.status == 202, await response.text()
            first = await response.json()
        async with http.post(
            f"{base}/events", json=redoc_order, headers={"Idempotency-Key": key}
        ) as response:
            assert response.status == 202, await response.text()
            replayed = await response.json()
        async with http.get(f"{base}/orders/ord-123/plan-connections") as response:
            assert response.status == 200, await response.text()
            connections = await response.json()
        async with http.get(f"{base}/orders/ord-missing/plan-connections") as response:
            missing_status = response.status
        async with http.post(f"{base}/events", json={"type": "order_placed"}) as response:
            invalid_status = response.status
            invalid = await response.json()

    assert first["event_id"].startswith("evt-")
    assert replayed == first
    assert len(sandbox.events) == 1
    assert connections[0]["plan_line_item_id"] == "line-item-id-3322"
    assert missing_status == 404
    assert invalid_status == 422
    assert "payload" in str(invalid)


async def test_fastapi_recipe_serves_and_closes(
    sandbox: SandboxServer, processes: ProcessGroup, redoc_order: Any
) -> None:
    port = free_port()
    server = await processes.start(
        "uvicorn",
        *(sys.executable, "-m", "uvicorn", "--app-dir", str(EXAMPLES), "fastapi_app:app"),
        *("--host", "127.0.0.1", "--port", str(port)),
        env=recipe_env(sandbox),
    )
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:
        await wait_until_serving(http, f"{base}/docs", server)

    await exercise_web_app(base, sandbox, redoc_order)
    exit_code = await processes.stop(server, signal.SIGINT)

    assert exit_code == 0
    assert "Application shutdown complete" in server.output()
    assert_clean_shutdown(server)


async def test_aiohttp_recipe_serves_and_closes(
    sandbox: SandboxServer, processes: ProcessGroup, redoc_order: Any
) -> None:
    port = free_port()
    server = await processes.start(
        "aiohttp",
        *(sys.executable, "-m", "aiohttp.web", "-H", "127.0.0.1", "-P", str(port)),
        "aiohttp_app:init_app",
        env=recipe_env(sandbox),
    )
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:
        await wait_until_serving(http, f"{base}/orders/none/plan-connections", server)

    await exercise_web_app(base, sandbox, redoc_order)
    exit_code = await processes.stop(server, signal.SIGTERM)

    assert exit_code == 0
    assert_clean_shutdown(server)


async def test_arq_recipe_runs_job_and_stops(
    sandbox: SandboxServer, processes: ProcessGroup, redis_url: str
) -> None:
    events = [msgspec.to_builtins(event) for event in generate_events(5, seed=41)]
    worker = await processes.start(
        "arq",
        *(sys.executable, "-m", "arq", "arq_worker.WorkerSettings"),
        env=recipe_env(sandbox, REDIS_URL=redis_url),
    )

    pool = await create_pool(RedisSettings.from_dsn(redis_url))
    try:
        jobs = [await pool.enqueue_job("publish_order_event", event) for event in events]
        event_ids = [await job.result(timeout=30) for job in jobs if job is not None]
    finally:
        await pool.aclose()
    exit_code = await processes.stop(worker, signal.SIGTERM)

    assert len(event_ids) == 5
    assert all(event_id.startswith("evt-") for event_id in event_ids)
    assert len(sandbox.events) == 5
    assert exit_code == 0
    assert_clean_shutdown(worker)


async def test_celery_recipe_prefork_publishes(
    sandbox: SandboxServer, processes: ProcessGroup, redis_url: str
) -> None:
    events = [msgspec.to_builtins(event) for event in generate_events(20, seed=42)]
    worker = await processes.start(
        "celery",
        *(sys.executable, "-m", "celery", "-A", "celery_worker", "worker"),
        *("--pool", "prefork", "--concurrency", "2", "--loglevel", "INFO"),
        *("--without-heartbeat", "--without-gossip", "--without-mingle"),
        env=recipe_env(sandbox, REDIS_URL=redis_url),
        cwd=EXAMPLES,
    )

    # The sender needs only the task's name, not the worker's code. Its blocking calls
    # run in a thread, so that this loop goes on serving the sandbox.
    sender = Celery("recipe-test", broker=redis_url, backend=redis_url)
    try:
        results = [sender.send_task("hakuna.publish_order_event", args=[event]) for event in events]
        event_ids = [await asyncio.to_thread(result.get, timeout=60) for result in results]
    finally:
        sender.close()
    exit_code = await processes.stop(worker, signal.SIGTERM)

    assert len(set(event_ids)) == 20
    assert len(sandbox.events) == 20
    assert exit_code == 0
    assert "ForkPoolWorker" in worker.output()
    assert_clean_shutdown(worker)
