"""Run one client variant against the benchmark server and print its figures as JSON.

Each run is a fresh process, so that its peak RSS and CPU time belong to one variant::

    python -m benchmarks.clients --variant sdk-publish --loop asyncio --concurrency 64 \\
        --url http://127.0.0.1:PORT --events build/bench/events.jsonl \\
        --warmup 0.3 --duration 1.0 [--server-pid PID] [--cpu 0]

The variant sends ``order_placed`` events from the events file, cycling through them,
from ``--concurrency`` tasks (or with ``publish_many(concurrency=...)``). After
``--warmup`` seconds it measures a window of ``--duration`` seconds. In the window it
counts the requests completed and their latencies, and reads the process's own CPU
time (``getrusage(RUSAGE_SELF)``, user plus system) at both edges. With
``--server-pid`` it reads the server's CPU time from ``/proc`` too. Then it stops
sending, waits for the requests in flight and prints one JSON object, with the peak
RSS (``VmHWM``).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import resource
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec

from benchmarks.server import new_event_loop, pin_to_cpu

API_KEY = "sk_bench_local"
HAKUNA_VERSION = "v2.0"
# Headers that every variant sends, so that the bytes on the wire are alike.
STATIC_HEADERS = {
    "Authorization": f"Bearer {API_KEY}",
    "Hakuna-Version": HAKUNA_VERSION,
    "Accept": "application/json",
    "Content-Type": "application/json",
    "User-Agent": "hakuna-bench/1",
}
IDEMPOTENCY_HEADER = "Hakuna-Idempotency-Key"
# Folder that benchmarks.peer_client generates the openapi-python-client package into.
PEER_CLIENT_DIR = Path("build/bench/peer_client")
# Bound on the wait for the requests in flight after the window, in seconds.
DRAIN_TIMEOUT = 30.0

Send = Callable[[int], Awaitable[None]]


class Window:
    """The measured window: flags that the workers read, and what they record in it."""

    def __init__(self) -> None:
        self.measuring = False
        self.stopped = False
        self.latencies: list[float] = []


class Snapshot(msgspec.Struct):
    """Clocks read at one edge of the window, in seconds.

    ``core_busy`` and ``core_steal`` are the busy and stolen time of this process's
    CPU, spent by any process, when the process is pinned to one CPU.
    """

    wall: float
    cpu: float
    server_cpu: float | None
    core_busy: float | None = None
    core_steal: float | None = None


def take_snapshot(server_pid: int | None, core: int | None = None) -> Snapshot:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    core_busy, core_steal = core_cpu_seconds(core)
    return Snapshot(
        wall=time.perf_counter(),
        cpu=usage.ru_utime + usage.ru_stime,
        server_cpu=process_cpu_seconds(server_pid),
        core_busy=core_busy,
        core_steal=core_steal,
    )


def core_cpu_seconds(core: int | None) -> tuple[float | None, float | None]:
    """Return the busy and the stolen seconds of one CPU from /proc/stat, or Nones."""
    if core is None:
        return None, None
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None, None
    for line in lines:
        name, *values = line.split()
        if name == f"cpu{core}":
            # user nice system idle iowait irq softirq steal ...
            user, nice, system, _, _, irq, softirq, steal = (int(value) for value in values[:8])
            ticks_per_second = os.sysconf("SC_CLK_TCK")
            busy = user + nice + system + irq + softirq + steal
            return busy / ticks_per_second, steal / ticks_per_second
    return None, None


def peak_rss_mib() -> float:
    """Return this process's peak resident set size in MiB.

    On Linux, ru_maxrss survives fork and exec, so a child of a large parent reports
    the parent's peak. VmHWM in /proc/self/status belongs to this process's own memory
    map, which exec creates anew; ru_maxrss (KiB on Linux) is the fallback elsewhere.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def process_cpu_seconds(pid: int | None) -> float | None:
    """Return the user plus system CPU seconds of ``pid`` from /proc, None where unknown."""
    if pid is None:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the command name, which is in parentheses and may contain spaces.
    fields = stat.rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


async def run_window(
    window: Window, warmup: float, duration: float, server_pid: int | None, core: int | None
) -> tuple[Snapshot, Snapshot]:
    await asyncio.sleep(warmup)
    start = take_snapshot(server_pid, core)
    window.measuring = True
    await asyncio.sleep(duration)
    window.measuring = False
    end = take_snapshot(server_pid, core)
    window.stopped = True
    return start, end


async def drive_tasks(send: Send, concurrency: int, window: Window) -> None:
    """Run ``concurrency`` tasks that each call ``send`` until the window is over."""

    async def worker(first: int) -> None:
        index = first
        latencies = window.latencies
        while not window.stopped:
            started = time.perf_counter()
            await send(index)
            if window.measuring:
                latencies.append(time.perf_counter() - started)
            index += concurrency

    await asyncio.gather(*(worker(first) for first in range(concurrency)))


