"""Run one coroutine per event with bounded concurrency, yielding exactly one result each."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import msgspec

from ._errors import (
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    BatchStoppedError,
    PermissionDeniedError,
)
from ._pressure import BatchPressure

__all__ = ["PublishBatch", "PublishResult", "run_batch"]


class PublishResult(msgspec.Struct, frozen=True):
    """The outcome of one event of a batch.

    ``index`` is the event's 0-based position in the input. Exactly one of
    ``event_id`` (published) and ``error`` (rejected locally or by Hakuna, or failed
    after retries) is set; ``APIError.attempts`` counts the requests sent.
    ``idempotency_key`` is the key sent with the event, ``None`` when nothing was sent.
    """

    index: int
    event_id: str | None = None
    error: Exception | None = None
    idempotency_key: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


_DONE = object()


async def run_batch(
    events: Iterable[Any] | AsyncIterable[Any],
    publish_one: Callable[[int, Any], Awaitable[PublishResult]],
    *,
    pressure: BatchPressure,
) -> AsyncIterator[PublishResult]:
    """Call ``publish_one(index, event)`` for every event; yield each result as it comes.

    ``pressure.max_concurrency`` workers pull the next event only when they are
    free and hold one of ``pressure.limit`` slots while publishing it. Results wait
    in a queue of as many places, so memory does not grow with the input.

    The batch stops early when going on would only fail the same way for every
    event: on a 401 or 403, or when ``max(8, concurrency)`` events in a row failed to
    connect. It then raises ``BatchStoppedError`` after the results of the events
    already taken. An
    exception raised by the input iterable itself stops the batch too, and is
    re-raised after the results already produced.
    """
    source = _EventSource(events)
    results: asyncio.Queue[Any] = asyncio.Queue(maxsize=pressure.max_concurrency)
    breaker = _Breaker(connection_failures=max(8, pressure.max_concurrency))

    async def work() -> None:
        while breaker.stop is None:
            item = source.next_now() if source.is_sync else await source.next()
            if item is None:
                return
            index, event = item
            if not pressure.try_acquire():
                await pressure.acquire()
            try:
                if pressure.rate_limit is not None:
                    await pressure.wait_for_rate()
                result = await publish_one(index, event)
            except Exception as error:  # an unexpected failure still yields its result
                result = PublishResult(index, error=error)
            finally:
                pressure.release()
            breaker.count(result)
            await results.put(result)

    workers = [asyncio.create_task(work()) for _ in range(pressure.max_concurrency)]

    async def close_when_done() -> None:
        # Workers catch every error of an event, so they end only when the input does,
        # when the breaker stops the batch, or when the batch is closed (which cancels
        # this task too).
        await asyncio.gather(*workers, return_exceptions=True)
        await results.put(_DONE)

    closer = asyncio.create_task(close_when_done())
    try:
        while True:
            result = await results.get()
            if result is _DONE:
                break
            yield result
    finally:
        for task in (*workers, closer):
            task.cancel()
        await asyncio.gather(*workers, closer, return_exceptions=True)

    if breaker.stop is not None:
        raise breaker.stop
    if source.error is not None:
        raise source.error


class _Breaker:
    """Decide when a batch should stop because every further event would fail alike."""

    def __init__(self, *, connection_failures: int) -> None:
        self._limit = connection_failures
        self._failures_in_a_row = 0
        self._done = 0
        self.stop: BatchStoppedError | None = None

    def count(self, result: PublishResult) -> None:
        self._done += 1
        error = result.error
        if isinstance(error, APIConnectionError):
            self._failures_in_a_row += 1
        elif error is None or isinstance(error, APIStatusError):
            self._failures_in_a_row = 0

        if self.stop is not None:
            return
        if isinstance(error, (AuthenticationError, PermissionDeniedError)):
            self.stop = BatchStoppedError(
                f"Stopped the batch after {self._done} events, because Hakuna rejected the "
                f"API key (HTTP {error.status}): every further event would fail the same "
                "way. Fix the key, then run the batch again; events not yet read were not "
                "sent, and with a results file --resume skips the ones already published.",
                cause=error,
            )
        elif self._failures_in_a_row >= self._limit:
            self.stop = BatchStoppedError(
                f"Stopped the batch after {self._failures_in_a_row} events in a row failed to "
                "reach Hakuna, each after its retries. Check the network and the base URL, "
                "then run the batch again; with a results file --resume skips the events "
                "already published.",
                cause=error,
            )


class _EventSource:
    """Hand out (index, event) pairs from a sync or async iterable, one at a time."""

    def __init__(self, events: Iterable[Any] | AsyncIterable[Any]) -> None:
        self._sync = iter(events) if not isinstance(events, AsyncIterable) else None
        self._async = aiter(events) if isinstance(events, AsyncIterable) else None
        self._lock = asyncio.Lock()
        self._index = 0
        self._exhausted = False
        self.error: BaseException | None = None

    @property
    def is_sync(self) -> bool:
        return self._sync is not None

    def next_now(self) -> tuple[int, Any] | None:
        """Return the next pair of a sync iterable, without a coroutine per event.

        No await lies between reading and numbering, so workers need no lock.
        """
        if self._exhausted:
            return None
        assert self._sync is not None
        try:
            event = next(self._sync)
        except StopIteration:
            self._exhausted = True
            return None
        except Exception as error:
            self._exhausted = True
            self.error = error
            return None
        return self._numbered(event)

    async def next(self) -> tuple[int, Any] | None:
        """Return the next pair of an async iterable; one worker reads at a time."""
        assert self._async is not None
        async with self._lock:
            if self._exhausted:
                return None
            try:
                event = await anext(self._async)
            except StopAsyncIteration:
                self._exhausted = True
                return None
            except Exception as error:
                self._exhausted = True
                self.error = error
                return None
            return self._numbered(event)

    def _numbered(self, event: Any) -> tuple[int, Any]:
        index = self._index
        self._index += 1
        return index, event


class PublishBatch:
    """An async iterator of ``PublishResult``, with the batch's throttling figures.

    ``throttled_seconds`` is how long the batch was paused by 429 or 503 responses,
    ``throttle_count`` how many such responses it got, and ``concurrency`` the number
    of requests currently allowed in flight.
    """

    def __init__(self, results: AsyncIterator[PublishResult], pressure: BatchPressure) -> None:
        self._results = results
        self._pressure = pressure

    def __aiter__(self) -> PublishBatch:
        return self

    async def __anext__(self) -> PublishResult:
        return await anext(self._results)

    async def aclose(self) -> None:
        """Stop the batch: cancel the requests in flight and read no more events."""
        close = getattr(self._results, "aclose", None)
        if close is not None:
            await close()

    @property
    def throttled_seconds(self) -> float:
        return self._pressure.throttled_seconds

    @property
    def throttle_count(self) -> int:
        return self._pressure.throttle_count

    @property
    def concurrency(self) -> int:
        return self._pressure.limit
