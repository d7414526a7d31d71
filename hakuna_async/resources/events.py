"""Events: tell Hakuna what happened to an order."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterable, Iterable
from typing import Any, Literal

from .._batch import PublishBatch, PublishResult, run_batch
from .._config import Timeout
from .._errors import APIError, HakunaError, RequestValidationError
from .._keys import derive_idempotency_key, key_namespace_uuid
from .._pressure import BatchPressure
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
        idempotency: Literal["derived", "random"] = "derived",
        key_namespace: str | None = None,
        rate_limit: float | None = None,
        timeout: float | Timeout | None = None,
        max_retries: int | None = None,
    ) -> PublishBatch:
        """Publish events with at most ``concurrency`` requests in flight.

        ``events`` is any iterable or async iterable of events (Structs, dicts or
        JSON bytes); it is read lazily, so memory stays flat whatever its length.
        Iterate the result to drive the batch: it yields exactly one
        ``PublishResult`` per input event, in completion order, with the event's
        0-based ``index`` and either its ``event_id`` or its ``error``. An invalid or
        rejected event does not stop the others::

            async for result in client.events.publish_many(events, concurrency=32):
                if not result.ok:
                    print(result.index, result.error)

        ``idempotency="derived"`` (the default) derives each event's key from its
        content, so running the same input again publishes nothing twice.
        ``"random"`` sends a new random key per event. ``key_namespace`` fixes the
        namespace of derived keys (default: the API key's fingerprint and the base
        URL). A 429 or 503 pauses the whole batch for the server's wait and halves
        the concurrency, which then grows back by one per ``concurrency`` healthy
        answers. ``rate_limit`` caps the events started per second.

        Leaving the loop early (or ``aclose()``) cancels the requests in flight.
        """
        if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
            raise ValueError(f"concurrency must be an integer >= 1, got {concurrency!r}.")
        if idempotency not in ("derived", "random"):
            raise ValueError(f"idempotency must be 'derived' or 'random', got {idempotency!r}.")

        client = self._client
        pressure = BatchPressure(max_concurrency=concurrency, rate_limit=rate_limit)
        namespace = None
        if idempotency == "derived":
            namespace = key_namespace_uuid(
                api_key=client._api_key, base_url=client.base_url, key_namespace=key_namespace
            )

        async def publish_one(index: int, event: Any) -> PublishResult:
            try:
                _, body = prepare_event(event)
            except (RequestValidationError, TypeError) as error:
                return PublishResult(index, error=error)

            if namespace is None:
                key = str(uuid.uuid4())
            else:
                key = derive_idempotency_key(body, namespace)
            try:
                accepted: AcceptedEvent = await client.request(
                    PUBLISH_EVENT,
                    body=body,
                    idempotency_key=key,
                    timeout=timeout,
                    max_retries=max_retries,
                    pressure=pressure,
                )
            except HakunaError as error:
                sent_key = error.idempotency_key if isinstance(error, APIError) else key
                return PublishResult(index, error=error, idempotency_key=sent_key)
            return PublishResult(index, event_id=accepted.event_id, idempotency_key=key)

        return PublishBatch(run_batch(events, publish_one, pressure=pressure), pressure)
