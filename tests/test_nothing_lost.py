"""Nothing lost, nothing doubled: a batch of 2,000 events through a faulty sandbox.

About one request in ten meets a fault drawn from a seeded mix. The mix has a reset
before the request is read, a reset or a dropped connection after the event was
stored, a 503 with ``Retry-After``, a 429, and a response body that stalls past the
read timeout.
Every event must end up stored exactly once and reported exactly once as published.
The figures are printed (``pytest -s`` shows them) and kept as test properties
(``--junitxml`` writes them).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import msgspec

from hakuna_async import HakunaClient, PublishResult, RetryPolicy, Timeout
from hakuna_async._validation import prepare_event
from hakuna_async.testing import Drop, Fault, Reset, Respond, SandboxServer, StallBody
from hakuna_async.testing.sample import generate_events

EVENT_COUNT = 2000
EVENT_SEED = 20240611
FAULT_SEED = 7
FAULT_PROBABILITY = 0.1
CONCURRENCY = 32

# Equally likely once a request is picked for a fault.
FAULT_MIX = (
    Reset(),
    Reset(after_handling=True),
    Drop(after_handling=True),
    # A decimal Retry-After keeps the run short, because the whole batch pauses for it.
    Respond(503, headers={"Retry-After": "0.2"}),
    Respond(429),
    # The event is stored, then the body stalls past the client's read timeout.
    StallBody(5),
)

# Nine attempts per event: with faults on 10% of requests, a call fails only after
# nine faults in a row (probability 1e-9 per event).
POLICY = RetryPolicy(max_retries=8, initial_wait=0.02, max_wait=0.2)
TIMEOUTS = Timeout(connect=1, read=0.5, total=30)


def fault_name(fault: Fault) -> str:
    if isinstance(fault, Respond):
        return f"Respond({fault.status})"
    if isinstance(fault, Reset | Drop):
        return f"{type(fault).__name__}({'after' if fault.after_handling else 'before'} handling)"
    return type(fault).__name__


async def test_faulty_batch_stores_each_event_once(
    record_property: Callable[[str, Any], None],
) -> None:
    events = list(generate_events(EVENT_COUNT, seed=EVENT_SEED))
    sent_bodies = Counter(prepare_event(event)[1] for event in events)
    assert len(sent_bodies) == EVENT_COUNT  # no two events share a body, so none share a key

    async with SandboxServer() as sandbox:
        sandbox.faults.add_random(FAULT_MIX, probability=FAULT_PROBABILITY, seed=FAULT_SEED)
        async with HakunaClient(
            sandbox.api_key, base_url=sandbox.url, retry_policy=POLICY, timeout=TIMEOUTS
        ) as client:
            started = time.monotonic()
            batch = client.events.publish_many(events, concurrency=CONCURRENCY)
            results: list[PublishResult] = [result async for result in batch]
            elapsed = time.monotonic() - started

        stored_bodies = Counter(msgspec.json.encode(received.event) for received in sandbox.events)
        stored_keys = Counter(received.idempotency_key for received in sandbox.events)
        bodies_per_key: dict[str | None, set[str]] = {}
        for record in sandbox.requests:
            # A reset before reading records no body; every other record has one.
            if record.body:
                bodies_per_key.setdefault(record.idempotency_key, set()).add(record.body_sha256)
        faults = Counter(fault_name(applied.fault) for applied in sandbox.faults.applied)
        attempts = len(sandbox.requests)

    figures = {
        "events": EVENT_COUNT,
        "attempts": attempts,
        "retries": client.stats.retries,
        "faults": sum(faults.values()),
        "seconds": round(elapsed, 2),
        "throttled_seconds": round(batch.throttled_seconds, 2),
        "final_concurrency": batch.concurrency,
    }
    print("\nnothing-lost figures:", figures)
    print("nothing-lost faults by type:", dict(sorted(faults.items())))
    for name, value in figures.items():
        record_property(name, value)
    for name, count in faults.items():
        record_property(f"fault {name}", count)

    indexes = sorted(result.index for result in results)
    failed = [result for result in results if not result.ok]
    assert indexes == list(range(EVENT_COUNT))
    assert failed == []
    assert len(sandbox.events) == EVENT_COUNT
    assert stored_bodies == sent_bodies
    assert max(stored_keys.values()) == 1
    # Every attempt of one event sent the same bytes.
    assert all(len(digests) == 1 for digests in bodies_per_key.values())
    assert len(bodies_per_key) == EVENT_COUNT
    assert attempts == EVENT_COUNT + client.stats.retries
    for fault in FAULT_MIX:
        assert faults[fault_name(fault)] > 0, f"the fault {fault_name(fault)} was never drawn"
    assert elapsed < 50
