"""Fixtures shared by the test modules."""

from __future__ import annotations

import asyncio
import copy
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

ROOT = Path(__file__).resolve().parent.parent
SPEC_PATH = ROOT / "openapi" / "hakuna-v2.0.yaml"


@pytest.fixture(scope="session")
def spec() -> dict[str, Any]:
    """The OpenAPI document as plain data."""
    return yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))


@pytest.fixture
def redoc_order(spec: dict[str, Any]) -> dict[str, Any]:
    """Hakuna's published order_placed example, as a fresh dict per test."""
    return copy.deepcopy(spec["components"]["examples"]["OrderPlacedEvent"]["value"])


def _teach_aioresponses_stream_writer() -> None:
    """Let aioresponses build responses on aiohttp 3.14 and newer.

    NOTE: aiohttp 3.14 added a required ``stream_writer`` argument to
    ``ClientResponse``, and aioresponses 0.7.9 (the latest release) does not pass it.
    Its mocked responses stand for requests that were already sent, so a writer with
    nothing left to upload is all they need. Drop this once aioresponses passes it.
    """
    import inspect

    import aioresponses.core
    from aiohttp import ClientResponse

    if "stream_writer" not in inspect.signature(ClientResponse.__init__).parameters:
        return

    class SentRequestWriter:
        output_size = 0

    class MockedResponse(ClientResponse):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("stream_writer", SentRequestWriter())
            super().__init__(*args, **kwargs)

    aioresponses.core.ClientResponse = MockedResponse  # type: ignore[misc]


_teach_aioresponses_stream_writer()


# Redis, for the recipes and the distributed mode.

REDIS_URL_VARIABLE = "HAKUNA_TEST_REDIS_URL"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a Redis that the tests may flush.

    ``HAKUNA_TEST_REDIS_URL`` when set (``.ci/run`` sets it), else a private
    ``redis-server`` on a free loopback port for this session. Without either, the
    tests that need Redis fail in CI and are skipped elsewhere.
    """
    url = os.environ.get(REDIS_URL_VARIABLE)
    if url:
        _wait_for_redis(url)
        yield url
        return

    binary = shutil.which("redis-server")
    if binary is None:
        message = (
            f"needs Redis: set {REDIS_URL_VARIABLE} to a Redis the tests may flush, or "
            "install redis-server (apt-get install redis-server)"
        )
        if os.environ.get("CI", "").lower() in ("1", "true"):
            pytest.fail(message)
        pytest.skip(message)

    port = free_port()
    directory = tmp_path_factory.mktemp("redis")
    command = [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", ""]
    command += ["--appendonly", "no", "--dir", str(directory)]
    with (directory / "redis.log").open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"redis://127.0.0.1:{port}/0"
        _wait_for_redis(url)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture
def redis_url(redis_server: str) -> Iterator[str]:
    """The test Redis, emptied before and after the test."""
    with redis.Redis.from_url(redis_server) as connection:
        connection.flushdb()
    yield redis_server
    with redis.Redis.from_url(redis_server) as connection:
        connection.flushdb()


def _wait_for_redis(url: str) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            with redis.Redis.from_url(url, socket_connect_timeout=1) as connection:
                connection.ping()
            return
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# Subprocesses, stopped at the end of each test whatever its outcome.


@dataclass
class Started:
    """A started subprocess; its stdout and stderr go to files."""

    name: str
    process: asyncio.subprocess.Process
    stdout: Path
    stderr: Path

    def output(self) -> str:
        """Return stdout and stderr so far."""
        return self.stdout.read_text(errors="replace") + self.stderr.read_text(errors="replace")


class ProcessGroup:
    """Start subprocesses for one test; ``close()`` kills those still running.

    Each subprocess leads a process group of its own, so that ``close()`` also kills
    the children it forked, such as Celery's pool processes.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.started: list[Started] = []

    async def start(
        self, name: str, *command: str, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> Started:
        stdout, stderr = self.directory / f"{name}.out", self.directory / f"{name}.err"
        with stdout.open("wb") as out, stderr.open("wb") as err:
            process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env={**os.environ, **(env or {})},
                cwd=cwd,
                start_new_session=True,
            )
        started = Started(name, process, stdout, stderr)
        self.started.append(started)
        return started

    async def stop(self, started: Started, signal_number: int, timeout: float = 30) -> int:
        """Send ``signal_number`` and return the exit code; fail after ``timeout`` seconds."""
        if started.process.returncode is None:
            started.process.send_signal(signal_number)
        try:
            return await asyncio.wait_for(started.process.wait(), timeout)
        except TimeoutError:
            started.process.kill()
            await started.process.wait()
            raise AssertionError(
                f"{started.name} did not stop within {timeout} s of signal {signal_number}:\n"
                + started.output()[-4000:]
            ) from None

    async def close(self) -> None:
        for started in self.started:
            if started.process.returncode is None:
                # The group's id is the pid of its leader, which is not reaped yet.
                os.killpg(started.process.pid, signal.SIGKILL)
                await started.process.wait()


@pytest.fixture
async def processes(tmp_path: Path) -> AsyncIterator[ProcessGroup]:
    """Subprocesses for this test; any still running at its end are killed."""
    directory = tmp_path / "processes"
    directory.mkdir()
    group = ProcessGroup(directory)
    try:
        yield group
    finally:
        await group.close()
