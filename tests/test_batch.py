"""Batch publishing at scale: derived keys, the journal, resume after SIGKILL, back-pressure."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from hakuna_async import HakunaClient, RetryPolicy
from hakuna_async._journal import ConfirmedLines, Journal
from hakuna_async._keys import derive_idempotency_key, key_namespace_uuid
from hakuna_async.batch import publish_jsonl
from hakuna_async.testing import Delay, Respond, SandboxServer
from hakuna_async.testing.sample import generate_events

ROOT = Path(__file__).resolve().parent.parent
COMMAND = [sys.executable, "-m", "hakuna_async"]


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    async with SandboxServer() as server:
        yield server


def write_sample(path: Path, count: int, seed: int) -> list[bytes]:
    lines = [msgspec.json.encode(event) for event in generate_events(count, seed=seed)]
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return lines


def stored_bodies(sandbox: SandboxServer) -> Counter[bytes]:
    return Counter(msgspec.json.encode(received.event) for received in sandbox.events)


def last_record_per_line(results: Path) -> dict[int, dict[str, Any]]:
    records: dict[int, dict[str, Any]] = {}
    for raw in results.read_bytes().splitlines():
        try:
            record = json.loads(raw)
        except ValueError:
            continue
        records[record["line"]] = record
    return records


# Derived keys.


def test_derived_key_is_stable_per_content() -> None:
    namespace = key_namespace_uuid(api_key="sk_a", base_url="https://api.hellohakuna.com")

    first = derive_idempotency_key(b'{"type":"order_placed"}', namespace)
    again = derive_idempotency_key(b'{"type":"order_placed"}', namespace)
    other = derive_idempotency_key(b'{"type":"order_cancelled"}', namespace)

    assert first == again
    assert first != other


def test_derived_key_differs_per_merchant_and_environment() -> None:
    body = b'{"type":"order_placed"}'
    production = key_namespace_uuid(api_key="sk_a", base_url="https://api.hellohakuna.com")
    sandbox = key_namespace_uuid(api_key="sk_a", base_url="https://api.hellohakuna.com/sandbox")
    other_merchant = key_namespace_uuid(api_key="sk_b", base_url="https://api.hellohakuna.com")

    keys = {derive_idempotency_key(body, ns) for ns in (production, sandbox, other_merchant)}

    assert len(keys) == 3


def test_explicit_namespace_ignores_api_key() -> None:
    body = b"{}"
    first = key_namespace_uuid(api_key="sk_old", base_url="u", key_namespace="shop-7")
    rotated = key_namespace_uuid(api_key="sk_new", base_url="u", key_namespace="shop-7")

    assert derive_idempotency_key(body, first) == derive_idempotency_key(body, rotated)


def test_derived_key_hides_api_key() -> None:
    namespace = key_namespace_uuid(api_key="sk_secret_value", base_url="u")

    key = derive_idempotency_key(b"{}", namespace)

    assert "sk_secret" not in key
    assert len(key) == 36


# The journal.


def test_confirmed_lines_bitmap() -> None:
    confirmed = ConfirmedLines()

    for line in (1, 8, 9, 1_000_000, 8):
        confirmed.add(line)

    assert confirmed.count == 4
    assert 8 in confirmed
    assert 1_000_000 in confirmed
    assert 2 not in confirmed
    assert 2_000_000 not in confirmed


def test_journal_cuts_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    path.write_bytes(
        b'{"line": 1, "event_id": "evt-1"}\n'
        b'{"line": 2, "error": {"type": "BadRequestError"}}\n'
        b'{"line": 3, "event_id": "ev'
    )

    journal = Journal(path, resume=True)
    journal.write({"line": 3, "event_id": "evt-3"})
    journal.close()

    lines = path.read_bytes().splitlines()
    assert 1 in journal.confirmed
    assert 2 not in journal.confirmed
    assert 3 not in journal.confirmed
    assert journal.ignored_lines == 1
    assert lines[-1] == b'{"line":3,"event_id":"evt-3"}'
    assert len(lines) == 3


def test_journal_ignores_garbage_lines(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    path.write_bytes(b'not json\n{"line": 5, "event_id": "evt-5"}\n{"no_line": 1}\n')

    journal = Journal(path, resume=True)
    journal.close()

    assert 5 in journal.confirmed
    assert journal.confirmed.count == 1
    assert journal.ignored_lines == 2


# Replay safety and resume through the Python API.


async def test_same_file_twice_stores_nothing_twice(sandbox: SandboxServer, tmp_path: Path) -> None:
    source = tmp_path / "events.jsonl"
    lines = write_sample(source, 300, seed=21)

    async with HakunaClient(sandbox.api_key, base_url=sandbox.url) as client:
        first = await publish_jsonl(client, source)
        second = await publish_jsonl(client, source)

    assert first.published == 300
    assert second.published == 300
    assert len(sandbox.events) == 300
    assert stored_bodies(sandbox) == Counter(lines)


async def test_random_keys_store_twice(sandbox: SandboxServer, tmp_path: Path) -> None:
    source = tmp_path / "events.jsonl"
    write_sample(source, 20, seed=22)

    async with HakunaClient(sandbox.api_key, base_url=sandbox.url) as client:
        await publish_jsonl(client, source, idempotency="random")
        await publish_jsonl(client, source, idempotency="random")

    assert len(sandbox.events) == 40


async def test_resume_skips_confirmed_lines(sandbox: SandboxServer, tmp_path: Path) -> None:
    source, results = tmp_path / "events.jsonl", tmp_path / "results.jsonl"
    write_sample(source, 100, seed=23)
    done = b"".join(
        json.dumps({"line": n, "event_id": f"evt-earlier-{n}"}).encode() + b"\n"
        for n in range(1, 41)
    )
    results.write_bytes(done)

    async with HakunaClient(sandbox.api_key, base_url=sandbox.url) as client:
        summary = await publish_jsonl(client, source, results=results, resume=True)

    records = last_record_per_line(results)
    assert summary.skipped == 40
    assert summary.published == 60
    assert len(sandbox.events) == 60
    assert sorted(records) == list(range(1, 101))


async def test_resume_requires_results_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="results file"):
        await publish_jsonl(None, tmp_path / "x.jsonl", resume=True, dry_run=True)


async def test_dry_run_sends_nothing(sandbox: SandboxServer, tmp_path: Path) -> None:
    source, results = tmp_path / "events.jsonl", tmp_path / "results.jsonl"
    write_sample(source, 30, seed=24)
    with source.open("ab") as handle:
        handle.write(b'{"type": "order_cancelled", "payload": {"order_id": "o"}}\n')

    summary = await publish_jsonl(None, source, results=results, dry_run=True)

    records = last_record_per_line(results)
    assert summary.valid == 30
    assert summary.rejected == 1
    assert records[31]["error"]["field"] == "$.payload.cancelled_at"
    assert len(sandbox.requests) == 0


# Resume after SIGKILL, through the command line.


async def start_publisher(sandbox: SandboxServer, source: Path, results: Path, *extra: str) -> Any:
    return await asyncio.create_subprocess_exec(
        *COMMAND,
        "publish",
        str(source),
        "--results",
        str(results),
        "--base-url",
        sandbox.url,
        "--api-key",
        sandbox.api_key,
        "--concurrency",
        "16",
        "--no-progress",
        *extra,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


async def wait_for_results(results: Path, lines: int, process: Any, timeout: float = 60) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if results.exists() and results.read_bytes().count(b"\n") >= lines:
            return
        if process.returncode is not None:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"fewer than {lines} results after {timeout} s")


@pytest.mark.parametrize(
    ("kill_after", "hold_in_flight"),
    [(0, False), (1, False), (700, False), (1500, True), (2500, False)],
    ids=["before-any-result", "after-first", "early", "requests-in-flight", "late"],
)
async def test_sigkill_then_resume_stores_each_event_once(
    sandbox: SandboxServer, tmp_path: Path, kill_after: int, hold_in_flight: bool
) -> None:
    source, results = tmp_path / "events.jsonl", tmp_path / "results.jsonl"
    lines = write_sample(source, 3000, seed=25)
    hold = 1.0

    first = await start_publisher(sandbox, source, results)
    await wait_for_results(results, kill_after, first)
    if hold_in_flight:
        # The server delays the next requests, so the publisher dies with them in flight,
        # and they are stored after it died.
        sandbox.faults.add(Delay(hold), path="/events", times=32)
        await wait_for_faults(sandbox, 16)
    if first.returncode is None:
        first.send_signal(signal.SIGKILL)
    await first.wait()
    held = sandbox.faults.applied_count(Delay)

    second = await start_publisher(sandbox, source, results, "--resume")
    _, stderr = await asyncio.wait_for(second.communicate(), timeout=120)
    if hold_in_flight:
        await asyncio.sleep(hold)  # the held requests end, as replays or first stores

    records = last_record_per_line(results)
    assert first.returncode == -signal.SIGKILL
    assert second.returncode == 0, stderr.decode()
    assert stored_bodies(sandbox) == Counter(lines)
    assert sorted(records) == list(range(1, 3001))
    assert all(record.get("event_id") for record in records.values())
    assert held >= (16 if hold_in_flight else 0)


async def wait_for_faults(sandbox: SandboxServer, count: int, timeout: float = 30) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while sandbox.faults.applied_count() < count:
        if loop.time() > deadline:
            raise AssertionError(f"fewer than {count} faults applied after {timeout} s")
        await asyncio.sleep(0.005)


async def test_republish_after_complete_run_is_replayed(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    source = tmp_path / "events.jsonl"
    write_sample(source, 200, seed=26)

    for results_name in ("first.jsonl", "second.jsonl"):
        process = await start_publisher(sandbox, source, tmp_path / results_name)
        await asyncio.wait_for(process.communicate(), timeout=60)
        assert process.returncode == 0

    first_ids = {
        r["line"]: r["event_id"]
        for r in map(json.loads, (tmp_path / "first.jsonl").read_bytes().splitlines())
    }
    second_ids = {
        r["line"]: r["event_id"]
        for r in map(json.loads, (tmp_path / "second.jsonl").read_bytes().splitlines())
    }
    assert len(sandbox.events) == 200
    assert first_ids == second_ids


# Batch-wide back-pressure.


async def test_429_pauses_whole_batch(sandbox: SandboxServer) -> None:
    sandbox.faults.add(Respond(429, headers={"Retry-After": "2"}), path="/events", times=1)
    events = list(generate_events(400, seed=27))
    policy = RetryPolicy(max_retries=3, initial_wait=0.05, max_wait=0.1)

    async with HakunaClient(sandbox.api_key, base_url=sandbox.url, retry_policy=policy) as client:
        batch = client.events.publish_many(events, concurrency=16)
        results = [result async for result in batch]

    throttled_at = next(r.received_at for r in sandbox.requests if r.status == 429)
    window = [
        r for r in sandbox.requests if 0.2 < (r.received_at - throttled_at).total_seconds() < 2.0
    ]
    assert all(result.ok for result in results)
    assert len(sandbox.events) == 400
    assert window == []
    assert batch.throttle_count == 1
    assert batch.throttled_seconds >= 2.0


async def test_503_without_retry_after_pauses_by_backoff(sandbox: SandboxServer) -> None:
    sandbox.faults.add(Respond(503), path="/events", times=3)
    policy = RetryPolicy(max_retries=3, initial_wait=0.2, max_wait=0.4)

    async with HakunaClient(sandbox.api_key, base_url=sandbox.url, retry_policy=policy) as client:
        batch = client.events.publish_many(generate_events(100, seed=28), concurrency=8)
        results = [result async for result in batch]

    assert all(result.ok for result in results)
    assert batch.throttle_count == 3
    assert batch.throttled_seconds > 0.1
    assert batch.concurrency <= 8


async def test_rate_limit_spaces_events(sandbox: SandboxServer) -> None:
    async with HakunaClient(sandbox.api_key, base_url=sandbox.url) as client:
        loop = asyncio.get_running_loop()
        started = loop.time()
        batch = client.events.publish_many(
            generate_events(30, seed=29), concurrency=8, rate_limit=50
        )
        results = [result async for result in batch]
        elapsed = loop.time() - started

    assert len(results) == 30
    assert elapsed >= 29 / 50


# Flat memory.


async def test_publish_many_rss_stays_flat() -> None:
    async with SandboxServer(max_recorded_requests=1000) as sandbox:
        figures, status, stderr = await measure_publisher(sandbox, events=100_000)
    print(f"publish_many memory: {figures}")

    growth = figures["rss_at_end_mib"] - figures["rss_at_checkpoint_mib"]
    assert status == 0, stderr
    assert figures["failed"] == 0
    assert growth < 16, figures
    assert figures["rss_at_end_mib"] < 200, figures


async def measure_publisher(
    sandbox: SandboxServer, *, events: int
) -> tuple[dict[str, Any], int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "benchmarks" / "batch_memory.py"),
        "--events",
        str(events),
        "--checkpoint",
        "10000",
        "--base-url",
        sandbox.url,
        "--api-key",
        sandbox.api_key,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=240)
    assert process.returncode is not None
    figures = json.loads(stdout) if stdout else {}
    return figures, process.returncode, stderr.decode()


# Stopping early when every further event would fail alike.


async def test_rejected_key_stops_batch(sandbox: SandboxServer) -> None:
    from hakuna_async import AuthenticationError, BatchStoppedError

    results = []
    async with HakunaClient("sk_wrong", base_url=sandbox.url) as client:
        batch = client.events.publish_many(generate_events(2000, seed=41), concurrency=8)
        with pytest.raises(BatchStoppedError) as raised:
            async for result in batch:
                results.append(result)

    assert isinstance(raised.value.cause, AuthenticationError)
    assert "API key" in str(raised.value)
    assert 1 <= len(results) <= 16
    assert len(sandbox.requests) == len(results)
    assert all(isinstance(result.error, AuthenticationError) for result in results)


async def test_unreachable_api_stops_batch() -> None:
    from hakuna_async import APIConnectionError, BatchStoppedError

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    policy = RetryPolicy(max_retries=1, initial_wait=0.01, max_wait=0.02)
    results = []
    async with HakunaClient(
        "sk_test", base_url=f"http://127.0.0.1:{closed_port}", retry_policy=policy
    ) as client:
        batch = client.events.publish_many(generate_events(2000, seed=42), concurrency=4)
        with pytest.raises(BatchStoppedError) as raised:
            async for result in batch:
                results.append(result)

    assert isinstance(raised.value.cause, APIConnectionError)
    assert 8 <= len(results) <= 12
    assert "base URL" in str(raised.value)


async def test_cli_reports_stopped_batch(sandbox: SandboxServer, tmp_path: Path) -> None:
    source, results = tmp_path / "events.jsonl", tmp_path / "results.jsonl"
    write_sample(source, 1000, seed=43)
    process = await asyncio.create_subprocess_exec(
        *COMMAND,
        "publish",
        str(source),
        "--results",
        str(results),
        "--base-url",
        sandbox.url,
        "--api-key",
        "sk_wrong",
        "--no-progress",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)

    assert process.returncode == 1
    assert "Stopped the batch" in stderr.decode()
    assert len(sandbox.requests) < 100
    assert len(results.read_bytes().splitlines()) == len(sandbox.requests)


async def test_429_window_pauses_then_completes(sandbox: SandboxServer) -> None:
    # Every request gets 429 with Retry-After: 2 for one second, then the server recovers.
    sandbox.faults.add(Respond(429, headers={"Retry-After": "2"}), path="/events", times=None)
    policy = RetryPolicy(max_retries=4, initial_wait=0.05, max_wait=0.1)

    async def recover_after_first_429() -> None:
        while not any(r.status == 429 for r in sandbox.requests):
            await asyncio.sleep(0.01)
        await asyncio.sleep(1.0)
        sandbox.faults.clear()

    recovery = asyncio.create_task(recover_after_first_429())
    async with HakunaClient(sandbox.api_key, base_url=sandbox.url, retry_policy=policy) as client:
        batch = client.events.publish_many(generate_events(300, seed=44), concurrency=16)
        results = [result async for result in batch]
    await recovery

    first_429 = next(r.received_at for r in sandbox.requests if r.status == 429)
    inside_window = [
        r for r in sandbox.requests if 0.2 < (r.received_at - first_429).total_seconds() < 2.0
    ]
    assert all(result.ok for result in results)
    assert len(sandbox.events) == 300
    assert inside_window == []
    assert batch.throttled_seconds >= 2.0


async def test_pressure_halves_once_per_pause() -> None:
    from hakuna_async._pressure import BatchPressure

    pressure = BatchPressure(max_concurrency=16)

    for _ in range(10):
        pressure.on_throttled(2.0)

    assert pressure.limit == 8
    assert pressure.throttle_count == 10
    assert 2.0 <= pressure.throttled_seconds < 2.1


async def test_pressure_recovers_one_slot_per_round() -> None:
    from hakuna_async._pressure import BatchPressure

    pressure = BatchPressure(max_concurrency=16)
    pressure.on_throttled(0.0)

    for _ in range(8):
        pressure.on_success()

    assert pressure.limit == 9
