"""Measure distributed publishing with 1 and 2 arq workers against a local sandbox.

Run it from the repository with ``redis-server`` installed::

    .venv/bin/python examples/distributed_throughput.py --events 20000 --workers 1 2

Everything runs on this machine, on loopback: a private ``redis-server``, the sandbox
in a process of its own, the workers and the producer. Each measurement gets a fresh
sandbox, so no event is an idempotent replay. The baseline is ``publish_jsonl`` in one
process with as many requests in flight as one worker (4 jobs of 16). Each setup runs
twice: with the sandbox responding at once, where the cores of this machine are the
limit, and with ``--latency`` added to every request, as a remote API adds it, where
the requests in flight are the limit and more workers help.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import shutil
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path

import msgspec

from hakuna_async import HakunaClient
from hakuna_async.batch import publish_jsonl
from hakuna_async.distributed import publish_distributed
from hakuna_async.testing import Delay, SandboxServer
from hakuna_async.testing.sample import generate_events

PYTHON = sys.executable
START_TIMEOUT = 30
RUN_TIMEOUT = 600
# Requests in flight in one worker: HAKUNA_WORKER_JOBS (4) jobs at a concurrency of 16.
WORKER_CONCURRENCY = 4 * 16


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Processes:
    """Subprocesses of one measurement; ``stop_all`` ends those still running."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.running: list[tuple[str, asyncio.subprocess.Process]] = []

    async def start(self, name: str, *command: str, env: dict[str, str] | None = None) -> Path:
        log = self.directory / f"{name}.log"
        with log.open("wb") as output:
            process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=output,
                stderr=asyncio.subprocess.STDOUT,
                env={**os.environ, **(env or {})},
            )
        self.running.append((name, process))
        return log

    async def stop_all(self) -> None:
        for _, process in reversed(self.running):
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for name, process in reversed(self.running):
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                print(f"{name} did not stop within 15 s; killed it", file=sys.stderr)
                process.kill()
                await process.wait()
        self.running.clear()


def read_log(log: Path) -> str:
    return log.read_text(errors="replace")


async def wait_for_text(log: Path, pattern: str) -> re.Match[str]:
    """Wait up to START_TIMEOUT seconds for ``pattern`` to appear in ``log``."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        found = re.search(pattern, read_log(log))
        if found:
            return found
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{log.name} did not print {pattern!r} within {START_TIMEOUT} s")


async def start_sandbox(processes: Processes, name: str, latency: float) -> tuple[str, str]:
    log = await processes.start(
        name,
        *(PYTHON, __file__, "--serve-sandbox", "--port", str(free_port())),
        *("--latency", str(latency)),
    )
    url = (await wait_for_text(log, r"serving at (\S+)")).group(1)
    key = (await wait_for_text(log, r"API key: (\S+)")).group(1)
    return url, key


async def serve_sandbox(port: int, latency: float) -> None:
    """Serve a sandbox that waits ``latency`` seconds before each event, until SIGTERM."""
    async with SandboxServer(port=port, max_recorded_requests=0) as sandbox:
        if latency > 0:
            sandbox.faults.add(Delay(latency), path="/events", times=None)
        print(f"Sandbox serving at {sandbox.url}", flush=True)
        print(f"API key: {sandbox.api_key}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signal_number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signal_number, stop.set)
        await stop.wait()


async def measure_single_process(directory: Path, source: Path, latency: float) -> float:
    processes = Processes(directory)
    try:
        url, key = await start_sandbox(processes, f"sandbox-single-{latency}", latency)
        async with HakunaClient(key, base_url=url) as client:
            summary = await asyncio.wait_for(
                publish_jsonl(client, source, concurrency=WORKER_CONCURRENCY), RUN_TIMEOUT
            )
        return summary.events_per_second
    finally:
        await processes.stop_all()


async def measure_workers(
    directory: Path, source: Path, redis_url: str, workers: int, latency: float
) -> float:
    processes = Processes(directory)
    try:
        url, key = await start_sandbox(processes, f"sandbox-{workers}-{latency}", latency)
        env = {"HAKUNA_API_KEY": key, "HAKUNA_BASE_URL": url, "HAKUNA_REDIS_URL": redis_url}
        env["HAKUNA_LOG"] = "info"  # prints "Publishing worker started" once the client is up
        for number in range(workers):
            log = await processes.start(
                f"worker-{workers}-{latency}-{number}",
                *(PYTHON, "-m", "arq", "hakuna_async.distributed.WorkerSettings"),
                env=env,
            )
            await wait_for_text(log, "Publishing worker started")
        summary = await asyncio.wait_for(
            publish_distributed(
                source, redis_url=redis_url, run_id=f"throughput-{workers}-{latency}"
            ),
            RUN_TIMEOUT,
        )
        if not summary.ok:
            raise RuntimeError(f"the run with {workers} workers did not publish everything")
        return summary.events_per_second
    finally:
        await processes.stop_all()


async def main(arguments: argparse.Namespace) -> None:
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        raise SystemExit("Needs redis-server: apt-get install redis-server")
    with tempfile.TemporaryDirectory(prefix="hakuna-throughput-") as temporary:
        directory = Path(temporary)
        source = directory / "events.jsonl"
        with source.open("wb") as output:
            for event in generate_events(arguments.events, seed=arguments.seed):
                output.write(msgspec.json.encode(event) + b"\n")

        processes = Processes(directory)
        port = free_port()
        await processes.start(
            "redis",
            *(redis_server, "--bind", "127.0.0.1", "--port", str(port), "--save", ""),
            *("--appendonly", "no", "--dir", str(directory)),
        )
        await asyncio.sleep(0.5)
        redis_url = f"redis://127.0.0.1:{port}/0"
        rows: list[tuple[str, list[float]]] = [("1 process, publish_jsonl", [])]
        rows += [
            (f"{count} arq worker{'s' if count > 1 else ''}", []) for count in arguments.workers
        ]
        try:
            for latency in (0.0, arguments.latency):
                rows[0][1].append(await measure_single_process(directory, source, latency))
                for row, count in zip(rows[1:], arguments.workers, strict=True):
                    row[1].append(
                        await measure_workers(directory, source, redis_url, count, latency)
                    )
        finally:
            await processes.stop_all()

    print(f"{arguments.events:,} events; {platform.machine()}, {os.cpu_count()} CPUs, ", end="")
    print(f"Python {platform.python_version()}; events per second")
    latency_ms = f"{arguments.latency * 1000:g} ms"
    print(f"| publisher | sandbox responds at once | sandbox waits {latency_ms} per event |")
    print("|---|---:|---:|")
    for label, (immediate, delayed) in rows:
        print(f"| {label} | {immediate:,.0f} | {delayed:,.0f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="events to publish")
    parser.add_argument("--seed", type=int, default=7, help="seed of the sample events")
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1, 2], help="worker counts to measure"
    )
    parser.add_argument(
        "--latency",
        type=float,
        default=0.05,
        help="seconds the sandbox waits before each event in the second setup (default: 0.05)",
    )
    parser.add_argument("--serve-sandbox", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parsed = parser.parse_args()
    if parsed.serve_sandbox:
        asyncio.run(serve_sandbox(parsed.port, parsed.latency))
    else:
        asyncio.run(main(parsed))