def read_event_lines(path: Path) -> list[bytes]:
    lines = [line for line in path.read_bytes().splitlines() if line]
    if not lines:
        raise SystemExit(f"{path} has no events; run python -m benchmarks.run to write it")
    return lines


# Variants --------------------------------------------------------------------------


async def run_raw_aiohttp(
    url: str, concurrency: int, lines: list[bytes], window: Window, measure: Awaitable[Any]
) -> Any:
    """Post pre-encoded bodies through one shared ClientSession and only read the responses."""
    import aiohttp

    endpoint = url + "/events"
    # A constant key: the same headers as the SDK sends, without generating one.
    headers = {**STATIC_HEADERS, IDEMPOTENCY_HEADER: "00000000-0000-4000-8000-000000000000"}
    count = len(lines)

    async with aiohttp.ClientSession(skip_auto_headers=("User-Agent",)) as session:

        async def send(index: int) -> None:
            async with session.post(endpoint, data=lines[index % count], headers=headers) as reply:
                await reply.read()
                if reply.status != 202:
                    raise RuntimeError(f"expected HTTP 202, got {reply.status}")

        measured = asyncio.ensure_future(measure)
        await drive_tasks(send, concurrency, window)
        return await measured


def _sdk_client(url: str) -> Any:
    from hakuna_async import HakunaClient

    return HakunaClient(API_KEY, base_url=url)


def _sdk_events(lines: list[bytes]) -> list[Any]:
    from hakuna_async.models import Event

    decoder = msgspec.json.Decoder(Event)
    return [decoder.decode(line) for line in lines]


async def run_sdk_publish(
    url: str, concurrency: int, lines: list[bytes], window: Window, measure: Awaitable[Any]
) -> Any:
    """Call ``client.events.publish(event)`` from ``concurrency`` tasks with OrderPlaced Structs."""
    events = _sdk_events(lines)
    count = len(events)

    async with _sdk_client(url) as client:
        publish = client.events.publish

        async def send(index: int) -> None:
            await publish(events[index % count])

        measured = asyncio.ensure_future(measure)
        await drive_tasks(send, concurrency, window)
        return await measured


async def run_sdk_publish_many(
    url: str, concurrency: int, lines: list[bytes], window: Window, measure: Awaitable[Any]
) -> Any:
    """Call ``client.events.publish_many(events, concurrency=N)`` on an endless event source.

    A request's latency runs from the moment the batch takes its event from the
    source to the moment the batch yields its result.
    """
    events = _sdk_events(lines)
    count = len(events)
    taken_at: list[float] = []

    def source() -> Iterator[Any]:
        index = 0
        while not window.stopped:
            taken_at.append(time.perf_counter())
            yield events[index % count]
            index += 1

    async with _sdk_client(url) as client:
        measured = asyncio.ensure_future(measure)
        latencies = window.latencies
        async for result in client.events.publish_many(source(), concurrency=concurrency):
            if not result.ok:
                raise RuntimeError(f"event {result.index} failed: {result.error}")
            if window.measuring:
                latencies.append(time.perf_counter() - taken_at[result.index])
        return await measured


async def run_httpx_pydantic(
    url: str, concurrency: int, lines: list[bytes], window: Window, measure: Awaitable[Any]
) -> Any:
    """Publish with a hand-written httpx + pydantic v2 client that does the SDK's work.

    Each request validates the event, a dict of Python values as application code has
    it, with the pydantic models and the protection rules, and encodes it. It sends
    the body with a new idempotency key and retries 408, 429 and 5xx twice with
    backoff. The response is decoded into a pydantic model.
    """
    import httpx

    from benchmarks.pydantic_models import EVENT_ADAPTER, AcceptedEvent, rule_errors

    records = [msgspec.json.decode(line) for line in lines]
    # Timestamps become datetimes once, so that validation starts from Python values.
    for record in records:
        payload = record["payload"]
        payload["placed_at"] = datetime.datetime.fromisoformat(payload["placed_at"])
    count = len(records)
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)

    async with httpx.AsyncClient(base_url=url, headers=STATIC_HEADERS, limits=limits) as client:

        async def send(index: int) -> None:
            event = EVENT_ADAPTER.validate_python(records[index % count])
            errors = rule_errors(event)
            if errors:
                raise ValueError(f"invalid event: {errors}")
            body = EVENT_ADAPTER.dump_json(event, exclude_none=True)
            headers = {IDEMPOTENCY_HEADER: str(uuid.uuid4())}
            for attempt in range(3):
                reply = await client.post("/events", content=body, headers=headers)
                if reply.status_code < 300:
                    AcceptedEvent.model_validate_json(reply.content)
                    return
                retryable = reply.status_code in (408, 429) or reply.status_code >= 500
                if not retryable or attempt == 2:
                    reply.raise_for_status()
                await asyncio.sleep(0.5 * 2**attempt)

        measured = asyncio.ensure_future(measure)
        await drive_tasks(send, concurrency, window)
        return await measured


