"""Distributed publishing: a producer, arq worker processes, Redis and the sandbox on loopback."""

from __future__ import annotations

import asyncio
import io
import json
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from conftest import ProcessGroup, Started
from redis.asyncio import Redis

from hakuna_async import _cli
from hakuna_async._distributed import RunKeys, RunTotals, _read_chunks
from hakuna_async.distributed import publish_distributed
from hakuna_async.testing import Respond, SandboxServer
from hakuna_async.testing.sample import generate_events

PUBLISH = [sys.executable, "-m", "hakuna_async", "publish"]
WORKER = [sys.executable, "-m", "arq", "hakuna_async.distributed.WorkerSettings"]


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
        record = json.loads(raw)
        records[record["line"]] = record
    return records


def worker_env(sandbox: SandboxServer, redis_url: str, **extra: str) -> dict[str, str]:
    return {
        "HAKUNA_API_KEY": sandbox.api_key,
        "HAKUNA_BASE_URL": sandbox.url,
        "HAKUNA_REDIS_URL": redis_url,
        "PYTHONWARNINGS": "always::ResourceWarning",
        **extra,
    }


def jobs_running(worker: Started) -> int:
    # arq logs "→" when it starts a job and "←" when the job returns.
    output = worker.output()
    return output.count(" → ") - output.count(" ← ")


async def wait_for_kill_point(
    sandbox: SandboxServer, count: int, worker: Started, *watched: Started
) -> None:
    """Wait up to 60 s for ``count`` stored events while ``worker`` is running a job."""
    for _ in range(600):
        if len(sandbox.events) >= count and jobs_running(worker) > 0:
            return
        for started in (worker, *watched):
            if started.process.returncode is not None:
                raise AssertionError(f"{started.name} exited early:\n{started.output()[-4000:]}")
        await asyncio.sleep(0.1)
    raise AssertionError(
        f"the sandbox stored {len(sandbox.events)} of {count} events, and "
        f"{worker.name} runs {jobs_running(worker)} jobs"
    )


async def wait_for_exit(started: Started, timeout: float) -> int:
    try:
        return await asyncio.wait_for(started.process.wait(), timeout)
    except TimeoutError:
        raise AssertionError(
            f"{started.name} did not finish within {timeout} s:\n{started.output()[-4000:]}"
        ) from None


@pytest.mark.slow
async def test_worker_killed_midway_every_event_once(
    sandbox: SandboxServer, processes: ProcessGroup, redis_url: str, tmp_path: Path
) -> None:
    source, results = tmp_path / "events.jsonl", tmp_path / "results.jsonl"
    summary_file = tmp_path / "summary.json"
    lines = write_sample(source, 20_000, seed=51)
    # arq runs a dead worker's job again once its lock expires: the job timeout + 10 s.
    env = worker_env(sandbox, redis_url, HAKUNA_WORKER_JOBS="2", HAKUNA_JOB_TIMEOUT="5")
    doomed = await processes.start("worker-killed", *WORKER, env=env)
    survivor = await processes.start("worker-survivor", *WORKER, env=env)
    options = ["--redis", redis_url, "--results", str(results), "--no-progress"]
    producer = await processes.start(
        "producer",
        *PUBLISH,
        str(source),
        *options,
        *("--summary-json", str(summary_file), "--max-queued-jobs", "8"),
        env={"PYTHONWARNINGS": "always::ResourceWarning"},
    )

    await wait_for_kill_point(sandbox, 5_000, doomed, survivor, producer)
    doomed.process.kill()
    producer_exit = await wait_for_exit(producer, timeout=180)
    summary = json.loads(summary_file.read_bytes())
    records = last_record_per_line(results)

    assert producer_exit == 0, producer.output()[-4000:]
    assert summary["published"] == 20_000
    assert summary["lines"] == 20_000
    assert summary["failed"] == summary["rejected"] == summary["unfinished"] == 0
    assert len(sandbox.events) == 20_000
    assert stored_bodies(sandbox) == Counter(lines)
    assert sorted(records) == list(range(1, 20_001))
    assert all(record["event_id"] for record in records.values())
    # The survivor ran again at least one job that the killed worker had started.
    assert "try=2" in survivor.output()

    rerun = await processes.start(
        "producer-rerun",
        *PUBLISH,
        str(source),
        *options,
        *("--summary-json", str(summary_file)),
    )
    rerun_exit = await wait_for_exit(rerun, timeout=60)
    rerun_summary = json.loads(summary_file.read_bytes())
    survivor_exit = await processes.stop(survivor, signal.SIGTERM)

    assert rerun_exit == 0, rerun.output()[-4000:]
    assert rerun_summary["skipped"] == 20_000
    assert rerun_summary["published"] == 20_000
    assert len(sandbox.events) == 20_000
    assert survivor_exit == 0
    assert "Unclosed" not in survivor.output()
    assert "was not closed" not in survivor.output()


