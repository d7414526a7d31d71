"""A blocking client for synchronous code: Celery or RQ workers, scripts, Django views.

``HakunaSyncClient`` runs a ``HakunaClient`` on one private event-loop thread per
process and submits every call to it, so there is one transport, not two::

    from hakuna_async.sync import HakunaSyncClient

    with HakunaSyncClient() as client:
        accepted = client.events.publish(event)

It is safe to share between threads. In a child process after ``fork`` (Celery's
prefork pool, gunicorn workers) it starts a new loop thread and new connections on
first use. Calling it from inside a running event loop raises ``ClientStateError``
instead of deadlocking: use ``HakunaClient`` there.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterable, Coroutine, Iterable, Iterator
from concurrent.futures import Future
from typing import Any, Literal, TypeVar

from ._batch import PublishResult
from ._client import HakunaClient
from ._errors import ClientStateError
from .models import (
    AcceptedCartCheckout,
    AcceptedEvent,
    CartActions,
    CartPlanConnections,
    Checkout,
    OrderPlanConnections,
    PlanMatch,
)

__all__ = ["HakunaSyncClient"]

T = TypeVar("T")

_loops_of_parent: list[asyncio.AbstractEventLoop] = []


class _LoopThread:
    """An event loop running forever in a daemon thread of this process."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="hakuna-async-loop", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def stop(self) -> None:
        """Stop the loop, wait for the thread, and close the loop."""
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()


class HakunaSyncClient:
    """Blocking access to every operation, with ``HakunaClient``'s arguments.

    The resources mirror the async client's: ``events``, ``orders``, ``plans``,
    ``carts`` and ``checkouts``, with the same method names and arguments, returning
    results instead of awaitables. Raise ``ConfigurationError`` here for a missing
    or unsafe setting, as ``HakunaClient`` does.
    """

    def __init__(self, api_key: str | None = None, **options: Any) -> None:
        self._client = HakunaClient(api_key, **options)
        self._lock = threading.Lock()
        self._loop_thread: _LoopThread | None = None
        self._closed = False

        self.events = _SyncEvents(self)
        self.orders = _SyncOrders(self)
        self.plans = _SyncPlans(self)
        self.carts = _SyncCarts(self)
        self.checkouts = _SyncCheckouts(self)

    def __repr__(self) -> str:
        return f"HakunaSyncClient(base_url={self._client.base_url!r})"

    def __enter__(self) -> HakunaSyncClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def base_url(self) -> str:
        return self._client.base_url

    def close(self) -> None:
        """Close the connections and stop the loop thread. Safe to call more than once."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop_thread, self._loop_thread = self._loop_thread, None
        if loop_thread is None or loop_thread.pid != os.getpid():
            return
        future = asyncio.run_coroutine_threadsafe(self._client.close(), loop_thread.loop)
        try:
            future.result(timeout=30)
        finally:
            loop_thread.stop()

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the loop thread and wait for its result."""
        try:
            loop = self._loop()
        except BaseException:
            coroutine.close()
            raise
        future: Future[T] = asyncio.run_coroutine_threadsafe(coroutine, loop)
        try:
            return future.result()
        except BaseException:
            # KeyboardInterrupt or a timeout in the caller: stop the call too.
            future.cancel()
            raise

    def _loop(self) -> asyncio.AbstractEventLoop:
        if _running_loop_in_this_thread():
            raise ClientStateError(
                "HakunaSyncClient was called from inside a running event loop, where it "
                "would block the loop; await HakunaClient's methods there instead."
            )
        with self._lock:
            if self._closed:
                raise ClientStateError(
                    "The client is closed; create a new HakunaSyncClient (or use `with`)."
                )
            loop_thread = self._loop_thread
            if loop_thread is None or loop_thread.pid != os.getpid():
                if loop_thread is not None:
                    # A child after fork: the parent's thread did not survive the fork.
                    # Its loop is kept referenced, never closed here, because its
                    # selector and sockets are shared with the parent.
                    _loops_of_parent.append(loop_thread.loop)
                loop_thread = _LoopThread()
                self._loop_thread = loop_thread
            return loop_thread.loop


def _running_loop_in_this_thread() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class _SyncResource:
    def __init__(self, owner: HakunaSyncClient) -> None:
        self._owner = owner
        self._client = owner._client


class _SyncEvents(_SyncResource):
    """``client.events``: blocking ``publish`` and ``publish_many``."""

    def publish(self, event: Any, **options: Any) -> AcceptedEvent:
        """Publish one event; see ``HakunaClient.events.publish``."""
        return self._owner._run(self._client.events.publish(event, **options))

    def publish_many(
        self,
        events: Iterable[Any] | AsyncIterable[Any],
        *,
        concurrency: int = 16,
        idempotency: Literal["derived", "random"] = "derived",
        **options: Any,
    ) -> Iterator[PublishResult]:
        """Publish events concurrently on the loop thread; yield one result per event.

        See ``HakunaClient.events.publish_many``. Leaving the loop early stops the
        batch and cancels the requests in flight.
        """
        batch = self._client.events.publish_many(
            events, concurrency=concurrency, idempotency=idempotency, **options
        )
        try:
            while True:
                try:
                    yield self._owner._run(_next_result(batch))
                except StopAsyncIteration:
                    return
        finally:
            self._owner._run(batch.aclose())


async def _next_result(batch: Any) -> PublishResult:
    result: PublishResult = await anext(batch)
    return result


class _SyncOrders(_SyncResource):
    """``client.orders``."""

    def plan_connections(self, order_id: str, **options: Any) -> OrderPlanConnections:
        """See ``HakunaClient.orders.plan_connections``."""
        return self._owner._run(self._client.orders.plan_connections(order_id, **options))


class _SyncPlans(_SyncResource):
    """``client.plans``."""

    def match(self, **parameters: Any) -> PlanMatch:
        """See ``HakunaClient.plans.match``; the same keyword arguments."""
        return self._owner._run(self._client.plans.match(**parameters))


class _SyncCarts(_SyncResource):
    """``client.carts``."""

    def update(self, cart: Any, **options: Any) -> CartActions:
        """See ``HakunaClient.carts.update``."""
        return self._owner._run(self._client.carts.update(cart, **options))

    def plan_connections(self, cart_id: str, **options: Any) -> CartPlanConnections:
        """See ``HakunaClient.carts.plan_connections``."""
        return self._owner._run(self._client.carts.plan_connections(cart_id, **options))

    def checkout(self, **parameters: Any) -> AcceptedCartCheckout:
        """See ``HakunaClient.carts.checkout``; the same keyword arguments."""
        return self._owner._run(self._client.carts.checkout(**parameters))


class _SyncCheckouts(_SyncResource):
    """``client.checkouts``."""

    def retrieve(self, **parameters: Any) -> Checkout:
        """See ``HakunaClient.checkouts.retrieve``; the same keyword arguments."""
        return self._owner._run(self._client.checkouts.retrieve(**parameters))