def _import_peer_client() -> tuple[Any, Any, Any]:
    """Import the generated client's Client, publish_event module and OrderPlaced model."""
    sys.path.insert(0, str(PEER_CLIENT_DIR.resolve()))
    from hakuna_api_client import Client  # type: ignore[import-not-found]
    from hakuna_api_client.api.events import publish_event  # type: ignore[import-not-found]
    from hakuna_api_client.models import OrderPlaced  # type: ignore[import-not-found]

    return Client, publish_event, OrderPlaced


async def run_openapi_python_client(
    url: str, concurrency: int, lines: list[bytes], window: Window, measure: Awaitable[Any]
) -> Any:
    """Publish with the client that openapi-python-client generates (attrs models, httpx).

    ``benchmarks.peer_client`` generates it into ``build/bench/peer_client`` first.
    """
    import httpx

    Client, publish_event, OrderPlaced = _import_peer_client()
    records = [json.loads(line) for line in lines]
    count = len(records)
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    headers = {"Authorization": STATIC_HEADERS["Authorization"]}
    client = Client(base_url=url, headers=headers, httpx_args={"limits": limits})

    async with client:

        async def send(index: int) -> None:
            body = OrderPlaced.from_dict(records[index % count])
            reply = await publish_event.asyncio_detailed(
                client=client,
                body=body,
                hakuna_version=HAKUNA_VERSION,
                hakuna_idempotency_key=str(uuid.uuid4()),
            )
            if reply.status_code >= 300 or reply.parsed is None:
                raise RuntimeError(f"expected HTTP 202, got {reply.status_code}")

        measured = asyncio.ensure_future(measure)
        await drive_tasks(send, concurrency, window)
        return await measured


VARIANTS = {
    "aiohttp": run_raw_aiohttp,
    "sdk-publish": run_sdk_publish,
    "sdk-publish-many": run_sdk_publish_many,
    "httpx-pydantic": run_httpx_pydantic,
    "openapi-python-client": run_openapi_python_client,
}


# Figures ---------------------------------------------------------------------------


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Return the nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    rank = max(0, min(len(sorted_values) - 1, round(fraction * len(sorted_values)) - 1))
    return sorted_values[rank]


def figures(window: Window, start: Snapshot, end: Snapshot) -> dict[str, Any]:
    requests = len(window.latencies)
    seconds = end.wall - start.wall
    cpu = end.cpu - start.cpu
    latencies = sorted(window.latencies)
    result: dict[str, Any] = {
        "requests": requests,
        "seconds": seconds,
        "events_per_second": requests / seconds,
        "cpu_us_per_request": cpu * 1e6 / requests if requests else None,
        "cpu_busy": cpu / seconds,
        "p50_ms": percentile(latencies, 0.50) * 1e3,
        "p99_ms": percentile(latencies, 0.99) * 1e3,
        "peak_rss_mib": peak_rss_mib(),
    }
    if start.server_cpu is not None and end.server_cpu is not None:
        server_cpu = end.server_cpu - start.server_cpu
        result["server_busy"] = server_cpu / seconds
        result["server_cpu_us_per_request"] = server_cpu * 1e6 / requests if requests else None
    if start.core_busy is not None and end.core_busy is not None:
        # What other processes (and the hypervisor) took of this process's CPU.
        result["others_busy"] = (end.core_busy - start.core_busy) / seconds - cpu / seconds
        result["steal"] = ((end.core_steal or 0.0) - (start.core_steal or 0.0)) / seconds
    return result


async def run(arguments: argparse.Namespace) -> dict[str, Any]:
    lines = read_event_lines(arguments.events)
    window = Window()
    measure = run_window(
        window, arguments.warmup, arguments.duration, arguments.server_pid, arguments.cpu
    )
    variant = VARIANTS[arguments.variant]
    timeout = arguments.warmup + arguments.duration + DRAIN_TIMEOUT
    start, end = await asyncio.wait_for(
        variant(arguments.url, arguments.concurrency, lines, window, measure), timeout
    )
    return figures(window, start, end)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=sorted(VARIANTS), required=True)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument("--concurrency", type=int, required=True, help="requests in flight")
    parser.add_argument("--url", required=True, help="benchmark server URL on 127.0.0.1")
    parser.add_argument("--events", type=Path, required=True, help="JSON Lines file of events")
    parser.add_argument("--warmup", type=float, default=0.3, help="seconds before the window")
    parser.add_argument("--duration", type=float, default=1.0, help="window length in seconds")
    parser.add_argument("--server-pid", type=int, default=None, help="server process id")
    parser.add_argument("--cpu", type=int, default=None, help="CPU number to pin this process to")
    arguments = parser.parse_args()
    if arguments.concurrency < 1:
        parser.error(f"--concurrency must be 1 or more, got {arguments.concurrency}")

    pin_to_cpu(arguments.cpu)
    loop = new_event_loop(arguments.loop)
    try:
        result = loop.run_until_complete(run(arguments))
    finally:
        loop.close()
    json.dump(result, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
