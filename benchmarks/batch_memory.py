"""Measure peak RSS and throughput of publish_many over a stream of generated events.

Usage::

    python benchmarks/batch_memory.py --events 100000 --base-url URL --api-key KEY

Prints one JSON object: events, seconds, events per second, and the peak resident
set size (``VmHWM`` on Linux, else ``ru_maxrss``) after the first checkpoint and at
the end, in MiB. The
events are generated lazily, so the input itself takes no memory; a flat peak RSS
shows that the batch keeps nothing per event.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time

from hakuna_async import HakunaClient
from hakuna_async.testing.sample import generate_events


def peak_rss_mib() -> float:
    """Return this process's peak resident set size in MiB.

    On Linux, ru_maxrss survives fork and exec, so a child of a large parent reports
    the parent's peak. VmHWM in /proc/self/status belongs to this process's own memory
    map, which exec creates anew; ru_maxrss (KiB on Linux) is the fallback elsewhere.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def run(
    events: int, checkpoint: int, base_url: str, api_key: str, concurrency: int
) -> dict[str, float]:
    figures: dict[str, float] = {"events": events}
    failed = 0
    started = time.perf_counter()
    async with HakunaClient(api_key, base_url=base_url, max_retries=5) as client:
        done = 0
        batch = client.events.publish_many(generate_events(events), concurrency=concurrency)
        async for result in batch:
            done += 1
            failed += not result.ok
            if done == checkpoint:
                figures["rss_at_checkpoint_mib"] = peak_rss_mib()
                figures["checkpoint"] = checkpoint
    seconds = time.perf_counter() - started
    figures.update(
        seconds=round(seconds, 2),
        events_per_second=round(events / seconds),
        rss_at_end_mib=peak_rss_mib(),
        failed=failed,
    )
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="events to publish")
    parser.add_argument(
        "--checkpoint", type=int, default=10_000, help="events before the first RSS reading"
    )
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    parser.add_argument("--base-url", required=True, help="a sandbox URL on loopback")
    parser.add_argument("--api-key", required=True, help="the sandbox's API key")
    arguments = parser.parse_args()
    figures = asyncio.run(
        run(
            arguments.events,
            arguments.checkpoint,
            arguments.base_url,
            arguments.api_key,
            arguments.concurrency,
        )
    )
    json.dump(figures, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
