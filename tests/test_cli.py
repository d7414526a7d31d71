"""The hakuna-async command line, run as a subprocess against the sandbox on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from hakuna_async.testing import SandboxServer
from hakuna_async.testing.sample import generate_events, invalid_lines

COMMAND = [sys.executable, "-m", "hakuna_async"]


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    async with SandboxServer() as server:
        yield server


async def run(
    *arguments: str, stdin: bytes | None = None, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *COMMAND,
        *arguments,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(stdin), timeout=120)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


def write_events(path: Path, events: list[Any]) -> None:
    path.write_bytes(b"".join(msgspec.json.encode(event) + b"\n" for event in events))


def connection(sandbox: SandboxServer) -> list[str]:
    return ["--base-url", sandbox.url, "--api-key", sandbox.api_key, "--no-progress"]


async def test_publish_file_stores_every_event(sandbox: SandboxServer, tmp_path: Path) -> None:
    events_file, results_file = tmp_path / "events.jsonl", tmp_path / "results.jsonl"
    write_events(events_file, list(generate_events(400, seed=11)))

    status, stdout, stderr = await run(
        "publish", str(events_file), "--results", str(results_file), *connection(sandbox)
    )

    results = [json.loads(line) for line in results_file.read_text().splitlines()]
    assert status == 0, stderr
    assert len(sandbox.events) == 400
    assert sorted(r["line"] for r in results) == list(range(1, 401))
    assert {r["event_id"] for r in results} == {e.event_id for e in sandbox.events}
    assert "published                 400" in stdout
    assert "events per second" in stdout


async def test_publish_reports_bad_lines_and_goes_on(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    valid = [msgspec.json.encode(e) for e in generate_events(60, seed=12)]
    bad = invalid_lines()
    lines = valid[:30] + [entry.line for entry in bad] + valid[30:]
    events_file, results_file = tmp_path / "mixed.jsonl", tmp_path / "results.jsonl"
    events_file.write_bytes(b"\n".join(lines) + b"\n")

    status, stdout, stderr = await run(
        "publish", str(events_file), "--results", str(results_file), *connection(sandbox)
    )

    results = {r["line"]: r for r in map(json.loads, results_file.read_text().splitlines())}
    assert status == 1
    assert len(sandbox.events) == 60
    assert len(results) == 60 + len(bad)
    for offset, entry in enumerate(bad):
        line_number = 31 + offset
        assert results[line_number]["error"]["field"] == entry.field, entry.kind
        assert f"line {line_number}: rejected" in stderr
    assert f"rejected locally   {len(bad):>10}" in stdout


async def test_publish_keeps_line_numbers_past_blank_lines(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    events = [msgspec.json.encode(e) for e in generate_events(3, seed=13)]
    events_file, results_file = tmp_path / "gaps.jsonl", tmp_path / "results.jsonl"
    events_file.write_bytes(events[0] + b"\n\n  \n" + events[1] + b"\n\n" + events[2] + b"\n")

    status, _, stderr = await run(
        "publish", str(events_file), "--results", str(results_file), *connection(sandbox)
    )

    lines = sorted(json.loads(line)["line"] for line in results_file.read_text().splitlines())
    assert status == 0, stderr
    assert lines == [1, 4, 6]


async def test_publish_reads_stdin(sandbox: SandboxServer) -> None:
    data = b"".join(msgspec.json.encode(e) + b"\n" for e in generate_events(25, seed=14))

    status, _, stderr = await run("publish", "-", *connection(sandbox), stdin=data)

    assert status == 0, stderr
    assert len(sandbox.events) == 25


async def test_publish_failed_remotely_exits_non_zero(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    events_file, results_file = tmp_path / "events.jsonl", tmp_path / "results.jsonl"
    write_events(events_file, list(generate_events(5, seed=15)))

    status, stdout, _ = await run(
        "publish",
        str(events_file),
        "--results",
        str(results_file),
        *connection(sandbox),
        "--api-key",
        "sk_wrong_key",
    )

    errors = [json.loads(line)["error"] for line in results_file.read_text().splitlines()]
    assert status == 1
    assert len(errors) == 5
    assert {error["status"] for error in errors} == {401}
    assert "sk_wrong_key" not in stdout
    assert "failed remotely             5" in stdout


async def test_publish_without_key_explains(tmp_path: Path) -> None:
    events_file = tmp_path / "events.jsonl"
    write_events(events_file, list(generate_events(1, seed=16)))
    env = {"HAKUNA_API_KEY": ""}

    status, _, stderr = await run(
        "publish", str(events_file), "--base-url", "http://127.0.0.1:9", env=env
    )

    assert status == 2
    assert "HAKUNA_API_KEY" in stderr


async def test_publish_missing_file_explains(tmp_path: Path) -> None:
    status, _, stderr = await run(
        "publish",
        str(tmp_path / "nope.jsonl"),
        "--api-key",
        "k",
        "--base-url",
        "http://127.0.0.1:9",
    )

    assert status == 2
    assert "nope.jsonl" in stderr


async def test_publish_help_names_units() -> None:
    status, stdout, _ = await run("publish", "--help")
    text = " ".join(stdout.split())

    assert status == 0
    assert "in seconds" in text
    assert "requests in flight" in text
    assert "HAKUNA_API_KEY" in text


async def test_sandbox_command_serves(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = await asyncio.create_subprocess_exec(
        *COMMAND,
        "sandbox",
        "--port",
        str(port),
        "--api-key",
        "sk_cli_test",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        first_line = await asyncio.wait_for(process.stdout.readline(), timeout=20)
        events_file = tmp_path / "events.jsonl"
        write_events(events_file, list(generate_events(3, seed=17)))

        status, _, stderr = await run(
            "publish",
            str(events_file),
            "--base-url",
            f"http://127.0.0.1:{port}",
            "--api-key",
            "sk_cli_test",
            "--no-progress",
        )
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), timeout=20)

    assert f"http://127.0.0.1:{port}" in first_line.decode()
    assert status == 0, stderr
    assert process.returncode == 0
