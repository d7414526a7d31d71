"""Batch-wide back-pressure: pause every worker on 429 or 503, adapt concurrency, limit rate.

When one request of a batch gets a 429 or 503 response (with or without a
``Retry-After``), every worker of the batch waits, not only the one that got it.
Each worker waits until the end of the server's wait plus its own random jitter,
so that they do not all return at one instant.

Concurrency follows AIMD, as TCP congestion control does. It is halved on a
throttled response, at most once per pause, so that a burst of 429s from the
requests already in flight counts once. It is raised by one after ``limit``
successful responses in a row.
An optional client-side rate limit spaces event starts evenly.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque

__all__ = ["BatchPressure"]

# Jitter added on top of a pause: a fraction of the pause, at most this many seconds.
_JITTER_FRACTION = 0.1
_MAX_JITTER = 1.0


class BatchPressure:
    """Shared throttling state of one batch.

    ``max_concurrency`` is the ceiling of requests in flight; ``rate_limit`` is the
    maximum number of events started per second, or ``None`` for no limit.
    """

    def __init__(self, *, max_concurrency: int, rate_limit: float | None = None) -> None:
        if rate_limit is not None and not rate_limit > 0:
            raise ValueError(
                f"rate_limit must be a positive number of events per second, got {rate_limit!r}."
            )
        self.max_concurrency = max_concurrency
        self.limit = max_concurrency
        self.rate_limit = rate_limit
        self.throttled_seconds = 0.0
        self.throttle_count = 0

        self._in_flight = 0
        self._healthy_in_a_row = 0
        self._pause_until = 0.0
        self._decreased_for_pause_until = 0.0
        self._next_start = 0.0
        self._waiters: deque[asyncio.Future[None]] = deque()

    def try_acquire(self) -> bool:
        """Take one of the ``limit`` slots if one is free, without waiting."""
        if self._in_flight < self.limit and not self._waiters:
            self._in_flight += 1
            return True
        return False

    async def acquire(self) -> None:
        """Take one of the ``limit`` slots, waiting until one is free.

        Every ``acquire`` or successful ``try_acquire`` must be followed by one
        ``release``. The rate limit is separate: see ``wait_for_rate``.
        """
        while self._in_flight >= self.limit:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        self._in_flight += 1

    def release(self) -> None:
        """Give a slot back and wake one worker waiting for it."""
        self._in_flight -= 1
        while self._waiters and self._in_flight < self.limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break

    async def before_attempt(self) -> None:
        """Wait out a batch-wide pause, if one is running, plus this worker's jitter."""
        loop = asyncio.get_running_loop()
        remaining = self._pause_until - loop.time()
        if remaining > 0:
            jitter = random.uniform(0, min(_MAX_JITTER, remaining * _JITTER_FRACTION))
            await asyncio.sleep(remaining + jitter)

    def on_throttled(self, wait: float) -> None:
        """Pause the whole batch for ``wait`` seconds and halve the concurrency once."""
        now = asyncio.get_running_loop().time()
        until = now + wait
        self.throttle_count += 1
        self._healthy_in_a_row = 0

        # Count only the time not already covered by a running pause.
        self.throttled_seconds += max(0.0, until - max(now, self._pause_until))
        if now >= self._decreased_for_pause_until:
            self.limit = max(1, self.limit // 2)
            self._decreased_for_pause_until = until
        self._pause_until = max(self._pause_until, until)

    def on_success(self) -> None:
        """Count a successful response; after ``limit`` of them in a row, allow one more slot."""
        self._healthy_in_a_row += 1
        if self._healthy_in_a_row >= self.limit and self.limit < self.max_concurrency:
            self.limit += 1
            self._healthy_in_a_row = 0
            # Waiters take the new slot when the next slot is released.

    def paused_at(self, now: float) -> bool:
        """Tell whether a batch-wide pause runs at ``now`` (a time of the loop's clock)."""
        return self._pause_until > now

    async def wait_for_rate(self) -> None:
        """Wait until the rate limit allows the next event to start (no-op without one)."""
        if self.rate_limit is None:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        start = max(now, self._next_start)
        self._next_start = start + 1.0 / self.rate_limit
        if start > now:
            await asyncio.sleep(start - now)
