"""Publish many events with bounded concurrency and exactly one result per event."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import msgspec

from .models import AcceptedEvent

__all__ = ["PublishResult", "publish_concurrently"]


class PublishResult(msgspec.Struct, frozen=True):
    """The outcome of one event of a batch.

    ``index`` is the event's 0-based position in the input. Exactly one of
    ``event_id`` (published) and ``error`` (rejected locally or by Hakuna, or failed
    after retries) is set; an ``APIError`` tells how many attempts were made.
    """

    index: int
    event_id: str | None = None
    error: Exception | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


_DONE = object()


async def publish_concurrently(
    events: Iterable[Any] | AsyncIterable[Any],
    publish: Callable[[Any], Awaitable[AcceptedEvent]],
    *,
    concurrency: int,
) -> AsyncIterator[PublishResult]:
    """Run ``publish`` over ``events`` with ``concurrency`` workers; yield each result.

    Workers pull the next event only when they are free, and results wait in a queue
    of ``concurrency`` slots, so memory does not grow with the input. An exception
    raised by the input iterable itself stops the batch and is re-raised after the
    results already produced.
    """
    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
        raise ValueError(f"concurrency must be an integer >= 1, got {concurrency!r}.")

    source = _EventSource(events)
    results: asyncio.Queue[Any] = asyncio.Queue(maxsize=concurrency)

    async def work() -> None:
        while True:
            item = await source.next()
            if item is None:
                return
            index, event = item
            try:
                accepted = await publish(event)
            except Exception as error:  # one bad event must not stop the batch
                await results.put(PublishResult(index, error=error))
            else:
                await results.put(PublishResult(index, event_id=accepted.event_id))

    workers = [asyncio.create_task(work()) for _ in range(concurrency)]

    async def close_when_done() -> None:
        try:
            await asyncio.gather(*workers)
        finally:
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

    if source.error is not None:
        raise source.error


class _EventSource:
    """Hand out (index, event) pairs from a sync or async iterable, one at a time."""

    def __init__(self, events: Iterable[Any] | AsyncIterable[Any]) -> None:
        self._sync = iter(events) if not isinstance(events, AsyncIterable) else None
        self._async = aiter(events) if isinstance(events, AsyncIterable) else None
        self._lock = asyncio.Lock()
        self._index = 0
        self._exhausted = False
        self.error: BaseException | None = None

    async def next(self) -> tuple[int, Any] | None:
        if self._exhausted:
            return None
        try:
            if self._sync is not None:
                # No await between reading and numbering, so no lock is needed.
                event = next(self._sync)
            else:
                assert self._async is not None
                async with self._lock:
                    if self._exhausted:
                        return None
                    event = await anext(self._async)
        except (StopIteration, StopAsyncIteration):
            self._exhausted = True
            return None
        except Exception as error:
            self._exhausted = True
            self.error = error
            return None
        index = self._index
        self._index += 1
        return index, event