async def test_rerun_retries_only_failed_jobs(
    sandbox: SandboxServer, processes: ProcessGroup, redis_url: str, tmp_path: Path
) -> None:
    source, results = tmp_path / "events.jsonl", tmp_path / "results.jsonl"
    lines = write_sample(source, 600, seed=52)
    with source.open("ab") as file:
        file.write(b'{"type": "order_placed", "payload": {}}\n')
    await processes.start("worker", *WORKER, env=worker_env(sandbox, redis_url))
    # 400 is not retried by the client, so three events fail for good in the first run.
    sandbox.faults.add(Respond(400), path="/events", times=3)
    errors: list[Any] = []

    async def publish() -> Any:
        return await asyncio.wait_for(
            publish_distributed(
                source,
                redis_url=redis_url,
                results=results,
                job_size=100,
                on_error=errors.append,
            ),
            timeout=60,
        )

    first = await publish()
    failed_first = {
        line for line, record in last_record_per_line(results).items() if record.get("error")
    }
    second = await publish()
    records = last_record_per_line(results)

    assert first.published == 597
    assert first.failed == 3
    assert first.rejected == 1
    assert not first.ok
    assert len(failed_first) == 4
    assert {record.line for record in errors} >= failed_first
    assert second.published == 600
    assert second.failed == 0
    assert second.rejected == 1
    assert second.lines == second.published + second.rejected == 601
    # Only the jobs with failed lines ran again; the others were recorded.
    assert second.skipped >= 601 - 3 * 100
    assert stored_bodies(sandbox) == Counter(lines)
    assert sorted(records) == list(range(1, 602))
    assert records[601]["error"]["type"] == "RequestValidationError"


async def test_no_workers_stops_at_stall_timeout(redis_url: str, tmp_path: Path) -> None:
    source = tmp_path / "events.jsonl"
    write_sample(source, 250, seed=53)

    summary = await asyncio.wait_for(
        publish_distributed(source, redis_url=redis_url, job_size=100, stall_timeout=1),
        timeout=30,
    )

    assert summary.stalled
    assert summary.unfinished == 250
    assert summary.lines == 250
    assert not summary.ok


async def test_record_job_counts_each_job_once(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    try:
        keys = RunKeys(redis, "record-test")
        first = await keys.record_job(0, published=10, rejected=0, failed=0, records=b"")
        duplicate = await keys.record_job(0, published=10, rejected=0, failed=0, records=b"")
        with_failures = await keys.record_job(1, published=7, rejected=1, failed=2, records=b"")
        retried = await keys.record_job(1, published=9, rejected=1, failed=0, records=b"")
        totals = await keys.totals()
        retry_left = await keys.jobs_to_retry()
    finally:
        await redis.aclose()

    assert (first, duplicate, with_failures, retried) == (True, False, True, True)
    assert totals == RunTotals(published=19, rejected=1, failed=0)
    assert retry_left == set()


async def test_run_lock_keeps_second_producer_out(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    try:
        keys = RunKeys(redis, "lock-test")
        first_taken = await keys.try_lock("first", 10)
        second_taken = await keys.try_lock("second", 10)
        second_refreshed = await keys.refresh_lock("second", 10)
        await keys.release_lock("second")
        first_refreshed = await keys.refresh_lock("first", 10)
        await keys.release_lock("first")
        second_taken_after_release = await keys.try_lock("second", 10)
    finally:
        await redis.aclose()

    assert first_taken
    assert not second_taken
    assert not second_refreshed
    assert first_refreshed
    assert second_taken_after_release


def test_chunks_keep_line_numbers_and_offsets() -> None:
    data = b'{"a":1}\n\n{"b":2}\n  \n{"c":3}\n{"d":4}\n'

    chunks = list(_read_chunks(io.BytesIO(data), 2))

    assert [chunk.line_numbers for chunk in chunks] == [[1, 3], [5, 6]]
    assert [chunk.job_number for chunk in chunks] == [0, 1]
    assert data[chunks[1].offset :].startswith(b'{"c":3}')
    assert chunks[1].lines == [b'{"c":3}\n', b'{"d":4}\n']


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--redis", "--resume"], "--resume cannot be used with --redis"),
        (["--redis", "--idempotency", "random"], "publish its events twice"),
        (["--redis", "--api-key", "sk_x"], "HAKUNA_API_KEY"),
        (["--run-id", "r1"], "need --redis"),
    ],
)
def test_cli_rejects_distributed_conflicts(
    arguments: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _cli.main(["publish", "events.jsonl", *arguments])

    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_rejects_standard_input(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _cli.main(["publish", "-", "--redis"])

    assert "not standard input" in capsys.readouterr().err
