"""Publish a realistic batch of order events to a local Hakuna sandbox.

Run it with ``make demo``. Steps:

1. generate a seeded sample of order events (orders placed, fulfilled, refunded and
   cancelled, for German and Austrian customers) into ``build/demo/``;
2. start ``hakuna-async sandbox`` on a free loopback port;
3. publish the sample with ``hakuna-async publish`` (progress bar and summary);
4. publish a small file in which about 1% of the lines are invalid, to show that
   those lines are reported and the others still go out;
5. read back the plan connections of a few orders through the SDK;
6. stop the sandbox.

The exit status is 0 when every valid event was published and every invalid line was
rejected locally.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from hakuna_async import HakunaClient
from hakuna_async.testing.sample import write_sample

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "build" / "demo"
API_KEY = "sk_sandbox_demo"
SAMPLE_SIZE = 5000
CONCURRENCY = 32
COMMAND = [sys.executable, "-m", "hakuna_async"]


def main() -> int:
    events_path, mixed_path = write_sample(OUTPUT, count=SAMPLE_SIZE)
    print(
        f"Sample written: {_count_lines(events_path):,} events in {_relative(events_path)}, "
        f"{_count_lines(mixed_path):,} lines in {_relative(mixed_path)}"
    )

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    sandbox = subprocess.Popen(
        [*COMMAND, "sandbox", "--port", str(port), "--api-key", API_KEY],
        stdout=subprocess.DEVNULL,
    )
    try:
        _wait_until_listening(port, sandbox)
        print(f"Sandbox listening at {url}\n")
        return _run_steps(url, events_path, mixed_path)
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)
        print("\nSandbox stopped.")


def _run_steps(url: str, events_path: Path, mixed_path: Path) -> int:
    connection = ["--base-url", url, "--api-key", API_KEY, "--concurrency", str(CONCURRENCY)]

    print(f"== Publishing {_relative(events_path)}")
    results = OUTPUT / "results.jsonl"
    published = subprocess.run(
        [*COMMAND, "publish", str(events_path), "--results", str(results), *connection]
    )
    print(f"(one result per line in {_relative(results)})\n")

    print(f"== Publishing {_relative(mixed_path)}, which has deliberately invalid lines")
    mixed_results = OUTPUT / "results-with-errors.jsonl"
    subprocess.run(
        [*COMMAND, "publish", str(mixed_path), "--results", str(mixed_results), *connection]
    )
    failed_remotely = _count_failed_remotely(mixed_results)
    print()

    print("== Plan connections, read back through the SDK")
    asyncio.run(_show_plan_connections(url, _protected_order_ids(events_path, limit=4)))

    if published.returncode != 0:
        print("\nSome valid events were not published; see the summary above.")
        return 1
    if failed_remotely:
        print(f"\n{failed_remotely} lines of the mixed file failed remotely; expected none.")
        return 1
    return 0


async def _show_plan_connections(url: str, order_ids: list[str]) -> None:
    async with HakunaClient(API_KEY, base_url=url) as client:
        for order_id in order_ids:
            result = await client.orders.plan_connections(order_id)
            print(f"order {result.order_id}")
            for connection in result.plan_connections:
                plan = connection.plan_line_item_id or "(no protection)"
                print(f"  product line {connection.product_line_item_id:<28} -> plan line {plan}")


def _protected_order_ids(events_path: Path, *, limit: int) -> list[str]:
    # Hakuna's published example first, then other orders that carry protection.
    order_ids: list[str] = []
    with events_path.open("rb") as events:
        for line in events:
            event = json.loads(line)
            if event["type"] != "order_placed":
                continue
            items = event["payload"]["line_items"]
            if any("custom_properties" in item for item in items):
                order_ids.append(event["payload"]["order_id"])
            if len(order_ids) == limit:
                break
    return order_ids


def _count_failed_remotely(results: Path) -> int:
    failed = 0
    with results.open("rb") as lines:
        for line in lines:
            error = json.loads(line).get("error")
            if error is not None and error["type"] != "RequestValidationError":
                failed += 1
    return failed


def _count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for _ in handle)


def _relative(path: Path) -> str:
    return os.path.relpath(path, ROOT)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_until_listening(
    port: int, process: subprocess.Popen[bytes], timeout: float = 15.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(
                f"The sandbox exited with status {process.returncode} before listening."
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"The sandbox did not listen on port {port} within {timeout:g} s.")


if __name__ == "__main__":
    raise SystemExit(main())
