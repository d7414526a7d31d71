"""Events: tell Hakuna what happened to an order."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import Any

from .._batch import PublishResult, publish_concurrently
from .._config import Timeout
from .._validation import prepare_event
from ..models import AcceptedEvent
from ..models._operations import PUBLISH_EVENT
from ._base import Resource


class Events(Resource):
    """``client.events``."""

    async def publish(
        self,
        event: Any,
        *,
        idempotency_key: str | None = None,
        timeout: float | Timeout | None = None,
        max_retries: int | None = None,
    ) -> AcceptedEvent:
        """Publish one order event and return Hakuna's receipt with its ``event_id``.

        ``event`` is an ``OrderPlaced``, ``LineItemsFulfilled``, ``LineItemsRefunded``,
        ``LineItemsCancelled`` or ``OrderCancelled`` (or a dict or JSON bytes of one).
        It is validated before anything is sent. Without ``idempotency_key`` a random
        one is generated; either way every retry of this call sends the same key, so
        Hakuna stores the event once.

        Raise ``RequestValidationError`` for an invalid event (``.field`` names the
        JSON path) and an ``APIError`` subclass when the call fails.
        """
        _, body = prepare_event(event)
        result: AcceptedEvent = await self._client.request(
            PUBLISH_EVENT,
            body=body,
            idempotency_key=idempotency_key,
            timeout=timeout,
            max_retries=max_retries,
        )
        return result

    def publish_many(
        self,
        events: Iterable[Any] | AsyncIterable[Any],
        *,
        concurrency: int = 16,
        timeout: float | Timeout | None = None,
        max_retries: int | None = None,
    ) -> AsyncIterator[PublishResult]:
        """Publish events with at most ``concurrency`` requests in flight.

        ``events`` is any iterable or async iterable; it is read lazily, so memory
        stays flat whatever its length. Iterate the result to drive the batch: it
        yields exactly one ``PublishResult`` per input event, in completion order,
        with the event's 0-based ``index``, and either its ``event_id`` or its
        ``error``. An invalid or rejected event does not stop the others::

            async for result in client.events.publish_many(events, concurrency=32):
                if not result.ok:
                    print(result.index, result.error)

        Leaving the loop early cancels the requests still in flight.
        """

        async def publish_one(event: Any) -> AcceptedEvent:
            return await self.publish(event, timeout=timeout, max_retries=max_retries)

        return publish_concurrently(events, publish_one, concurrency=concurrency)
